"""Small generated data files for the nn_core.data tests."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.kaggle_train import write_kaggle_train


def images(n: int = 30, side: int = 8, n_classes: int = 3, seed: int = 0):
    """Return (x (n, side, side) uint8, y (n,) int64) with balanced classes."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
    y = np.arange(n, dtype=np.int64) % n_classes
    return x, y


def idx_images(x: np.ndarray) -> bytes:
    """Encode (N, H, W) uint8 as an IDX image file."""
    n, h, w = x.shape
    header = (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, h, w))
    return header + np.asarray(x, dtype=np.uint8).tobytes()


def idx_labels(y: np.ndarray) -> bytes:
    """Encode (N,) labels as an IDX label file."""
    header = (0x801).to_bytes(4, "big") + len(y).to_bytes(4, "big")
    return header + np.asarray(y, dtype=np.uint8).tobytes()


def csv_text(x: np.ndarray, y: np.ndarray | None = None, fmt: str = "%d") -> str:
    """Encode images (N, H, W) and optional labels as a Kaggle-style CSV."""
    flat = x.reshape(len(x), -1)
    cols = [f"pixel{i}" for i in range(flat.shape[1])]
    rows = flat if y is None else np.column_stack([y, flat])
    if y is not None:
        cols = ["label", *cols]
    buf = io.StringIO()
    np.savetxt(buf, rows, fmt=fmt, delimiter=",", header=",".join(cols), comments="")
    return buf.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """Encode arrays as an .npz archive."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.fixture
def make() -> SimpleNamespace:
    """Helpers that build small data files in memory."""
    return SimpleNamespace(
        images=images,
        idx_images=idx_images,
        idx_labels=idx_labels,
        csv_text=csv_text,
        npz_bytes=npz_bytes,
        gz=gzip.compress,
    )


@pytest.fixture(scope="session")
def kaggle_train(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Kaggle's train.csv (42,000 MNIST rows, ~73 MB) and train.csv.gz, built once."""
    return write_kaggle_train(tmp_path_factory.mktemp("kaggle"))
