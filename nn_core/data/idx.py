"""MNIST's own IDX format: image and label files, raw or gzip-compressed.

Image files start with the magic number 0x00000803 then N, H, W (big-endian uint32) and
N*H*W pixel bytes; label files with 0x00000801 then N and N label bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from nn_core.data.dataset import Dataset, build_dataset
from nn_core.data.errors import DataError, IncompleteFilesError
from nn_core.data.validate import (
    DEFAULT_MAX_BYTES,
    Caps,
    Source,
    check_labels,
    check_not_empty,
    check_same_length,
    check_square_images,
    is_dir,
    read_source,
)

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
ROLES = {
    "train-images-idx3-ubyte": "train_images",
    "train-labels-idx1-ubyte": "train_labels",
    "t10k-images-idx3-ubyte": "test_images",
    "t10k-labels-idx1-ubyte": "test_labels",
}
DTYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32"}
DTYPE_NAMES[0x0E] = "float64"


def load_idx_images(
    source: Source,
    *,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_unzipped_bytes: int | None = None,
) -> np.ndarray:
    """Load an IDX image file (e.g. train-images-idx3-ubyte, raw or .gz).

    Parameters
    ----------
    source : str, PathLike, bytes or binary file-like
    name : str, optional
        Name for messages; defaults to the file name.
    max_bytes, max_unzipped_bytes : int
        Caps on the file size and on its decompressed size (by default
        ``UNZIP_FACTOR * max_bytes``).

    Returns
    -------
    ndarray of shape (N, H, W), uint8
    """
    data, label = read_source(source, name=name, caps=Caps.of(max_bytes, max_unzipped_bytes))
    return parse_idx_images(data, name=label)


def load_idx_labels(
    source: Source,
    *,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_unzipped_bytes: int | None = None,
) -> np.ndarray:
    """Load an IDX label file (e.g. train-labels-idx1-ubyte, raw or .gz).

    Parameters
    ----------
    source : str, PathLike, bytes or binary file-like
    name : str, optional
        Name for messages; defaults to the file name.
    max_bytes, max_unzipped_bytes : int
        Caps on the file size and on its decompressed size (by default
        ``UNZIP_FACTOR * max_bytes``).

    Returns
    -------
    ndarray of shape (N,), int64
    """
    data, label = read_source(source, name=name, caps=Caps.of(max_bytes, max_unzipped_bytes))
    return parse_idx_labels(data, name=label)


def _magic(data: bytes, *, name: str, expected: int) -> int:
    """Check the 4-byte magic number and return it."""
    what = "image" if expected == IMAGES_MAGIC else "label"
    if len(data) < 4:
        raise DataError(
            f"{name} is too short ({len(data)} bytes) to be an IDX {what} file. "
            "Check that you picked the right file and that it downloaded completely."
        )
    magic = int.from_bytes(data[:4], "big")
    if magic == expected:
        return magic
    if magic in (IMAGES_MAGIC, LABELS_MAGIC):
        other = "an image" if magic == IMAGES_MAGIC else "a label"
        raise DataError(
            f"{name}: this looks like {other} file (magic number 0x{magic:08X}), but {what}s were "
            f"expected (magic 0x{expected:08X}). The image and label files seem swapped."
        )
    if data[:2] == b"\x00\x00" and data[2] in DTYPE_NAMES:
        raise DataError(
            f"{name}: IDX magic number 0x{magic:08X} means {DTYPE_NAMES[data[2]]} data with "
            f"{data[3]} dimensions, but an IDX {what} file needs magic 0x{expected:08X} "
            f"(uint8, {expected & 0xFF} dimensions). Save it as uint8 images/labels."
        )
    raise DataError(
        f"{name} is not an IDX {what} file: its magic number is 0x{magic:08X}, expected "
        f"0x{expected:08X}. Pick MNIST-style files (e.g. train-images-idx3-ubyte[.gz])."
    )


def _dims(data: bytes, n_dims: int, *, name: str) -> list[int]:
    """Read ``n_dims`` big-endian uint32 sizes after the magic number."""
    end = 4 + 4 * n_dims
    if len(data) < end:
        raise DataError(
            f"{name} is truncated: its {end}-byte IDX header is incomplete. Download it again."
        )
    return [int.from_bytes(data[i : i + 4], "big") for i in range(4, end, 4)]


def _payload(data: bytes, dims: list[int], *, name: str, what: str) -> bytes:
    """Return the data bytes after the header, checking the count before any allocation."""
    header = 4 + 4 * len(dims)
    need = int(np.prod(dims, dtype=object))
    have = len(data) - header
    shape = " x ".join(str(d) for d in dims)
    if have < need:
        raise DataError(
            f"{name} is truncated: its header says {shape} {what} ({need:,} bytes) but only "
            f"{have:,} bytes follow. Download the file again."
        )
    if have > need:
        raise DataError(
            f"{name} has {have - need:,} bytes more than its header ({shape} {what}) describes. "
            "The file is damaged or not an IDX file; download it again."
        )
    return data[header:]


def parse_idx_images(data: bytes, *, name: str) -> np.ndarray:
    """Parse decompressed IDX image bytes.

    Returns
    -------
    ndarray of shape (N, H, W), uint8
    """
    _magic(data, name=name, expected=IMAGES_MAGIC)
    dims = _dims(data, 3, name=name)
    check_not_empty(dims[0], name=name)
    check_square_images(tuple(dims), name=name)
    payload = _payload(data, dims, name=name, what="pixels")
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims).copy()


def parse_idx_labels(data: bytes, *, name: str) -> np.ndarray:
    """Parse decompressed IDX label bytes.

    Returns
    -------
    ndarray of shape (N,), int64
    """
    _magic(data, name=name, expected=LABELS_MAGIC)
    dims = _dims(data, 1, name=name)
    check_not_empty(dims[0], name=name, what="labels")
    payload = _payload(data, dims, name=name, what="labels")
    return check_labels(np.frombuffer(payload, dtype=np.uint8), name=name)


def idx_role(file_name: str) -> str | None:
    """Map an MNIST file name (any folder, optional .gz, '.' or '-' before idx) to its role.

    Returns
    -------
    str or None
        "train_images", "train_labels", "test_images", "test_labels", or None.
    """
    base = file_name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if base.endswith(".gz"):
        base = base[:-3]
    return ROLES.get(base.replace(".", "-"))


def load_idx_folder(
    path: str | os.PathLike,
    *,
    name: str | None = None,
    test_fraction: float = 0.15,
    seed: int = 0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_unzipped_bytes: int | None = None,
) -> Dataset:
    """Load a folder holding MNIST-style IDX files.

    The folder needs train-images-idx3-ubyte and train-labels-idx1-ubyte (each raw or .gz,
    also spelled train-images.idx3-ubyte); t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte
    give the official test set, otherwise a stratified ``test_fraction`` is held out.

    Parameters
    ----------
    path : str or PathLike
        The folder.
    name : str, optional
        Data set name; defaults to the folder name.
    test_fraction : float
        Held-out share when there are no t10k files.
    seed : int
        Seed of the held-out split.
    max_bytes, max_unzipped_bytes : int
        Caps on each file's size and decompressed size (by default
        ``UNZIP_FACTOR * max_bytes``).

    Returns
    -------
    Dataset
    """
    folder = Path(path)
    try:
        label = name or folder.resolve().name or str(folder)
    except (OSError, ValueError):
        label = name or str(folder)
    if not is_dir(folder):
        raise DataError(f"{label}: folder not found at {folder}. Check the path.")
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError as exc:
        raise DataError(
            f"{label}: the folder cannot be listed ({exc.strerror or exc}). Check its permissions."
        ) from exc
    caps = Caps.of(max_bytes, max_unzipped_bytes)
    files = {p.name: (lambda p=p: read_source(p, name=p.name, caps=caps)[0]) for p in entries}
    return _from_readers(files, label, test_fraction, seed)


def load_idx_files(
    files: Mapping[str, bytes],
    *,
    name: str | None = None,
    test_fraction: float = 0.15,
    seed: int = 0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_unzipped_bytes: int | None = None,
) -> Dataset:
    """Load MNIST-style IDX files given as ``{file name: content}`` (e.g. browser uploads).

    Files are paired by their MNIST names, as in :func:`load_idx_folder`; other files are
    ignored.

    Parameters
    ----------
    files : mapping of str to bytes
        File name (a folder prefix is ignored) to raw or gzip-compressed content.
    name : str, optional
        Data set name; defaults to "IDX files".
    test_fraction, seed, max_bytes, max_unzipped_bytes
        As in :func:`load_idx_folder`.

    Returns
    -------
    Dataset
    """
    caps = Caps.of(max_bytes, max_unzipped_bytes)
    readers = {
        file_name: (lambda c=content, n=file_name: read_source(c, name=n, caps=caps)[0])
        for file_name, content in files.items()
    }
    return _from_readers(readers, name or "IDX files", test_fraction, seed)


def _pick_roles(names: list[str], label: str) -> dict[str, str]:
    """Choose one file per role, preferring the uncompressed one when both exist."""
    chosen: dict[str, str] = {}
    for file_name in sorted(names, key=lambda n: n.lower().endswith(".gz")):
        role = idx_role(file_name)
        if role and role not in chosen:
            chosen[role] = file_name
    for role, partner in (("train_images", "train_labels"), ("train_labels", "train_images")):
        if role not in chosen:
            found = ", ".join(sorted(names)) or "no files"
            error = IncompleteFilesError if chosen else DataError
            raise error(
                f"{label}: no {_file_for(role)}[.gz] found (found: {found}). Provide both "
                f"{_file_for(role)} and {_file_for(partner)}, named as in MNIST."
            )
    if ("test_images" in chosen) != ("test_labels" in chosen):
        have, need = ("test_images", "test_labels")[:: 1 if "test_images" in chosen else -1]
        raise IncompleteFilesError(
            f"{label}: {chosen[have]} has no matching {_file_for(need)}[.gz]. Add it, or remove "
            f"{chosen[have]} to hold out part of the training set instead."
        )
    return chosen


def _file_for(role: str) -> str:
    """Canonical MNIST file name for ``role``."""
    return next(k for k, v in ROLES.items() if v == role)


def _from_readers(
    readers: Mapping[str, Callable[[], bytes]],
    label: str,
    test_fraction: float,
    seed: int,
) -> Dataset:
    """Read the chosen files (callables returning decompressed bytes), build the Dataset."""
    chosen = _pick_roles(list(readers), label)

    def read(role: str) -> bytes:
        return readers[chosen[role]]()

    x_train = parse_idx_images(read("train_images"), name=chosen["train_images"])
    y_train = parse_idx_labels(read("train_labels"), name=chosen["train_labels"])
    check_same_length(x_train, y_train, name=label, what="train files")
    x_test = y_test = None
    if "test_images" in chosen:
        x_test = parse_idx_images(read("test_images"), name=chosen["test_images"])
        y_test = parse_idx_labels(read("test_labels"), name=chosen["test_labels"])
        check_same_length(x_test, y_test, name=label, what="t10k files")
    return build_dataset(
        x_train,
        y_train,
        x_test,
        y_test,
        name=label,
        test_fraction=test_fraction,
        seed=seed,
        official_source=f"the t10k test files in {label}",
    )
