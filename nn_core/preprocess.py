"""Turn a drawing or a photo of a digit into a 28x28 image the way MNIST itself was made.

MNIST's recipe: take the digit's bounding box, scale it (anti-aliased, keeping the aspect
ratio) so its longer side is 20 pixels, put it in a 28x28 field and move it so that its
centre of mass sits at the centre of the field. A network trained on MNIST only does well
on drawings that went through the same steps.

Both functions return ``(28, 28)`` uint8 in 0..255 with the stroke bright on a black
background, the training data's own scale (the network's ``input_scale`` does the rest),
or None when there is no stroke to speak of.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIZE = 28
BOX = 20
# A pixel counts as stroke above this strength (0..255); a drawing with none is empty.
STROKE_THRESHOLD = 24
# Photos: pixels darker than this share of the stroke's range above the background are
# treated as paper (noise, shading) and set to zero.
PHOTO_FLOOR = 0.15
# Largest output field accepted.
MAX_SIZE = 1024

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def preprocess_drawing(rgba: np.ndarray, size: int = SIZE, box: int = BOX) -> np.ndarray | None:
    """Preprocess a canvas drawing like MNIST.

    Parameters
    ----------
    rgba : ndarray of shape (H, W, 4), uint8
        The canvas: a white or coloured stroke on an opaque black background, or a stroke
        of any colour on a transparent background (then the alpha channel is the stroke).
        A dark stroke on an opaque light background is inverted.
    size : int
        Side of the output field (28 for MNIST).
    box : int
        Longer side of the scaled digit (20 for MNIST).

    Returns
    -------
    ndarray of shape (size, size), uint8, or None
        None when no pixel is above ``STROKE_THRESHOLD`` (an empty canvas).
    """
    _check_sizes(size, box)
    strength = drawing_strength(rgba)
    if strength.size == 0:
        return None
    return _center_like_mnist(strength, size, box, floor=0.0)


def drawing_strength(rgba: np.ndarray) -> np.ndarray:
    """How strongly each pixel of a canvas drawing is inked, 0 (background) to 255.

    Parameters
    ----------
    rgba : ndarray of shape (H, W, 4)
        As in ``preprocess_drawing``.

    Returns
    -------
    ndarray of shape (H, W), uint8, uint16 or float32, values in 0..255
    """
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"expected an RGBA image of shape (H, W, 4), got {rgba.shape}")
    if rgba.size == 0:
        return np.zeros(rgba.shape[:2], np.uint8)
    return _stroke_strength(_as_uint8_range(rgba))


def ink_box(strength: np.ndarray) -> tuple[int, int] | None:
    """Height and width in pixels of the box around the ink (pixels above
    ``STROKE_THRESHOLD``) of a ``(H, W)`` strength image, or None when there is none."""
    mask = strength > STROKE_THRESHOLD
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def preprocess_image(image: np.ndarray, size: int = SIZE, box: int = BOX) -> np.ndarray | None:
    """Preprocess any image of a single digit (a scan, a photo, an MNIST image) like MNIST.

    The polarity is detected from the border: a bright border (dark ink on paper) is
    inverted. The background level (median of the border) is subtracted and faint shading
    below ``PHOTO_FLOOR`` of the stroke's range is dropped, then the stroke is stretched
    to 0..255.

    Parameters
    ----------
    image : ndarray of shape (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4)
        Grayscale, gray + alpha, RGB or RGBA; uint8 (0..255), another integer type (used
        as is when its values lie in 0..255, else scaled by the type's maximum), bool, or
        float in 0..1 or 0..255 (NaN counts as 0). An empty image gives None.
    size, box : int
        As in ``preprocess_drawing``.

    Returns
    -------
    ndarray of shape (size, size), uint8, or None
        None when no digit stands out from the background.
    """
    _check_sizes(size, box)
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:  # (H, W, 1): grayscale with a channel axis
        image = image[..., 0]
    elif image.ndim == 3 and image.shape[2] == 2:  # gray + alpha, as Pillow's "LA" mode
        image = np.concatenate([image[..., :1]] * 3 + [image[..., 1:]], axis=2)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(
            "expected an image of shape (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4), "
            f"got {image.shape}"
        )
    if image.size == 0:
        return None
    image = _as_uint8_range(image)
    if image.ndim == 3 and image.shape[2] == 4:
        strength = _stroke_strength(image)
    elif image.ndim == 3 and image.shape[2] == 3:
        strength = _bright_stroke(_luma(image))
    elif image.ndim == 2:
        strength = _bright_stroke(image.astype(np.float32))
    else:
        raise ValueError(
            f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {image.shape}"
        )
    background = float(np.median(_border(strength)))
    strength = strength.astype(np.float32) - background
    top = float(strength.max()) if strength.size else 0.0
    if top <= STROKE_THRESHOLD:
        return None
    floor = PHOTO_FLOOR * top if background > 0 else 0.0
    return _center_like_mnist(strength, size, box, floor=floor)


# --------------------------------------------------------------------------- internals
def _check_sizes(size: int, box: int) -> None:
    """Refuse output sizes that are not whole numbers with 1 <= box <= size <= MAX_SIZE."""
    for what, value in (("size", size), ("box", box)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{what} must be a whole number of pixels, got {value!r}")
    if not 1 <= size <= MAX_SIZE:
        raise ValueError(f"size must be between 1 and {MAX_SIZE} pixels, got {size}")
    if not 1 <= box <= size:
        raise ValueError(f"box must be between 1 and size ({size}), got {box}")


def _as_uint8_range(image: np.ndarray) -> np.ndarray:
    """The image with values in 0..255 (any numeric dtype; NaN and -inf become 0)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * np.uint8(255)
    if image.dtype.kind in "iu":
        if image.size and image.min() >= 0 and image.max() <= 255:
            return image.astype(np.uint8)
        top = np.iinfo(image.dtype).max
        return (image.astype(np.float64) * (255.0 / top)).clip(0, 255).astype(np.float32)
    if image.dtype.kind == "f":
        image = np.nan_to_num(image.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if image.max(initial=0.0) <= 1.0:
            image = image * 255.0
        return image.clip(0, 255).astype(np.float32)
    raise ValueError(
        f"cannot read an image of dtype {image.dtype}; pass numbers (uint8 0..255, or float 0..1)"
    )


def _border(a: np.ndarray) -> np.ndarray:
    """The outermost pixels of a 2-D array."""
    if min(a.shape) < 3:
        return a.ravel()
    return np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])


def _bright_stroke(gray: np.ndarray) -> np.ndarray:
    """Gray levels (0..255) as stroke strength, inverted when the border is bright."""
    if np.median(_border(gray)) > 127:
        return gray.dtype.type(255) - gray
    return gray


def _stroke_strength(rgba: np.ndarray) -> np.ndarray:
    """Stroke strength of an RGBA image.

    Transparent background (border mostly transparent): the alpha channel is the stroke,
    whatever its colour. Opaque: the luminance, inverted if the background is bright.
    The result is uint8/uint16 or float32, always in 0..255.
    """
    alpha = rgba[..., 3]
    if np.median(_border(alpha)) < 128:
        return alpha
    luma = _luma(rgba[..., :3])
    if alpha.min() < 255:  # partly transparent strokes over an opaque background
        luma = luma * (alpha * np.float32(1 / 255))
    return _bright_stroke(luma)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luminance 0..255 of (H, W, 3) pixels (integer arithmetic for uint8)."""
    if rgb.dtype == np.uint8:
        r, g, b = (rgb[..., i].astype(np.uint16) for i in range(3))
        r *= 77
        g *= 150
        b *= 29
        r += g
        r += b
        r >>= 8
        return r
    return rgb @ _LUMA


def _center_like_mnist(
    strength: np.ndarray, size: int, box: int, *, floor: float
) -> np.ndarray | None:
    """Crop to the stroke, scale the longer side to ``box``, centre the mass in ``size``."""
    if box > size or box < 1:
        raise ValueError(f"box must be between 1 and size ({size}), got {box}")
    mask = strength > max(STROKE_THRESHOLD, floor)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    crop = strength[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    if floor > 0:
        crop = (crop - floor) * (255.0 / (float(crop.max()) - floor))
    else:
        crop = crop * (255.0 / float(crop.max()))
    crop = np.clip(crop, 0, 255).astype(np.uint8)

    height, width = crop.shape
    scale = box / max(height, width)
    new_h = max(1, min(box, round(height * scale)))
    new_w = max(1, min(box, round(width * scale)))
    digit = np.asarray(Image.fromarray(crop).resize((new_w, new_h), Image.Resampling.LANCZOS))

    total = float(digit.sum(dtype=np.float64))
    if total <= 0:
        return None
    cy = float(np.arange(new_h) @ digit.sum(axis=1, dtype=np.float64)) / total
    cx = float(np.arange(new_w) @ digit.sum(axis=0, dtype=np.float64)) / total
    centre = size / 2
    top = min(max(round(centre - cy), 0), size - new_h)
    left = min(max(round(centre - cx), 0), size - new_w)
    out = np.zeros((size, size), dtype=np.uint8)
    out[top : top + new_h, left : left + new_w] = digit
    return out
