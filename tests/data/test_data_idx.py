"""Tests of the IDX loaders."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from nn_core.data import (
    DataError,
    load_idx_files,
    load_idx_folder,
    load_idx_images,
    load_idx_labels,
)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(("side", "k"), [(8, 3), (28, 10)])
def test_images_and_labels_round_trip(make, tmp_path: Path, compress: bool, side: int, k: int):
    x, y = make.images(30, side, k)
    img, lab = make.idx_images(x), make.idx_labels(y)
    if compress:
        img, lab = make.gz(img), make.gz(lab)
    (tmp_path / "imgs").write_bytes(img)
    (tmp_path / "labs").write_bytes(lab)
    got_x = load_idx_images(tmp_path / "imgs")
    got_y = load_idx_labels(str(tmp_path / "labs"))
    assert got_x.dtype == np.uint8 and got_x.shape == (30, side, side)
    assert np.array_equal(got_x, x)
    assert got_y.dtype == np.int64 and np.array_equal(got_y, y)
    assert np.array_equal(load_idx_images(img), x)  # raw bytes source


def test_folder_with_t10k_uses_official_test(make, tmp_path: Path) -> None:
    x, y = make.images(30, 8, 3)
    xt, yt = make.images(12, 8, 3, seed=5)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(make.gz(make.idx_images(x)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(make.idx_labels(y))
    (tmp_path / "t10k-images.idx3-ubyte").write_bytes(make.idx_images(xt))
    (tmp_path / "t10k-labels.idx1-ubyte.gz").write_bytes(make.gz(make.idx_labels(yt)))
    (tmp_path / "README.txt").write_text("ignored")
    ds = load_idx_folder(tmp_path)
    assert ds.test_is_official and ds.name == tmp_path.name
    assert np.array_equal(ds.x_train, x) and np.array_equal(ds.y_train, y)
    assert np.array_equal(ds.x_test, xt) and np.array_equal(ds.y_test, yt)
    assert ds.n_classes == 3 and "12 images" in ds.test_source


def test_folder_without_t10k_holds_out_stratified(make, tmp_path: Path) -> None:
    x, y = make.images(60, 8, 3)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(make.idx_images(x))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(make.idx_labels(y))
    ds = load_idx_folder(tmp_path, test_fraction=0.2, seed=1)
    assert not ds.test_is_official
    assert len(ds.y_train) + len(ds.y_test) == 60
    assert np.bincount(ds.y_test).tolist() == [4, 4, 4]
    assert "20%" in ds.test_source and "12 images" in ds.test_source
    again = load_idx_folder(tmp_path, test_fraction=0.2, seed=1)
    assert np.array_equal(again.x_test, ds.x_test)


def test_files_mapping(make) -> None:
    x, y = make.images(30, 8, 3)
    xt, yt = make.images(9, 8, 3, seed=2)
    files = {
        "train-images-idx3-ubyte.gz": make.gz(make.idx_images(x)),
        "some/dir/train-labels-idx1-ubyte": make.idx_labels(y),
        "t10k-images-idx3-ubyte": make.idx_images(xt),
        "t10k-labels-idx1-ubyte": make.idx_labels(yt),
    }
    ds = load_idx_files(files)
    assert ds.test_is_official and np.array_equal(ds.x_test, xt)
    files.pop("t10k-labels-idx1-ubyte")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_idx_files(files)
    files.pop("t10k-images-idx3-ubyte")
    ds = load_idx_files(files, name="upload")
    assert not ds.test_is_official and ds.name == "upload"


def test_test_images_of_another_size_are_refused(make) -> None:
    x, y = make.images(30, 8, 3)
    xt, yt = make.images(9, 6, 3, seed=2)
    files = {
        "train-images-idx3-ubyte": make.idx_images(x),
        "train-labels-idx1-ubyte": make.idx_labels(y),
        "t10k-images-idx3-ubyte": make.idx_images(xt),
        "t10k-labels-idx1-ubyte": make.idx_labels(yt),
    }
    with pytest.raises(DataError, match="training images are 8x8 but test images are 6x6"):
        load_idx_files(files)


def test_missing_label_file_is_named(make) -> None:
    x, _ = make.images(30, 8, 3)
    with pytest.raises(DataError, match="train-labels-idx1-ubyte"):
        load_idx_files({"train-images-idx3-ubyte": make.idx_images(x)})


def test_wrong_magic(make) -> None:
    data = b"\x12\x34\x56\x78" + bytes(100)
    with pytest.raises(DataError, match="magic") as info:
        load_idx_images(data, name="f.bin")
    assert "0x00000803" in str(info.value) and "f.bin" in str(info.value)
    with pytest.raises(DataError, match="0x00000801"):
        load_idx_labels(data)


def test_swapped_files(make) -> None:
    x, y = make.images(30, 8, 3)
    with pytest.raises(DataError, match="looks like a label file"):
        load_idx_images(make.idx_labels(y))
    with pytest.raises(DataError, match="looks like an image file"):
        load_idx_labels(make.idx_images(x))
    files = {"train-images-idx3-ubyte": make.idx_labels(y)}
    files["train-labels-idx1-ubyte"] = make.idx_images(x)
    with pytest.raises(DataError, match="swapped"):
        load_idx_files(files)


def test_unsupported_idx_dtype() -> None:
    data = b"\x00\x00\x0d\x03" + bytes(12)
    with pytest.raises(DataError, match="float32"):
        load_idx_images(data)


def test_truncated(make) -> None:
    x, y = make.images(30, 8, 3)
    with pytest.raises(DataError, match="truncated"):
        load_idx_images(make.idx_images(x)[:-10])
    with pytest.raises(DataError, match="truncated"):
        load_idx_labels(make.idx_labels(y)[:-1])
    with pytest.raises(DataError, match="truncated"):
        load_idx_images(make.idx_images(x)[:10])


def test_count_mismatch(make) -> None:
    x, y = make.images(30, 8, 3)
    files = {
        "train-images-idx3-ubyte": make.idx_images(x),
        "train-labels-idx1-ubyte": make.idx_labels(y[:29]),
    }
    with pytest.raises(DataError, match="30 images but 29 labels"):
        load_idx_files(files)


def test_test_labels_outside_train_classes(make) -> None:
    x, y = make.images(30, 8, 3)
    files = {
        "train-images-idx3-ubyte": make.idx_images(x),
        "train-labels-idx1-ubyte": make.idx_labels(y),
        "t10k-images-idx3-ubyte": make.idx_images(x[:4]),
        "t10k-labels-idx1-ubyte": make.idx_labels(np.array([0, 1, 2, 7])),
    }
    with pytest.raises(DataError, match="test labels include class 7"):
        load_idx_files(files)


def _idx_header(*dims: int) -> bytes:
    return (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


def test_unzipped_cap_is_separate_from_the_file_cap(make) -> None:
    rng = np.random.default_rng(0)
    ink = rng.random((3000, 28, 28)) < 0.2  # sparse like digits: compresses a few times
    x = (ink * rng.integers(1, 256, ink.shape)).astype(np.uint8)
    raw = make.idx_images(x)
    packed = make.gz(raw)
    cap = (len(packed) + len(raw)) // 2  # the .gz fits the file cap, its content does not
    assert len(packed) < cap < len(raw)
    np.testing.assert_array_equal(load_idx_images(packed, max_bytes=cap), x)
    with pytest.raises(DataError, match="decompresses") as info:
        load_idx_images(packed, name="digits.gz", max_bytes=cap, max_unzipped_bytes=len(raw) - 1)
    message = str(info.value)
    assert "digits.gz" in message and "limit" in message and "max_bytes" not in message
    assert info.value.over_limit


def test_gzip_bomb_is_refused_by_its_ratio_within_the_caps() -> None:
    bomb = gzip.compress(_idx_header(100_000, 28, 28) + bytes(100_000 * 784))  # 78 MB -> 76 KB
    assert len(bomb) < 100_000
    with pytest.raises(DataError, match="compression bomb") as info:
        load_idx_images(bomb, name="bomb.gz")
    assert "bomb.gz" in str(info.value) and not info.value.over_limit


def test_small_degenerate_gzip_still_loads() -> None:
    zeros = gzip.compress(_idx_header(4096, 64, 64) + bytes(4096 * 64 * 64))  # 16 MB of zeros
    assert load_idx_images(zeros).shape == (4096, 64, 64)


def test_file_over_cap(make, tmp_path: Path) -> None:
    x, _ = make.images(30, 8, 3)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(make.idx_images(x))
    with pytest.raises(DataError, match="too large"):
        load_idx_images(path, max_bytes=100)


def test_corrupt_gzip(make) -> None:
    x, _ = make.images(30, 8, 3)
    with pytest.raises(DataError, match="gzip"):
        load_idx_images(make.gz(make.idx_images(x))[:-30])
