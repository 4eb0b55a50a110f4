"""Tests of the Dataset container."""

from __future__ import annotations

import numpy as np
import pytest

from nn_core.data import DataError, Dataset


def _dataset(n: int = 100, n_classes: int = 4) -> Dataset:
    rng = np.random.default_rng(1)
    y = rng.integers(0, n_classes, size=n)
    x = rng.integers(0, 256, size=(n, 6, 6), dtype=np.uint8)
    return Dataset(x, y, x[:10], y[:10], n_classes, name="toy", test_source="t")


def test_arrays_are_read_only_and_typed() -> None:
    ds = _dataset()
    for arr in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        assert not arr.flags.writeable
    with pytest.raises(ValueError):
        ds.x_train[0, 0, 0] = 1
    assert ds.y_train.dtype == np.int64 and ds.x_train.dtype == np.uint8
    assert ds.image_shape == (6, 6) and ds.n_features == 36
    assert ds.class_names == ("0", "1", "2", "3")


def test_caller_array_stays_writeable() -> None:
    x = np.zeros((4, 2, 2), np.uint8)
    y = np.array([0, 1, 0, 1])
    Dataset(x, y, x, y, 2)
    x[0, 0, 0] = 5
    assert x[0, 0, 0] == 5


def test_subset_is_stratified_exact_and_deterministic() -> None:
    ds = _dataset(1000, 4)
    sub = ds.subset(200, seed=3)
    assert len(sub.y_train) == 200
    expected = np.bincount(ds.y_train) * 200 / 1000
    assert np.all(np.abs(np.bincount(sub.y_train) - expected) < 1)
    again = ds.subset(200, seed=3)
    assert np.array_equal(sub.x_train, again.x_train)
    other = ds.subset(200, seed=4)
    assert not np.array_equal(sub.x_train, other.x_train)
    assert sub.x_test is ds.x_test and sub.name == ds.name
    assert not sub.x_train.flags.writeable


def test_subset_none_or_large_returns_self() -> None:
    ds = _dataset()
    assert ds.subset(None) is ds
    assert ds.subset(10**6) is ds
    with pytest.raises(DataError):
        ds.subset(0)


def test_rejects_labels_outside_classes_and_non_square() -> None:
    x = np.zeros((4, 2, 2), np.uint8)
    with pytest.raises(DataError, match="outside"):
        Dataset(x, np.array([0, 1, 2, 3]), x, np.array([0, 1, 0, 1]), 2)
    with pytest.raises(DataError, match="H == W"):
        Dataset(np.zeros((4, 2, 3), np.uint8), np.zeros(4), x, np.zeros(4), 1)
    with pytest.raises(DataError, match="class names"):
        Dataset(x, np.array([0, 1, 0, 1]), x, np.array([0, 1, 0, 1]), 2, class_names=("a",))
