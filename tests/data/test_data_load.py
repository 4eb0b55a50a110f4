"""Tests of the load_dataset dispatcher."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from nn_core.data import DataError, IncompleteFilesError, load_dataset


def test_mnist() -> None:
    ds = load_dataset("mnist")
    assert ds.name == "MNIST" and ds.x_train.shape == (60000, 28, 28)


def test_folder(make, tmp_path: Path) -> None:
    x, y = make.images(30, 8, 3)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(make.idx_images(x))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(make.gz(make.idx_labels(y)))
    ds = load_dataset(tmp_path)
    assert ds.name == tmp_path.name and len(ds.y_train) + len(ds.y_test) == 30
    assert load_dataset(str(tmp_path)).name == tmp_path.name


def test_by_content_and_extension(make, tmp_path: Path) -> None:
    x, y = make.images(30, 8, 3)
    csv = make.csv_text(x, y).encode()
    npz = make.npz_bytes(x_train=x, y_train=y, x_test=x, y_test=y)
    (tmp_path / "a.csv").write_bytes(csv)
    (tmp_path / "a.csv.gz").write_bytes(make.gz(csv))
    (tmp_path / "a.npz").write_bytes(npz)
    (tmp_path / "noext").write_bytes(npz)
    assert not load_dataset(tmp_path / "a.csv").test_is_official
    assert load_dataset(tmp_path / "a.csv.gz").name == "a.csv.gz"
    assert load_dataset(tmp_path / "a.npz").test_is_official
    assert load_dataset(tmp_path / "noext").test_is_official
    assert load_dataset(csv, name="raw").name == "raw"
    upload = io.BytesIO(npz)
    upload.name = "up.npz"
    assert load_dataset(upload).name == "up.npz"


def test_uploaded_idx_files(make) -> None:
    x, y = make.images(30, 8, 3)
    files = {
        "train-images-idx3-ubyte.gz": make.gz(make.idx_images(x)),
        "train-labels-idx1-ubyte.gz": make.gz(make.idx_labels(y)),
    }
    ds = load_dataset(files)
    assert ds.name == "IDX files" and np.bincount(ds.y_test).tolist() == [2, 2, 2]
    uploads = []
    for file_name, content in files.items():
        f = io.BytesIO(content)
        f.name = file_name
        uploads.append(f)
    ds = load_dataset(uploads, name="up")
    assert ds.name == "up" and len(ds.y_train) + len(ds.y_test) == 30


def test_single_idx_file_needs_partner(make, tmp_path: Path) -> None:
    x, y = make.images(30, 8, 3)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(make.gz(make.idx_images(x)))
    with pytest.raises(IncompleteFilesError, match="label file"):
        load_dataset(path)
    with pytest.raises(IncompleteFilesError, match="separate image file"):
        load_dataset(make.idx_labels(y))


def test_only_a_missing_partner_makes_a_set_incomplete(make) -> None:
    x, y = make.images(30, 8, 3)
    with pytest.raises(IncompleteFilesError, match="train-labels-idx1-ubyte"):
        load_dataset({"train-images-idx3-ubyte": make.idx_images(x)})
    unrelated = {"a.csv": make.csv_text(x, y).encode(), "b.csv": make.csv_text(x, y).encode()}
    with pytest.raises(DataError, match="no train-images-idx3-ubyte") as info:
        load_dataset(unrelated)
    assert not isinstance(info.value, IncompleteFilesError)


def test_unknown_and_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not recognised"):
        load_dataset(bytes(range(256)) * 4, name="blob.bin")
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"not an \.npz"):
        load_dataset(b"plain text", name="fake.npz")


def test_unlabelled_csv_explains(make) -> None:
    x, _ = make.images(30, 8, 3)
    with pytest.raises(DataError, match="'label'"):
        load_dataset(make.csv_text(x).encode(), name="test.csv")
