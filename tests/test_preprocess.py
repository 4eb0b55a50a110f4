"""Canvas and image preprocessing: MNIST's own recipe (20 px box, centre of mass at 14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nn_core.preprocess import drawing_strength, ink_box, preprocess_drawing, preprocess_image

MNIST = Path(__file__).resolve().parents[1] / "nn_core" / "data" / "mnist.npz"


def white_on_black(height: int = 280, width: int = 280) -> np.ndarray:
    canvas = np.zeros((height, width, 4), np.uint8)
    canvas[..., 3] = 255
    return canvas


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    m = image.astype(np.float64)
    total = m.sum()
    return (
        float(np.arange(m.shape[0]) @ m.sum(axis=1)) / total,
        float(np.arange(m.shape[1]) @ m.sum(axis=0)) / total,
    )


def bbox(image: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def test_small_off_centre_stroke_is_scaled_and_centred():
    canvas = white_on_black()
    canvas[20:60, 220:228, :3] = 255  # a short vertical bar in the top-right corner
    canvas[20:26, 210:228, :3] = 255  # with a hook, so it is not symmetric
    out = preprocess_drawing(canvas)
    assert out.shape == (28, 28)
    assert out.dtype == np.uint8
    assert out.max() == 255
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
    assert bbox(out)[0] == 20


def test_wide_stroke_is_20_wide():
    canvas = white_on_black()
    canvas[140:150, 30:250, :3] = 255
    out = preprocess_drawing(canvas)
    height, width = bbox(out)
    assert width == 20
    assert height < 5
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


@pytest.mark.parametrize("alpha", [0, 255])
def test_empty_canvas_is_none(alpha):
    canvas = np.zeros((200, 200, 4), np.uint8)
    canvas[..., 3] = alpha
    assert preprocess_drawing(canvas) is None
    canvas[50, 50, :3] = 5  # a speck below the threshold
    assert preprocess_drawing(canvas) is None


def test_black_on_transparent_equals_white_on_black():
    opaque = white_on_black(200, 150)
    transparent = np.zeros((200, 150, 4), np.uint8)
    yy, xx = np.mgrid[:200, :150]
    ring = np.abs(np.hypot(yy - 90, xx - 70) - 40) < 6
    opaque[ring, :3] = 255
    transparent[ring, 3] = 255  # black stroke: RGB stays 0, only alpha
    coloured = transparent.copy()
    coloured[ring, :3] = (200, 30, 90)
    a = preprocess_drawing(opaque)
    b = preprocess_drawing(transparent)
    c = preprocess_drawing(coloured)
    assert a is not None
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match="RGBA"):
        preprocess_drawing(np.zeros((28, 28, 3), np.uint8))


@pytest.fixture(scope="module")
def mnist_digits() -> np.ndarray:
    with np.load(MNIST, allow_pickle=False) as npz:
        return npz["x_test"][:100]


def test_mnist_digit_survives_preprocess_image(mnist_digits):
    correlations = []
    for digit in mnist_digits:
        out = preprocess_image(digit)
        assert out.shape == (28, 28) and out.dtype == np.uint8
        correlations.append(np.corrcoef(out.ravel(), digit.ravel())[0, 1])
    assert np.median(correlations) > 0.95
    assert min(correlations) > 0.8


def test_dark_digit_on_white_photo_is_inverted(mnist_digits):
    digit = mnist_digits[0]
    big = np.kron(digit, np.ones((6, 6), np.uint8))
    paper = (235 - big.astype(np.int32) * 200 // 255).astype(np.uint8)  # gray ink, off-white
    rgb = np.stack([paper, paper, paper], axis=-1)
    out = preprocess_image(rgb)
    assert np.corrcoef(out.ravel(), digit.ravel())[0, 1] > 0.9
    as_float = preprocess_image(paper.astype(np.float64) / 255.0)
    assert np.corrcoef(as_float.ravel(), digit.ravel())[0, 1] > 0.9


def test_blank_photo_is_none():
    rng = np.random.default_rng(0)
    paper = (230 + rng.integers(-5, 6, size=(300, 200))).astype(np.uint8)
    assert preprocess_image(paper) is None


def test_drawing_strength_and_ink_box():
    canvas = white_on_black(200, 150)
    canvas[30:50, 40:100, :3] = 255
    strength = drawing_strength(canvas)
    assert strength.shape == (200, 150)
    assert ink_box(strength) == (20, 60)
    assert ink_box(drawing_strength(white_on_black())) is None
    with pytest.raises(ValueError, match="RGBA"):
        drawing_strength(np.zeros((5, 5, 3), np.uint8))
