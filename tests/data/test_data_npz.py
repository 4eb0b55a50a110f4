"""Tests of the .npz loader."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nn_core.data import DataError, load_npz

UNPICKLED: list[str] = []


class Evil:
    """Records that it was unpickled."""

    def __reduce__(self):
        return (UNPICKLED.append, ("unpickled!",))


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


def test_pickled_object_array_is_refused_and_never_unpickled(make) -> None:
    _, y = make.images(30, 8, 3)
    evil = np.array([Evil(), Evil()], dtype=object)
    buf = io.BytesIO()
    np.savez(buf, x_train=evil, y_train=y)
    UNPICKLED.clear()
    with pytest.raises(DataError, match="pickle") as info:
        load_npz(buf.getvalue(), name="evil.npz")
    assert UNPICKLED == []
    assert "x_train" in str(info.value) and "evil.npz" in str(info.value)


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
    with pytest.raises(DataError, match="scaled"):
        load_npz(make.npz_bytes(x_train=x / 255.0, y_train=y))
    with pytest.raises(DataError, match=r"0\.\.255"):
        load_npz(make.npz_bytes(x_train=x.astype(int) * 2, y_train=y))
    xf = x.astype(float)
    xf[1, 2, 3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        load_npz(make.npz_bytes(x_train=xf, y_train=y))
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
    with pytest.raises(DataError, match="grayscale"):
        load_npz(make.npz_bytes(x_train=np.zeros((30, 8, 8, 3)), y_train=y))
    with pytest.raises(DataError, match="zero images"):
        load_npz(make.npz_bytes(x_train=x[:0], y_train=y[:0]))


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


def test_uncompressed_size_cap(make) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        arr = io.BytesIO()
        np.save(arr, np.zeros((4000, 32, 32), np.uint8))
        zf.writestr("x_train.npy", arr.getvalue())
    assert len(buf.getvalue()) < 100_000
    with pytest.raises(DataError, match="too large"):
        load_npz(buf.getvalue(), max_bytes=1_000_000)
