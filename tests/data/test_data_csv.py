"""Tests of the Kaggle CSV loaders."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from nn_core.data import DataError, load_dataset, load_kaggle_csv, load_mnist, load_unlabelled_csv


def _header(d: int = 64, label: bool = True) -> str:
    cols = [f"pixel{i}" for i in range(d)]
    return ",".join((["label"] if label else []) + cols)


@pytest.mark.parametrize(("side", "k"), [(8, 3), (28, 10)])
def test_labelled_round_trip(make, tmp_path: Path, side: int, k: int) -> None:
    x, y = make.images(60, side, k)
    path = tmp_path / "train.csv"
    path.write_text(make.csv_text(x, y))
    ds = load_kaggle_csv(path, test_fraction=0.2)
    assert ds.name == "train.csv" and not ds.test_is_official and ds.n_classes == k
    assert ds.image_shape == (side, side) and ds.x_train.dtype == np.uint8
    assert len(ds.y_train) + len(ds.y_test) == 60
    xs = np.concatenate([ds.x_train, ds.x_test])
    ys = np.concatenate([ds.y_train, ds.y_test])
    got = sorted((int(lab), img.tobytes()) for lab, img in zip(ys, xs))
    assert got == sorted((int(lab), img.tobytes()) for lab, img in zip(y, x))
    assert "held out from train.csv" in ds.test_source


def test_gz_file_like_and_bytes(make) -> None:
    x, y = make.images(30, 8, 3)
    text = make.csv_text(x, y).encode()
    upload = io.BytesIO(make.gz(text))
    upload.name = "digits.csv.gz"
    upload.read()  # already consumed once, as Streamlit reruns do
    ds = load_kaggle_csv(upload)
    assert ds.name == "digits.csv.gz" and len(ds.y_train) + len(ds.y_test) == 30
    assert load_kaggle_csv(text, name="x").name == "x"


def test_unlabelled_round_trip(make) -> None:
    x, _ = make.images(20, 8, 3)
    got = load_unlabelled_csv(make.csv_text(x).encode())
    assert got.dtype == np.uint8 and np.array_equal(got, x)


def test_float_pixels_are_rounded(make) -> None:
    x, y = make.images(30, 8, 3)
    xf = np.clip(x.astype(float) + 0.3, 0, 255)
    ds = load_kaggle_csv(make.csv_text(xf, y, fmt="%.2f").encode())
    assert ds.x_train.dtype == np.uint8
    assert set(np.unique(np.concatenate([ds.x_train, ds.x_test]))) <= set(np.unique(x))


def test_no_header_with_a_column_count_that_fits_no_image() -> None:
    with pytest.raises(DataError, match=r"no header.*perfect square"):
        load_kaggle_csv(b"1,2,3\n4,5,6\n")


def _headerless(x, y, label_last: bool) -> bytes:
    rows = [
        [*map(str, img.ravel()), str(lab)] if label_last else [str(lab), *map(str, img.ravel())]
        for img, lab in zip(x, y)
    ]
    return "\n".join(",".join(r) for r in rows).encode()


@pytest.mark.parametrize("label_last", [False, True])
def test_headerless_mnist_style_csv_finds_its_label_column(make, label_last) -> None:
    x, y = make.images(40, 8, 3)
    x = x.copy()
    x[:, 0, 0] = 0  # digit images: the corners are blank
    x[:, -1, -1] = 0
    ds = load_kaggle_csv(_headerless(x, y, label_last), name="mnist_train.csv")
    got = np.concatenate([ds.x_train, ds.x_test])
    labels = np.concatenate([ds.y_train, ds.y_test])
    assert ds.image_shape == (8, 8) and len(got) == 40
    order = np.argsort([bytes(img) for img in got])
    expected = np.argsort([bytes(img) for img in x])
    np.testing.assert_array_equal(got[order], x[expected])
    np.testing.assert_array_equal(labels[order], y[expected])


def test_headerless_unlabelled_csv() -> None:
    images = load_unlabelled_csv(b"0,1,2,3\n4,5,6,7\n")
    np.testing.assert_array_equal(images, [[[0, 1], [2, 3]], [[4, 5], [6, 7]]])


@pytest.mark.parametrize(
    ("header", "word"),
    [
        (
            "label," + ",".join(f"pixel{i}" for i in range(63)) + ",extra",
            "unexpected columns: extra",
        ),
        (
            "label," + ",".join(f"pixel{i}" for i in range(64) if i != 5),
            "missing pixel columns pixel5",
        ),
        ("label," + ",".join(f"pix{i}" for i in range(64)), "unexpected columns: pix0"),
        ("label," + ",".join(f"pixel{i}" for i in [1, 0, *range(2, 64)]), "out of order"),
        ("label," + ",".join(f"pixel{i}" for i in [*range(63), 3]), "repeats pixel columns pixel3"),
    ],
)
def test_bad_pixel_columns(header: str, word: str) -> None:
    data = header + "\n" + ",".join(["1"] * 65) + "\n"
    with pytest.raises(DataError, match=word):
        load_kaggle_csv(data.encode())


def test_size_cap(make, tmp_path: Path) -> None:
    x, y = make.images(30, 8, 3)
    path = tmp_path / "big.csv"
    path.write_text(make.csv_text(x, y))
    with pytest.raises(DataError, match="too large") as info:
        load_kaggle_csv(path, max_bytes=1000)
    message = str(info.value)
    assert "big.csv" in message and f"{path.stat().st_size:,} bytes" in message
    assert "1,000 bytes limit" in message and "max_bytes" not in message
    assert info.value.over_limit
    upload = io.BytesIO(path.read_bytes())
    with pytest.raises(DataError, match="too large"):
        load_kaggle_csv(upload, max_bytes=1000)


def test_non_utf8_body() -> None:
    data = (_header() + "\n").encode() + b"\xff" * 65 + b"\n"
    with pytest.raises(DataError, match="not a text CSV"):
        load_kaggle_csv(data)


MIB = 1024**2


@pytest.mark.parametrize("which", ["raw", "gz"])
def test_kaggle_train_csv_loads_at_the_hosted_caps(kaggle_train, which: str) -> None:
    path = kaggle_train[0 if which == "raw" else 1]
    ds = load_dataset(path, max_bytes=100 * MIB, max_unzipped_bytes=300 * MIB)
    assert ds.name == path.name and ds.image_shape == (28, 28) and ds.x_train.dtype == np.uint8
    mnist = load_mnist()
    held_out = sum(round(n * 0.15) for n in np.bincount(mnist.y_train[:42_000]))
    assert (len(ds.y_train), len(ds.y_test)) == (42_000 - held_out, held_out)
    expected = mnist.x_train[:42_000].reshape(42_000, -1)
    got = np.concatenate([ds.x_train, ds.x_test]).reshape(42_000, -1)
    order = np.lexsort(got.T[::-1])
    np.testing.assert_array_equal(got[order], expected[np.lexsort(expected.T[::-1])])
    assert (
        np.bincount(np.concatenate([ds.y_train, ds.y_test])).tolist()
        == np.bincount(mnist.y_train[:42_000]).tolist()
    )


def test_kaggle_train_csv_is_refused_clearly_over_a_small_cap(kaggle_train) -> None:
    raw, packed = kaggle_train
    with pytest.raises(DataError, match="too large") as info:
        load_dataset(raw, max_bytes=50 * MIB)
    assert "train.csv" in str(info.value) and "73 MB" in str(info.value)
    assert "50 MB limit" in str(info.value)
    with pytest.raises(DataError, match="decompresses") as info:
        load_dataset(packed, max_bytes=50 * MIB, max_unzipped_bytes=50 * MIB)
    assert info.value.over_limit and "train.csv.gz" in str(info.value)


def test_labels_over_255_are_read_too(make) -> None:
    x, _ = make.images(40, 8, 3)
    y = np.array([0, 300, 999, 7] * 10)
    ds = load_kaggle_csv(make.csv_text(x, y).encode(), test_fraction=0.25)
    assert ds.n_classes == 1000 and ds.x_train.dtype == np.uint8
    assert sorted(np.concatenate([ds.y_train, ds.y_test]).tolist()) == sorted(y.tolist())
