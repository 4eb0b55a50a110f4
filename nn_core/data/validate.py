"""Shared reading and checking used by every loader.

Everything here raises :class:`~nn_core.data.errors.DataError` with a message that names the
problem and the fix.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import stat
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nn_core.data.errors import DataError

DEFAULT_MAX_BYTES = 200 * 1024**2
MAX_CLASSES = 1000
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1024**2

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Any


def source_name(source: Source, name: str | None = None) -> str:
    """Return a short name for ``source`` to use in messages.

    Parameters
    ----------
    source : str, PathLike, bytes or binary file-like
    name : str, optional
        Wins when given.
    """
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name or str(source)
    file_name = getattr(source, "name", None)
    if isinstance(file_name, str) and file_name:
        return Path(file_name).name
    return "the uploaded data"


def too_big(name: str, what: str, max_bytes: int) -> DataError:
    """Build the error for data over the size cap."""
    mb = max_bytes / 1024**2
    return DataError(
        f"{name} is too large: {what} more than the {mb:g} MB limit. Use a smaller file, or raise "
        "the limit with the max_bytes argument (in the app: the DIGITLAB_MAX_UPLOAD_MB "
        "environment variable)."
    )


def read_source(source: Source, *, name: str | None, max_bytes: int) -> tuple[bytes, str]:
    """Read all bytes of ``source`` without going over ``max_bytes``.

    Parameters
    ----------
    source : str, PathLike, bytes or binary file-like
        A path, raw bytes, or an object with ``.read()`` (e.g. Streamlit's UploadedFile,
        which is rewound first when it is seekable).
    name : str, optional
        Name for messages; defaults to the file name.
    max_bytes : int
        Largest accepted size.

    Returns
    -------
    data : bytes
        The raw (possibly still gzip-compressed) content.
    name : str
        The name used in messages.
    """
    label = source_name(source, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        data = _read_path(Path(source), label, max_bytes)
    elif hasattr(source, "read"):
        data = read_file_like(source, label, max_bytes)
    else:
        raise DataError(
            f"Cannot read {type(source).__name__!r}: pass a file path, the file's bytes, or an "
            "open binary file."
        )
    if len(data) > max_bytes:
        raise too_big(label, f"{len(data):,} bytes,", max_bytes)
    return data, label


def _read_path(path: Path, label: str, max_bytes: int) -> bytes:
    """Read a regular file from disk, at most ``max_bytes + 1`` bytes.

    Devices, pipes and sockets are refused (``/dev/zero`` would never end), and every
    operating-system error becomes a :class:`DataError`.
    """
    try:
        if not path.exists():
            raise DataError(f"{label}: file not found at {path}. Check the path.")
        if path.is_dir():
            raise DataError(f"{label} is a folder, not a file. Pass a file, or load_idx_folder().")
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise DataError(
                f"{label} is not a regular file (a device, pipe or socket). Pass a data file."
            )
        if info.st_size > max_bytes:
            raise too_big(label, f"{info.st_size:,} bytes,", max_bytes)
        with path.open("rb") as f:
            return f.read(max_bytes + 1)
    except (OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        reason = getattr(exc, "strerror", None) or str(exc)
        raise DataError(
            f"{label} cannot be read ({reason}). Check the path and its permissions."
        ) from exc


def read_file_like(source: Any, label: str, max_bytes: int) -> bytes:
    """Read a binary file-like object, at most ``max_bytes + 1`` bytes."""
    try:
        seekable = getattr(source, "seekable", None)
        if callable(seekable) and seekable():
            source.seek(0)
        data = source.read(max_bytes + 1)
    except (OSError, ValueError) as exc:
        raise DataError(f"{label} cannot be read ({exc}). Upload or open the file again.") from exc
    if isinstance(data, str):
        raise DataError(f"{label} was opened in text mode. Open it in binary mode ('rb').")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DataError(
            f"{label}: reading it gave {type(data).__name__}, not bytes. Pass a file opened in "
            "binary mode ('rb'), a path, or the file's bytes."
        )
    return bytes(data)


def is_dir(path: str | os.PathLike) -> bool:
    """``Path(path).is_dir()`` that says False instead of raising on unusable names."""
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def gunzip_if_needed(data: bytes, *, name: str, max_bytes: int) -> bytes:
    """Decompress gzip data (detected by the magic bytes 1f 8b), stopping past the cap.

    Parameters
    ----------
    data : bytes
        Raw content; returned unchanged when it does not start with the gzip magic.
    name : str
        Name for messages.
    max_bytes : int
        Largest accepted decompressed size (guards against gzip bombs).

    Returns
    -------
    bytes
        The decompressed content.
    """
    if not data.startswith(GZIP_MAGIC):
        return data
    out = io.BytesIO()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            while chunk := f.read(CHUNK):
                out.write(chunk)
                if out.tell() > max_bytes:
                    raise too_big(name, "it decompresses to", max_bytes)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{name} looks gzip-compressed but is damaged or cut short ({exc}). Download it again."
        ) from exc
    return out.getvalue()


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
