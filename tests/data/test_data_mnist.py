"""Tests of the shipped MNIST."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from nn_core.data import MNIST_PATH, MNIST_SHA256, DataError, load_mnist
from nn_core.data import mnist as mnist_module

TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_shapes_dtypes_counts() -> None:
    ds = load_mnist()
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (10000, 28, 28) and ds.x_test.dtype == np.uint8
    assert ds.y_train.shape == (60000,) and ds.y_train.dtype == np.int64
    assert ds.y_test.shape == (10000,) and ds.y_test.dtype == np.int64
    assert np.bincount(ds.y_test).tolist() == TEST_COUNTS
    assert np.bincount(ds.y_train).tolist() == TRAIN_COUNTS
    assert ds.n_classes == 10 and ds.name == "MNIST" and ds.test_is_official
    assert "10,000" in ds.test_source
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0


def test_read_only() -> None:
    ds = load_mnist()
    for arr in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        assert not arr.flags.writeable


def test_a_fresh_copy_is_read_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = load_mnist()
    copy = tmp_path / "mnist.npz"
    shutil.copyfile(MNIST_PATH, copy)
    monkeypatch.setattr(mnist_module, "MNIST_PATH", copy)
    fresh = load_mnist()
    assert fresh is not shipped  # read from the copy, not the cache
    np.testing.assert_array_equal(fresh.x_test, shipped.x_test)
    np.testing.assert_array_equal(fresh.y_train, shipped.y_train)


def test_tampered_copy_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "mnist.npz"
    shutil.copyfile(MNIST_PATH, copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(mnist_module, "MNIST_PATH", copy)
    with pytest.raises(DataError, match="sha256") as info:
        load_mnist()
    assert MNIST_SHA256 in str(info.value) and "build_mnist" in str(info.value)


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist_module, "MNIST_PATH", tmp_path / "nope.npz")
    with pytest.raises(DataError, match="missing"):
        load_mnist()
