"""Kaggle's digit-recognizer train.csv, rebuilt from the shipped MNIST for realistic tests.

Kaggle's file holds 42,000 MNIST digits: a header ``label,pixel0,...,pixel783`` then one
image per line, integers, ``\\n`` line ends (about 77 MB; about 9 MB gzipped). The same
layout from the first 42,000 shipped training digits gives a file of the same size and
kind, without downloading anything.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from nn_core.data import load_mnist

N_ROWS = 42_000
_CELLS = np.array([str(v).encode() for v in range(256)], dtype=object)


def kaggle_train_csv(n_rows: int = N_ROWS) -> bytes:
    """The bytes of a Kaggle-format train.csv of the first ``n_rows`` MNIST training digits.

    Returns
    -------
    bytes
        Header ``label,pixel0,...,pixel783`` and ``n_rows`` lines of 785 integers.
    """
    mnist = load_mnist()
    x = mnist.x_train[:n_rows].reshape(n_rows, -1)
    y = mnist.y_train[:n_rows]
    header = ",".join(["label", *(f"pixel{i}" for i in range(x.shape[1]))]).encode()
    lines = [header]
    for label, row in zip(y, x):
        lines.append(b",".join([_CELLS[label], *_CELLS[row]]))
    return b"\n".join(lines) + b"\n"


def write_kaggle_train(folder: Path, n_rows: int = N_ROWS) -> tuple[Path, Path]:
    """Write ``train.csv`` and ``train.csv.gz`` into ``folder``; return both paths."""
    data = kaggle_train_csv(n_rows)
    raw = folder / "train.csv"
    raw.write_bytes(data)
    packed = folder / "train.csv.gz"
    packed.write_bytes(gzip.compress(data, compresslevel=6))
    return raw, packed
