"""Shared reading and checking used by every loader.

Everything here raises :class:`~nn_core.data.errors.DataError` with a message that names the
problem and the fix.
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nn_core.data.errors import DataError
from nn_core.safe_read import MIB, Source, file_name, read_bounded, size_text

DEFAULT_MAX_BYTES = 200 * MIB
UNZIP_FACTOR = 3  # by default, content may take 3 times the file cap once decompressed
# Real digit data compresses 5-10 times (train.csv: 73 MB -> 9 MB); a gzip file that grows
# more than MAX_RATIO times, to more than RATIO_FLOOR, is a compression bomb.
MAX_RATIO = 100
RATIO_FLOOR = 64 * MIB
MAX_CLASSES = 1000
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Caps:
    """Size caps in bytes: ``file`` for a file as stored, ``unzipped`` for its content."""

    file: int
    unzipped: int

    @classmethod
    def of(cls, max_bytes: int, max_unzipped_bytes: int | None = None) -> Caps:
        """Caps from the loaders' arguments; ``max_unzipped_bytes`` defaults to
        ``UNZIP_FACTOR * max_bytes``."""
        unzipped = UNZIP_FACTOR * max_bytes if max_unzipped_bytes is None else max_unzipped_bytes
        return cls(int(max_bytes), int(unzipped))


def source_name(source: Source, name: str | None = None) -> str:
    """Return a short name for ``source`` to use in messages; ``name`` wins when given."""
    return name or file_name(source) or "the uploaded data"


def read_source(source: Source, *, name: str | None, caps: Caps) -> tuple[bytes, str]:
    """Read all bytes of ``source`` within the caps, decompressing gzip.

    Parameters
    ----------
    source : str, PathLike, bytes or binary file-like
        A path, raw bytes, or an object with ``.read()`` (e.g. Streamlit's UploadedFile,
        which is rewound first when it is seekable).
    name : str, optional
        Name for messages; defaults to the file name.
    caps : Caps

    Returns
    -------
    data : bytes
        The content, decompressed when it was gzip-compressed.
    name : str
        The name used in messages.
    """
    label = source_name(source, name)
    data = read_bounded(
        source, label=label, max_bytes=caps.file, error=DataError, kind="a data file"
    )
    return gunzip_if_needed(data, name=label, caps=caps), label


def is_dir(path: str | os.PathLike) -> bool:
    """``Path(path).is_dir()`` that says False instead of raising on unusable names."""
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def gunzip_if_needed(data: bytes, *, name: str, caps: Caps) -> bytes:
    """Decompress gzip data (detected by the magic bytes 1f 8b), never past the caps.

    Parameters
    ----------
    data : bytes
        Raw content; returned unchanged when it does not start with the gzip magic.
    name : str
        Name for messages.
    caps : Caps
        ``caps.unzipped`` bounds the decompressed size; so does ``MAX_RATIO`` times the
        compressed size (above ``RATIO_FLOOR``), which refuses bombs after little work.

    Returns
    -------
    bytes
        The decompressed content (every gzip member, as ``gzip.decompress`` gives).
    """
    if not data.startswith(GZIP_MAGIC):
        return data
    limit = min(caps.unzipped, max(MAX_RATIO * len(data), RATIO_FLOOR))
    parts: list[bytes] = []
    total, rest = 0, data
    try:
        while rest:
            inflater = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer
            parts.append(inflater.decompress(rest, limit + 1 - total))
            total += len(parts[-1])
            if total > limit:
                raise _unzipped_too_large(name, len(data), limit, caps)
            if not inflater.eof:
                raise zlib.error("the data ends before the end of the compressed stream")
            rest = inflater.unused_data.lstrip(b"\0")  # gzip allows zero padding
    except zlib.error as exc:
        raise DataError(
            f"{name} looks gzip-compressed but is damaged or cut short ({exc}). Download it again."
        ) from exc
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _unzipped_too_large(name: str, packed: int, limit: int, caps: Caps) -> DataError:
    if limit == caps.unzipped:
        return DataError(
            f"{name} is too large: it decompresses to more than the {size_text(limit)} limit "
            "for unzipped data. Use a smaller file.",
            over_limit=True,
        )
    return DataError(
        f"{name} decompresses to more than {MAX_RATIO} times its {size_text(packed)}: it looks "
        "like a compression bomb, not a data set. Compress the data again, or upload it "
        "uncompressed."
    )


def square_side(n_pixels: int, *, name: str) -> int:
    """Return the side of a square image with ``n_pixels`` pixels.

    Raises
    ------
    DataError
        When ``n_pixels`` is not a perfect square.
    """
    side = math.isqrt(n_pixels) if n_pixels > 0 else 0
    if side == 0 or side * side != n_pixels:
        raise DataError(
            f"{name}: {n_pixels} pixels per image is not a perfect square, so the images cannot "
            "be square. Each image must have H*W pixels with H == W (e.g. 784 = 28x28)."
        )
    return side


def check_square_images(shape: tuple[int, ...], *, name: str) -> None:
    """Refuse images whose height and width differ, given an (N, H, W) shape."""
    if shape[1] != shape[2] or shape[1] == 0:
        raise DataError(
            f"{name}: images are {shape[1]}x{shape[2]} but must be square and non-empty "
            "(height == width). Pad or resize them to a square first."
        )


def check_not_empty(n: int, *, name: str, what: str = "images") -> None:
    """Refuse a data set with zero samples."""
    if n == 0:
        raise DataError(f"{name} contains zero {what}. Use a file with at least a few images.")


def to_images(x: np.ndarray, *, name: str, key: str = "x") -> np.ndarray:
    """Reshape pixel data to (N, H, W).

    Parameters
    ----------
    x : ndarray of shape (N, H, W), (N, H, W, 1), (N, 1, H, W) or (N, D), D a perfect square
    name, key : str
        For messages.

    Returns
    -------
    ndarray of shape (N, H, W), same dtype
    """
    if x.ndim == 4 and x.shape[3] == 1:
        x = x[..., 0]
    elif x.ndim == 4 and x.shape[1] == 1:  # channels first, as PyTorch stores them
        x = x[:, 0]
    if x.ndim == 4 and x.shape[3] in (3, 4):
        raise DataError(
            f"{name}: {key} has shape {x.shape}: colour images with {x.shape[3]} channels. "
            "Only grayscale images work; convert them first, e.g. "
            f"{key} = {key}[..., :3].mean(axis=-1), then save again."
        )
    if x.ndim == 2:
        side = square_side(x.shape[1], name=f"{name} ({key})")
        x = x.reshape(x.shape[0], side, side)
    if x.ndim != 3:
        raise DataError(
            f"{name}: {key} has shape {x.shape}; expected (N, H, W), (N, H, W, 1) or (N, H*W) "
            "with one grayscale image per row. Convert colour images to grayscale first."
        )
    check_not_empty(x.shape[0], name=f"{name} ({key})")
    check_square_images(x.shape, name=f"{name} ({key})")
    return x


def _first_bad(mask: np.ndarray) -> str:
    """Describe the first True position of ``mask`` as 'image i' or 'row i'."""
    pos = np.argwhere(mask)[0]
    return f"image {int(pos[0])}" if mask.ndim > 1 else f"row {int(pos[0])}"


def _check_numeric(a: np.ndarray, *, name: str, what: str) -> None:
    """Refuse non-numeric arrays and NaN/inf values."""
    if a.dtype.kind not in "biuf":
        raise DataError(
            f"{name}: {what} have dtype {a.dtype}, not numbers. Save them as integers "
            "(e.g. uint8 pixels, int labels)."
        )
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            raise DataError(
                f"{name}: {what} contain NaN or infinite values (first at {_first_bad(bad)}). "
                "Remove or fill those entries."
            )


def check_pixels(x: np.ndarray, *, name: str, is_float: bool | None = None) -> np.ndarray:
    """Check pixel values and return them as uint8.

    Parameters
    ----------
    x : ndarray of shape (N, ...)
        Pixel values; integers in 0..255, floats are rounded.
    name : str
        For messages.
    is_float : bool, optional
        Whether the values came as floats; defaults to ``x.dtype.kind == "f"``.

    Returns
    -------
    ndarray of the same shape, uint8
    """
    _check_numeric(x, name=name, what="pixel values")
    if x.dtype == np.uint8:
        return x
    if x.dtype == np.bool_:  # black-and-white images: True is ink
        return x.astype(np.uint8) * np.uint8(255)
    if x.size == 0:
        return x.astype(np.uint8)
    lo, hi = x.min(), x.max()
    if is_float is None:
        is_float = x.dtype.kind == "f"
    if is_float and lo >= 0 and 0 < hi <= 1.0:
        raise DataError(
            f"{name}: pixel values lie in 0..{float(hi):g}, so they look already scaled to 0..1. "
            "Multiply them by 255, or save the raw 0..255 values."
        )
    if lo < 0 or hi > 255:
        raise DataError(
            f"{name}: pixel values must be in 0..255 but range from {lo:g} to {hi:g}. "
            "Save the raw 8-bit grayscale values (0 = background, 255 = ink)."
        )
    if x.dtype.kind == "f":
        x = np.rint(x)
    return x.astype(np.uint8)


def check_labels(y: np.ndarray, *, name: str) -> np.ndarray:
    """Check class labels and return them as int64.

    Parameters
    ----------
    y : ndarray of shape (N,)
        Whole numbers in 0..MAX_CLASSES-1.
    name : str
        For messages.

    Returns
    -------
    ndarray of shape (N,), int64
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(_label_shape_message(y, name))
    if y.dtype.kind in "US":
        y = _labels_from_text(y, name=name)
    _check_numeric(y, name=name, what="labels")
    if y.dtype.kind == "f":
        frac = y != np.rint(y)
        if frac.any():
            i = int(np.argmax(frac))
            raise DataError(
                f"{name}: labels must be whole numbers (class 0, 1, 2, ...), but row {i} has "
                f"{y[i]:g}. Store class indices, not scores or one-hot vectors."
            )
    if y.size and y.min() < 0:
        i = int(np.argmax(y < 0))
        raise DataError(
            f"{name}: labels must be 0 or more, but row {i} has {y[i]:g}. Number the classes "
            "0, 1, 2, ..."
        )
    if y.size and y.max() >= MAX_CLASSES:
        raise DataError(
            f"{name}: the largest label is {y.max():g}, which means more than {MAX_CLASSES} "
            f"classes. Number the classes 0..{MAX_CLASSES - 1} (is the label column right?)."
        )
    return y.astype(np.int64)


def _label_shape_message(y: np.ndarray, name: str) -> str:
    """Explain why labels of shape ``y.shape`` are not one class index per image."""
    if y.ndim == 2 and y.dtype.kind in "biuf" and y.size:
        with np.errstate(invalid="ignore"):
            one_hot = bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))
        if one_hot:
            return (
                f"{name}: labels are one-hot vectors of shape {y.shape}; one class index per "
                "image is needed. Convert them with y.argmax(axis=1) and save that."
            )
    return (
        f"{name}: labels have shape {y.shape}; expected one class index per image, shape (N,). "
        "Save a 1-d array of whole numbers 0, 1, 2, ..."
    )


def _labels_from_text(y: np.ndarray, *, name: str) -> np.ndarray:
    """Labels stored as text: whole numbers ('3') become int64, anything else is refused."""
    text = np.char.strip(y.astype(str)) if y.size else y.astype(str)
    try:
        return text.astype(np.int64)
    except (ValueError, OverflowError):
        bad = next((str(v) for v in text[:1000] if not str(v).lstrip("+-").isdigit()), str(text[0]))
        raise DataError(
            f"{name}: labels are text such as {bad[:40]!r}, not class numbers. Number the "
            "classes 0, 1, 2, ... and save the labels as integers."
        ) from None


def check_same_length(x: np.ndarray, y: np.ndarray, *, name: str, what: str = "") -> None:
    """Refuse images and labels of different counts."""
    if len(x) != len(y):
        where = f" ({what})" if what else ""
        raise DataError(
            f"{name}{where}: {len(x):,} images but {len(y):,} labels. Each image needs exactly "
            "one label; check that the image and label files belong together."
        )
