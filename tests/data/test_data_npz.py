"""Tests of the .npz loader."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from nn_core.data import DataError, load_npz


@pytest.mark.parametrize(("side", "k"), [(8, 3), (28, 10)])
def test_with_test_set(make, tmp_path: Path, side: int, k: int) -> None:
    x, y = make.images(30, side, k)
    xt, yt = make.images(10, side, k, seed=3)
    path = tmp_path / "mine.npz"
    path.write_bytes(make.npz_bytes(x_train=x, y_train=y, x_test=xt, y_test=yt, notes=np.ones(3)))
    ds = load_npz(path)
    assert ds.name == "mine.npz" and ds.test_is_official and ds.n_classes == k
    assert np.array_equal(ds.x_train, x) and np.array_equal(ds.y_test, yt)
    assert "x_test/y_test in mine.npz" in ds.test_source


def test_without_test_set_holds_out(make) -> None:
    x, y = make.images(60, 8, 3)
    ds = load_npz(make.npz_bytes(x_train=x, y_train=y), test_fraction=0.25, seed=2)
    assert not ds.test_is_official
    assert np.bincount(ds.y_test).tolist() == [5, 5, 5]
    assert ds.name == "the uploaded data"


def test_flat_and_channel_shapes_and_dtypes(make) -> None:
    x, y = make.images(30, 8, 3)
    flat = load_npz(make.npz_bytes(x_train=x.reshape(30, 64).astype(np.int32), y_train=y))
    chan = load_npz(make.npz_bytes(x_train=x[..., None].astype(np.float32), y_train=y[:, None]))
    for ds in (flat, chan):
        assert ds.image_shape == (8, 8) and ds.x_train.dtype == np.uint8
        full = np.concatenate([ds.x_train, ds.x_test])
        assert sorted(map(bytes, full)) == sorted(map(bytes, x))


def test_compressed_file_like(make) -> None:
    x, y = make.images(30, 8, 3)
    buf = io.BytesIO()
    np.savez_compressed(buf, x_train=x, y_train=y)
    buf.name = "c.npz"
    assert load_npz(buf).name == "c.npz"


def test_missing_keys_named(make) -> None:
    x, y = make.images(30, 8, 3)
    with pytest.raises(DataError, match="no 'x_train'") as info:
        load_npz(make.npz_bytes(X=x, y_train=y))
    assert "X" in str(info.value)
    with pytest.raises(DataError, match="no 'y_train'"):
        load_npz(make.npz_bytes(x_train=x))
    with pytest.raises(DataError, match="'x_test' but no 'y_test'"):
        load_npz(make.npz_bytes(x_train=x, y_train=y, x_test=x))


def test_length_mismatch(make) -> None:
    x, y = make.images(30, 8, 3)
    with pytest.raises(DataError, match="30 images but 29 labels"):
        load_npz(make.npz_bytes(x_train=x, y_train=y[:29]))
    with pytest.raises(DataError, match="x_test vs y_test"):
        load_npz(make.npz_bytes(x_train=x, y_train=y, x_test=x, y_test=y[:3]))


def test_bad_values(make) -> None:
    x, y = make.images(30, 8, 3)
    with pytest.raises(DataError, match="dtype"):
        load_npz(make.npz_bytes(x_train=x.astype(str), y_train=y))
    with pytest.raises(DataError, match="test labels include class 5"):
        load_npz(make.npz_bytes(x_train=x, y_train=y, x_test=x[:2], y_test=np.array([0, 5])))


def test_bad_shapes(make) -> None:
    x, y = make.images(30, 8, 3)
    with pytest.raises(DataError, match="perfect square"):
        load_npz(make.npz_bytes(x_train=x.reshape(30, 64)[:, :60], y_train=y))
    with pytest.raises(DataError, match="square"):
        load_npz(make.npz_bytes(x_train=x[:, :, :6], y_train=y))


def test_not_an_npz(make) -> None:
    x, _ = make.images(3, 8, 3)
    buf = io.BytesIO()
    np.save(buf, x)
    with pytest.raises(DataError, match=r"single \.npy"):
        load_npz(buf.getvalue())
    with pytest.raises(DataError, match=r"not an \.npz"):
        load_npz(b"hello world")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        load_npz(make.npz_bytes(x_train=x)[:200])
