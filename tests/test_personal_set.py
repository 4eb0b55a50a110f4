"""nn_core.personal_set: the set's operations, the raw canvas it keeps, and the .npz that
the data loaders and the command line read back (never unpickled)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from nn_core.cli import main
from nn_core.data import DataError, load_dataset
from nn_core.personal_set import (
    RAW_SIDE,
    PersonalSet,
    add_sample,
    empty_set,
    load_personal_set,
    raw_from_canvas,
    relabel_sample,
    remove_sample,
    to_npz_bytes,
)


def _image(value: int) -> np.ndarray:
    image = np.zeros((28, 28), np.uint8)
    image[4:24, 12:16] = value
    return image


def _canvas(width: int = 280) -> np.ndarray:
    """A white vertical stroke on the Draw canvas's opaque black."""
    canvas = np.zeros((width, width, 4), np.uint8)
    canvas[..., 3] = 255
    canvas[40:240, 130:150, :3] = 255
    return canvas


def _three() -> PersonalSet:
    s = empty_set()
    s = add_sample(s, _image(100), 1, raw_from_canvas(_canvas()))
    s = add_sample(s, _image(150), 7)
    return add_sample(s, _image(200), 1)


def test_add_remove_relabel_and_counts():
    s = _three()
    assert len(s) == 3 and s.labels.tolist() == [1, 7, 1]
    assert s.counts().tolist() == [0, 2, 0, 0, 0, 0, 0, 1, 0, 0]
    fewer = remove_sample(s, 0)
    assert fewer.labels.tolist() == [7, 1] and fewer.images[0].max() == 150
    assert fewer.raws.shape == (2, RAW_SIDE, RAW_SIDE) and not fewer.raws.any()
    fixed = relabel_sample(s, 1, 4)
    assert fixed.labels.tolist() == [1, 4, 1] and s.labels.tolist() == [1, 7, 1]  # a new set


def test_samples_of_another_size_or_label_are_refused():
    s = empty_set()
    with pytest.raises(ValueError, match="28x28 uint8 images, got 16x16"):
        add_sample(s, np.zeros((16, 16), np.uint8), 3)
    with pytest.raises(ValueError, match="non-negative"):
        add_sample(s, _image(1), -1)
    with pytest.raises(IndexError, match="no sample 3"):
        remove_sample(_three(), 3)


def test_the_raw_canvas_is_the_drawing_downscaled():
    raw = raw_from_canvas(_canvas())
    assert raw.shape == (RAW_SIDE, RAW_SIDE) and raw.dtype == np.uint8
    # the stroke (columns 130..150 of 280) lands at columns 65..75 of 140, full white
    assert raw[30:110, 66:74].min() == 255 and raw[:, :60].max() == 0
    transparent = np.zeros((280, 280, 4), np.uint8)
    transparent[40:240, 130:150] = 255  # a white stroke on a transparent background
    assert np.array_equal(raw_from_canvas(transparent), raw)


def test_the_file_loads_through_the_data_loaders_and_back():
    s = _three()
    data = to_npz_bytes(s)
    dataset = load_dataset(io.BytesIO(data), name="my_digits.npz")
    assert np.array_equal(dataset.x_test, s.images) and dataset.y_test.tolist() == [1, 7, 1]
    back = load_personal_set(data, name="my_digits.npz")
    assert np.array_equal(back.images, s.images) and np.array_equal(back.labels, s.labels)
    assert np.array_equal(back.raws, s.raws)
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        assert sorted(archive.files) == ["raw_canvas", "x_test", "x_train", "y_test", "y_train"]


def test_a_set_of_one_kind_is_not_saved_in_a_form_the_loaders_refuse():
    one_kind = add_sample(add_sample(empty_set(), _image(9), 3), _image(9), 3)
    with pytest.raises(ValueError, match="at least two kinds"):
        to_npz_bytes(one_kind)


def test_a_data_set_made_elsewhere_gives_all_its_samples_without_raws():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    y = np.arange(40) % 4
    buffer = io.BytesIO()
    np.savez(buffer, x_train=x[:30], y_train=y[:30], x_test=x[30:], y_test=y[30:])
    back = load_personal_set(buffer.getvalue(), name="other.npz")
    assert len(back) == 40 and sorted(back.labels.tolist()) == sorted(y.tolist())
    assert not back.raws.any()


def test_raws_of_the_wrong_shape_are_dropped_not_trusted():
    s = _three()
    buffer = io.BytesIO()
    np.savez(
        buffer, x_train=s.images, y_train=s.labels, x_test=s.images, y_test=s.labels,
        raw_canvas=np.full((3, 10, 10), 7, np.uint8),
    )  # fmt: skip
    back = load_personal_set(buffer.getvalue(), name="odd.npz")
    assert len(back) == 3 and back.raws.shape == (3, RAW_SIDE, RAW_SIDE) and not back.raws.any()


def test_a_pickled_or_damaged_file_is_refused_with_the_loaders_message():
    s = _three()
    buffer = io.BytesIO()
    objects = np.array([{"evil": 1}] * 3, dtype=object)
    np.savez(buffer, x_train=s.images, y_train=objects, x_test=s.images, y_test=s.labels)
    with pytest.raises(
        DataError, match=r"pickled\.npz: .y_train. holds Python objects \(a pickle\)"
    ):
        load_personal_set(buffer.getvalue(), name="pickled.npz")
    with pytest.raises(DataError, match=r"cut\.npz is not a readable \.npz archive"):
        load_personal_set(to_npz_bytes(s)[:200], name="cut.npz")
    with pytest.raises(
        DataError, match=r"big\.npz is too large: 1,\d{3} bytes, over the 100 bytes limit"
    ):
        load_personal_set(to_npz_bytes(s), name="big.npz", max_bytes=100)


def test_the_command_line_evaluates_a_model_on_the_set(tmp_path, capsys):
    path = tmp_path / "my_digits.npz"
    path.write_bytes(to_npz_bytes(_three()))
    starter = Path(__file__).resolve().parents[1] / "assets" / "starter_model.npz"
    code = main(["evaluate", "--model", str(starter), "--data", str(path)])
    text = capsys.readouterr().out
    assert code == 0
    assert "x_test/y_test in my_digits.npz (3 images)" in text
