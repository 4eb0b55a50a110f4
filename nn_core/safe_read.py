"""Reading untrusted files: one bounded reader and one ``.npy`` reader for every loader.

Model files (:mod:`nn_core.io`) and data files (:mod:`nn_core.data`) come from the same
places (a path, the bytes, an upload) and both are ``.npz`` archives at times, so they share
this module. Each loader passes its own error class (``ModelFileError``, ``DataError``, both
subclasses of :class:`InputFileError`) and a hint on how to make a good file; the reading,
the size caps and the refusal of pickles live here once.

It is a module of its own, not part of ``nn_core.data``, because model files are not data
sets: ``nn_core.io`` should not depend on the data package to read a file.
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Any
NPY_MAGIC = b"\x93NUMPY"
MIB = 1024**2

# Everything a damaged or hostile archive makes the standard library or NumPy raise while
# it is read: bad zip structure, bad deflate data, an unsupported compression method
# (NotImplementedError), an encrypted member (RuntimeError), an unreadable .npy header
# (ValueError, SyntaxError from its literal_eval), and cut-off data (EOFError, OSError).
ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
    ValueError,
    SyntaxError,
    OverflowError,
    EOFError,
    OSError,
)


class InputFileError(ValueError):
    """A file that cannot be used, with one message for a person: what is wrong, what to do.

    Parameters
    ----------
    message : str
        Safe to show as is; names the file when its name is known.
    over_limit : bool
        True when the file was refused only for its size, so that a caller (the app) can
        add how its limit is raised.
    """

    def __init__(self, message: str, *, over_limit: bool = False) -> None:
        super().__init__(message)
        self.over_limit = over_limit


def size_text(n_bytes: float) -> str:
    """A size for people, in MB of 2**20 bytes as Streamlit counts them: '73.2 MB',
    '300 MB', or '8,143 bytes' below 1 MB."""
    value = n_bytes / MIB
    if value < 1:
        return f"{int(n_bytes):,} bytes"
    return f"{value:.1f} MB" if value < 10 else f"{value:,.0f} MB"


def too_large(error: type[InputFileError], label: str, what: str, limit: int) -> InputFileError:
    """The error for a file over a size cap; ``what`` says what was measured and how much."""
    return error(
        f"{label} is too large: {what}, over the {size_text(limit)} limit. Use a smaller file.",
        over_limit=True,
    )


def file_name(source: Source) -> str | None:
    """The bare file name of a path or of a file-like with a ``name``, else None."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name or str(source)
    name = getattr(source, "name", None)
    return Path(name).name if isinstance(name, str) and name else None


def read_bounded(
    source: Source,
    *,
    label: str,
    max_bytes: int,
    error: type[InputFileError],
    kind: str = "a file",
) -> bytes:
    """Read every byte of ``source``, refusing anything over ``max_bytes``.

    Parameters
    ----------
    source : path, bytes or binary file-like
        A path to a regular file (devices, pipes and sockets are refused: ``/dev/zero``
        would never end), the bytes themselves, or an object with ``.read()`` such as
        Streamlit's ``UploadedFile`` (rewound first when it is seekable).
    label : str
        The file as messages name it, e.g. "train.csv".
    max_bytes : int
        Largest accepted size; never more than ``max_bytes + 1`` bytes are read.
    error : subclass of InputFileError
        What to raise.
    kind : str
        What the file should be, for messages, e.g. "a data file".

    Returns
    -------
    bytes
        Zero-copy for bytes and for an unread ``io.BytesIO``.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        data = _read_path(Path(source), label, max_bytes, error, kind)
    elif hasattr(source, "read"):
        data = _read_file_like(source, label, max_bytes, error)
    else:
        raise error(
            f"Cannot read {type(source).__name__!r}: give a file path, the file's bytes, or an "
            "open binary file."
        )
    if len(data) > max_bytes:  # a file-like, read up to max_bytes + 1: its size, if it says
        size = len(data) if isinstance(source, (bytes, bytearray, memoryview)) else None
        size = getattr(source, "size", size)  # e.g. Streamlit's UploadedFile
        what = size_text(size) if isinstance(size, int) else "it is longer"
        raise too_large(error, label, what, max_bytes)
    return data


def _read_path(
    path: Path, label: str, max_bytes: int, error: type[InputFileError], kind: str
) -> bytes:
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{label} is a folder, not {kind}. Choose {kind}.")
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{label} is not a regular file (a device, pipe or socket). Choose {kind}.")
        if info.st_size > max_bytes:
            raise too_large(error, label, size_text(info.st_size), max_bytes)
        with path.open("rb") as f:  # bounded: the file may grow while it is read
            return f.read(max_bytes + 1)
    except InputFileError:
        raise
    except FileNotFoundError as exc:
        raise error(f"{label} was not found ({path} does not exist). Check the path.") from exc
    except (OSError, ValueError) as exc:  # ValueError: e.g. a NUL byte in the path
        reason = getattr(exc, "strerror", None) or str(exc)
        raise error(
            f"{label} cannot be read ({reason}). Check the path and its permissions."
        ) from exc


def _read_file_like(source: Any, label: str, max_bytes: int, error: type[InputFileError]) -> bytes:
    try:
        seekable = getattr(source, "seekable", None)
        if callable(seekable) and seekable():
            source.seek(0)
        data = source.read(max_bytes + 1)
    except (OSError, ValueError) as exc:
        raise error(f"{label} cannot be read ({exc}). Upload or open the file again.") from exc
    if isinstance(data, str):
        raise error(f"{label} was opened in text mode. Open it in binary mode ('rb').")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise error(
            f"{label}: reading it gave {type(data).__name__}, not bytes. Give a file opened in "
            "binary mode ('rb'), a path, or the file's bytes."
        )
    return bytes(data)


def read_npy(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    *,
    label: str,
    max_bytes: int,
    error: type[InputFileError],
    fix: str,
    check: Callable[[tuple[int, ...], np.dtype], None] | None = None,
) -> np.ndarray:
    """Read one ``.npy`` member of an archive without ever unpickling.

    The header is read first: object arrays (pickles) and compound dtypes are refused, then
    ``check(shape, dtype)`` runs, then the declared size is held against ``max_bytes``; only
    then are exactly that many bytes read, so a lying header or directory never makes this
    allocate or decompress more than ``max_bytes``.

    Parameters
    ----------
    archive, info : the open zip archive and the member to read
    label : str
        The file as messages name it.
    max_bytes : int
        Largest accepted array, in bytes.
    error : subclass of InputFileError
        What to raise.
    fix : str
        How to save a good file, ending messages, e.g. "Save the model with digitlab."
    check : callable, optional
        Called with the header's shape and dtype; raises ``error`` to refuse the array.

    Returns
    -------
    ndarray of the declared shape and dtype (read-only)
    """
    key = info.filename.removesuffix(".npy")
    try:
        with archive.open(info) as f:
            shape, fortran, dtype = _npy_header(f, label, key, error, fix)
            if check is not None:
                check(shape, dtype)
            n_bytes = math.prod(shape) * dtype.itemsize
            if n_bytes > max_bytes:
                what = f"'{key}' declares shape {shape} ({size_text(n_bytes)})"
                raise too_large(error, label, what, max_bytes)
            raw = f.read(n_bytes + 1)
    except InputFileError:
        raise
    except ARCHIVE_ERRORS as exc:
        raise error(f"{label}: the array '{key}' is damaged ({exc}). {fix}") from exc
    if len(raw) != n_bytes:
        raise error(
            f"{label}: the array '{key}' is damaged: its header declares shape {shape} "
            f"({n_bytes:,} bytes) but {len(raw):,}{'+' if len(raw) > n_bytes else ''} bytes "
            f"are stored. {fix}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _npy_header(
    f: BinaryIO, label: str, key: str, error: type[InputFileError], fix: str
) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) from an ``.npy`` header, refusing pickles."""
    if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
        raise error(f"{label}: '{key}' is not a NumPy array (no .npy header). {fix}")
    version = f.read(2)
    if version == b"\x01\x00":
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == b"\x02\x00":
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy format version {tuple(version)}")
    if dtype.hasobject:
        raise error(
            f"{label}: '{key}' holds Python objects (a pickle), which digitlab never loads "
            f"because unpickling can run code. {fix}"
        )
    if dtype.fields is not None or dtype.subdtype is not None or dtype.itemsize == 0:
        raise error(f"{label}: '{key}' has the compound dtype {dtype}, not plain numbers. {fix}")
    if any(d < 0 for d in shape):
        raise ValueError(f"negative dimension in the shape {shape}")
    return shape, fortran, dtype
