"""The "not a digit" hint: rare on real digits re-drawn on the canvas, always on non-digits.

Real digits are MNIST *test* images traced with the Draw page's 18-px brush
(``tests/drawings.py``); the thresholds were chosen on *training* digits drawn the same way
(``benchmarks/drawing_check.py`` reports the full measurement).
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from nn_core.data import load_mnist
from nn_core.drawing_check import (
    K_NEIGHBOURS,
    LINE_MIN_ANGLE,
    MIN_EXTENT,
    N_COMPONENTS,
    DigitReference,
    check_drawing,
)
from nn_core.preprocess import preprocess_drawing
from tests import drawings

# Measured on 1,000 re-drawn test digits: 0.5% (benchmarks/drawing_check.py). The bound
# leaves room for the sampling noise of the 200 drawn here.
MAX_FALSE_ALARMS = 0.02
N_DIGITS = 200
N_EACH = 40


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def reference(mnist) -> DigitReference:
    return build(mnist)


def build(mnist) -> DigitReference:
    with threadpool_limits(1, "blas"):  # as the app does; LAPACK crawls on a busy machine
        return DigitReference.from_images(mnist.x_train)


def verdict(rgba: np.ndarray, reference: DigitReference | None):
    image = preprocess_drawing(rgba)
    assert image is not None
    return check_drawing(rgba, image, reference)


def test_real_digits_rarely_get_the_hint(mnist, reference):
    rng = np.random.default_rng(2024)
    picks = rng.choice(len(mnist.x_test), N_DIGITS, replace=False)
    reasons = [
        verdict(drawings.redraw_digit(mnist.x_test[i], rng), reference).reason for i in picks
    ]
    flagged = [r for r in reasons if r is not None]
    assert len(flagged) / N_DIGITS <= MAX_FALSE_ALARMS, flagged
    # The hints that name a shape never fire on a digit; only the distance may be unsure.
    assert set(flagged) <= {"unlike"}, flagged


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("dot", drawings.dot),
        ("line", drawings.line),
        ("blob", drawings.blob),
        ("dense scribble", lambda rng: drawings.scribble(rng, n_points=(20, 30))),
    ],
)
def test_every_non_digit_gets_the_hint(reference, kind, make):
    rng = np.random.default_rng(7)
    missed = []
    for i in range(N_EACH):
        check = verdict(make(rng), reference)
        if check.looks_like_a_digit:
            missed.append((i, check.scores))
    assert not missed, f"{len(missed)} of {N_EACH} {kind}s read as digits: {missed[:3]}"


def test_most_light_scribbles_get_the_hint(reference):
    """Scribbles through only 14-24 points are sometimes as compact as a messy 8."""
    rng = np.random.default_rng(8)
    flagged = [not verdict(drawings.scribble(rng), reference).looks_like_a_digit for _ in range(60)]
    assert np.mean(flagged) >= 0.8


def canvas_with(draw) -> np.ndarray:
    """A 280x280 opaque black canvas with a white shape drawn by ``draw(gray)``."""
    gray = np.zeros((280, 280), np.uint8)
    draw(gray)
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., :3] = gray[..., None]
    rgba[..., 3] = 255
    return rgba


def test_tiny_dot_is_too_small_and_says_how_big():
    rgba = canvas_with(lambda g: g.__setitem__((slice(100, 118), slice(150, 168)), 255))
    check = verdict(rgba, None)
    assert check.reason == "too_small"
    assert check.scores["extent"] == pytest.approx(18 / 280)
    assert "18 of 280 pixels" in check.message
    assert "large" in check.message


def test_extent_at_the_limit_is_not_too_small():
    side = int(np.ceil(MIN_EXTENT * 280))
    rgba = canvas_with(lambda g: g.__setitem__((slice(40, 40 + side), slice(100, 118)), 255))
    assert verdict(rgba, None).reason != "too_small"


def test_flat_bar_is_a_line_but_an_upright_bar_is_a_one(reference):
    flat = canvas_with(lambda g: g.__setitem__((slice(130, 148), slice(40, 240)), 255))
    upright = canvas_with(lambda g: g.__setitem__((slice(40, 240), slice(130, 148)), 255))
    check = verdict(flat, reference)
    assert check.reason == "line"
    assert check.scores["angle"] > LINE_MIN_ANGLE
    assert "line" in check.message
    assert verdict(upright, reference).looks_like_a_digit


def test_filled_disc_is_filled_in():
    yy, xx = np.mgrid[:280, :280]
    disc = np.hypot(yy - 140, xx - 140) < 90
    check = verdict(canvas_with(lambda g: g.__setitem__(disc, 255)), None)
    assert check.reason == "filled"
    assert check.scores["thickness"] >= 4


def test_every_message_is_one_sentence_with_the_caveat():
    rgba = canvas_with(lambda g: g.__setitem__((slice(100, 118), slice(150, 168)), 255))
    message = verdict(rgba, None).message
    assert message.count(". ") == 1 and message.endswith(".")
    assert "ten digits" in message


def test_without_a_reference_the_distance_is_not_used(mnist):
    rgba = drawings.redraw_digit(mnist.x_test[0], np.random.default_rng(0))
    check = verdict(rgba, None)
    assert "knn_distance" not in check.scores


def test_reference_is_deterministic_and_read_only(mnist, reference):
    again = build(mnist)
    np.testing.assert_array_equal(reference.points, again.points)
    np.testing.assert_array_equal(reference.components, again.components)
    for array in (reference.mean, reference.components, reference.points, reference.squared_norms):
        assert not array.flags.writeable
    assert reference.points.shape == (20_000, N_COMPONENTS)
    gram = reference.components.T.astype(np.float64) @ reference.components
    np.testing.assert_allclose(gram, np.eye(N_COMPONENTS), atol=1e-4)


def test_distance_is_the_mean_over_the_nearest_references(mnist):
    with threadpool_limits(1, "blas"):
        small = DigitReference.from_images(mnist.x_train[:3000], n_reference=300, n_fit=1000)
    queries = mnist.x_test[:20]
    got = small.distance(queries)
    coords = (queries.reshape(20, -1).astype(np.float64) / 255 - small.mean) @ small.components
    for query, value in zip(coords, got):
        each = [np.linalg.norm(query - point) for point in small.points.astype(np.float64)]
        assert value == pytest.approx(np.mean(sorted(each)[:K_NEIGHBOURS]), rel=1e-4)


def test_digits_are_nearer_the_references_than_blobs(mnist, reference):
    rng = np.random.default_rng(3)
    blobs = np.stack([preprocess_drawing(drawings.blob(rng)) for _ in range(30)])
    digits = reference.distance(mnist.x_test[:200])
    assert np.median(digits) < 0.7 * np.median(reference.distance(blobs))


def test_reference_refuses_other_image_sizes():
    with pytest.raises(ValueError, match="28x28"):
        DigitReference.from_images(np.zeros((10, 32, 32), np.uint8))
