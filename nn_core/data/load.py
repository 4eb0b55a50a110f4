"""One entry point that picks the right loader for a source."""

from __future__ import annotations

import os
from collections.abc import Mapping

from nn_core.data.dataset import Dataset
from nn_core.data.errors import DataError, IncompleteFilesError
from nn_core.data.idx import IMAGES_MAGIC, LABELS_MAGIC, load_idx_files, load_idx_folder
from nn_core.data.kaggle_csv import parse_labelled_csv
from nn_core.data.mnist import load_mnist
from nn_core.data.npz import NPY_MAGIC, ZIP_MAGIC, parse_npz
from nn_core.data.validate import DEFAULT_MAX_BYTES, Caps, Source, is_dir, read_source, source_name
from nn_core.safe_read import read_bounded

SUPPORTED = (
    "'mnist', a labelled .csv (label,pixel0,...), an .npz with x_train/y_train, or a folder "
    "(or set of uploaded files) with MNIST-style IDX files"
)


def load_dataset(
    source: Source | Mapping[str, bytes],
    *,
    name: str | None = None,
    test_fraction: float = 0.15,
    seed: int = 0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_unzipped_bytes: int | None = None,
) -> Dataset:
    """Load a labelled data set from any supported source.

    Parameters
    ----------
    source : str, PathLike, bytes, binary file-like, mapping or list of uploaded files
        ``"mnist"`` gives the shipped MNIST; a folder is read as IDX files; a
        ``{file name: bytes}`` mapping or a list of uploaded files (objects with ``.name``
        and ``.read()``) as IDX files; anything else is recognised by content (zip magic
        -> .npz, IDX magic, text -> CSV), gzip-compressed or not.
    name : str, optional
        Name for messages and ``Dataset.name``; defaults to the file or folder name.
    test_fraction : float
        Held-out share when the source has no separate test set, in (0, 1).
    seed : int
        Seed of the held-out split.
    max_bytes : int
        Cap on each file's size.
    max_unzipped_bytes : int, optional
        Cap on each file's decompressed size (``UNZIP_FACTOR * max_bytes`` by default).

    Returns
    -------
    Dataset
    """
    caps = Caps.of(max_bytes, max_unzipped_bytes)
    options = {
        "name": name,
        "test_fraction": test_fraction,
        "seed": seed,
        "max_bytes": caps.file,
        "max_unzipped_bytes": caps.unzipped,
    }
    if isinstance(source, str) and source.strip().lower() == "mnist":
        return load_mnist()
    if isinstance(source, Mapping):
        return load_idx_files(source, **options)
    if isinstance(source, (list, tuple)):
        return load_idx_files(_read_uploads(source, caps), **options)
    if isinstance(source, (str, os.PathLike)) and is_dir(source):
        return load_idx_folder(source, **options)
    data, label = read_source(source, name=name, caps=caps)
    return _dispatch(data, label, test_fraction, seed, caps)


def _read_uploads(files: list | tuple, caps: Caps) -> dict[str, bytes]:
    """Turn a list of uploaded files into ``{file name: bytes as stored}``."""
    out = {}
    for f in files:
        label = source_name(f)
        out[label] = read_bounded(
            f, label=label, max_bytes=caps.file, error=DataError, kind="a data file"
        )
    return out


def _dispatch(data: bytes, label: str, test_fraction: float, seed: int, caps: Caps) -> Dataset:
    """Pick the parser for decompressed ``data`` by content, then by file name."""
    lower = label.lower().removesuffix(".gz")
    if data.startswith(ZIP_MAGIC) or data.startswith(NPY_MAGIC) or lower.endswith(".npz"):
        return parse_npz(data, name=label, test_fraction=test_fraction, seed=seed, caps=caps)
    if data[:3] == b"\x00\x00\x08" and len(data) >= 4:
        raise _idx_alone(int.from_bytes(data[:4], "big"), label)
    if lower.endswith((".csv", ".txt")) or _looks_like_text(data):
        return parse_labelled_csv(data, name=label, test_fraction=test_fraction, seed=seed)
    raise DataError(f"{label}: file format not recognised. Use {SUPPORTED}.")


def _idx_alone(magic: int, label: str) -> DataError:
    """Error for a single IDX file, which lacks its partner."""
    if magic == IMAGES_MAGIC:
        return IncompleteFilesError(
            f"{label} is an IDX image file; its labels are in a separate label file "
            "(e.g. train-labels-idx1-ubyte). Upload both files together, or put them in one "
            "folder and load the folder."
        )
    if magic == LABELS_MAGIC:
        return IncompleteFilesError(
            f"{label} is an IDX label file; the images are in a separate image file "
            "(e.g. train-images-idx3-ubyte). Upload both files together, or put them in one "
            "folder and load the folder."
        )
    return DataError(
        f"{label} looks like an IDX file with magic number 0x{magic:08X}, but only uint8 "
        "image (0x00000803) and label (0x00000801) files are supported."
    )


def _looks_like_text(data: bytes) -> bool:
    """True when the first KiB decodes as UTF-8 without NUL bytes."""
    head = data[:1024]
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(head) - 4
    return True
