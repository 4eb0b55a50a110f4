"""The full MNIST shipped with the package (see MNIST_README.md for provenance)."""

from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path

import numpy as np

from nn_core.data.dataset import Dataset
from nn_core.data.errors import DataError

MNIST_PATH = Path(__file__).resolve().parent / "mnist.npz"
MNIST_SHA256 = "99b6212d8b734503d7fa2e29ea6413bad62226998e56555f4a6b0b30072f1aec"
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
REBUILD = "python scripts/build_mnist.py"


def load_mnist() -> Dataset:
    """Load the shipped MNIST after checking its sha256.

    The result is cached per file (path, size, modification time); its arrays are read-only,
    so sharing it is safe.

    Returns
    -------
    Dataset
        x_train (60000, 28, 28) uint8, y_train (60000,) int64, x_test (10000, 28, 28) uint8,
        y_test (10000,) int64, 10 classes, the official MNIST test set.

    Raises
    ------
    DataError
        When the file is missing or its sha256 differs from ``MNIST_SHA256``.
    """
    path = Path(MNIST_PATH)
    try:
        stat = path.stat()
    except OSError as exc:
        raise DataError(
            f"The shipped MNIST file {path.name} is missing ({path}). Rebuild it with `{REBUILD}`."
        ) from exc
    return _load(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _load(path: str, size: int, mtime_ns: int) -> Dataset:
    """Read, verify and wrap the npz at ``path`` (size and mtime only key the cache)."""
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MNIST_SHA256:
        raise DataError(
            f"The shipped MNIST file {Path(path).name} is damaged or was changed: its sha256 is "
            f"{digest}, expected {MNIST_SHA256}. Restore it from git or rebuild it with "
            f"`{REBUILD}`."
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in MNIST_KEYS}
    return Dataset(
        arrays["x_train"],
        arrays["y_train"],
        arrays["x_test"],
        arrays["y_test"],
        10,
        name="MNIST",
        test_source=f"the official MNIST test set ({len(arrays['y_test']):,} images)",
        test_is_official=True,
    )
