import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from nn_core.augment import (
    augment_batch,
    bilinear_sample,
    elastic_displacements,
    random_elastic,
    random_rotation,
    random_shift,
)
from nn_core.config import TrainConfig
from nn_core.training import Trainer


def test_shift_moves_each_image_by_at_most_the_limit_and_keeps_mass():
    rng = np.random.default_rng(0)
    x = np.zeros((200, 12, 12), np.uint8)
    x[:, 5:7, 5:7] = 200
    out = random_shift(x, 2, rng)
    assert out.shape == x.shape and out.dtype == np.uint8
    assert np.all(out.sum(axis=(1, 2)) == x.sum(axis=(1, 2)))
    rows = np.array([np.flatnonzero(img.any(axis=1))[0] for img in out])
    assert set(rows - 5) == {-2, -1, 0, 1, 2}


def test_rotation_by_zero_is_identity_and_small_angles_keep_most_ink():
    rng = np.random.default_rng(0)
    x = np.zeros((20, 28, 28), np.uint8)
    x[:, 6:22, 13:15] = 255
    np.testing.assert_array_equal(random_rotation(x, 0.0, rng), x)
    out = random_rotation(x, 15, rng)
    ratio = out.sum(axis=(1, 2)) / x.sum(axis=(1, 2))
    assert np.all((ratio > 0.85) & (ratio < 1.15))
    assert not np.array_equal(out, x)


def test_augmentation_is_seeded():
    x = np.random.default_rng(0).integers(0, 255, (16, 10, 10), dtype=np.uint8)
    a = augment_batch(x, np.random.default_rng(5), max_shift=2, max_degrees=10)
    b = augment_batch(x, np.random.default_rng(5), max_shift=2, max_degrees=10)
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ elastic distortions
def digits(n: int = 64) -> np.ndarray:
    """(n, 28, 28) uint8 strokes: a bar and a ring of varying size, like ink on paper."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:28, 0:28]
    images = np.zeros((n, 28, 28), np.uint8)
    for k in range(n):
        radius = rng.uniform(5, 9)
        ring = np.abs(np.hypot(yy - 14, xx - 14) - radius) < 1.5
        images[k][ring] = 255
        images[k, 6:22, 13 + k % 3 : 15 + k % 3] = 200
    return images


def bilinear_loop(image: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """The oracle: each output pixel from its four neighbours, one at a time, float64."""
    height, width = image.shape

    def pixel(i: int, j: int) -> float:
        return float(image[i, j]) if 0 <= i < height and 0 <= j < width else 0.0

    out = np.zeros((height, width))
    for i in range(height):
        for j in range(width):
            y, x = i + float(dy[i, j]), j + float(dx[i, j])
            i0, j0 = math.floor(y), math.floor(x)
            fy, fx = y - i0, x - j0
            out[i, j] = (
                (1 - fy) * (1 - fx) * pixel(i0, j0)
                + (1 - fy) * fx * pixel(i0, j0 + 1)
                + fy * (1 - fx) * pixel(i0 + 1, j0)
                + fy * fx * pixel(i0 + 1, j0 + 1)
            )
    return out


def test_bilinear_sample_by_hand():
    image = np.array([[[0, 100], [200, 40]]], np.uint8)
    half = np.full((1, 2, 2), 0.5, np.float32)
    out = bilinear_sample(image, half, half)
    # (0,0) reads the mean of the four pixels; the others reach past the edge, where
    # the image is 0: (1,1) is a quarter of 40, (0,1) half of (100 + 40) / 2
    expected = [[(0 + 100 + 200 + 40) / 4, (100 + 40) / 4], [(200 + 40) / 4, 40 / 4]]
    np.testing.assert_allclose(out[0], expected, rtol=1e-6)
    far = bilinear_sample(image, np.full((1, 2, 2), -7.5, np.float32), half)
    np.testing.assert_array_equal(far, 0)


def test_bilinear_sample_matches_a_plain_loop():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (3, 7, 9), dtype=np.uint8)
    # displacements of all kinds: inside, across the edge, far outside, exact integers
    dy = rng.uniform(-4, 4, images.shape).astype(np.float32)
    dx = rng.uniform(-4, 4, images.shape).astype(np.float32)
    dy[0, 0, :3] = [0.0, -1.0, 2.0]
    dx[1, 2, 4] = 5.0
    out = bilinear_sample(images, dy, dx)
    assert out.shape == images.shape and out.dtype == np.float32
    for k in range(images.shape[0]):
        np.testing.assert_allclose(out[k], bilinear_loop(images[k], dy[k], dx[k]), atol=1e-3)


def test_elastic_shape_dtype_range_and_seed():
    x = digits()
    out = random_elastic(x, 34.0, 5.0, np.random.default_rng(7))
    assert out.shape == x.shape and out.dtype == np.uint8
    assert not np.array_equal(out, x)
    np.testing.assert_array_equal(out, random_elastic(x, 34.0, 5.0, np.random.default_rng(7)))
    assert not np.array_equal(out, random_elastic(x, 34.0, 5.0, np.random.default_rng(8)))
    floats = x.astype(np.float32) / 255
    out_f = random_elastic(floats, 34.0, 5.0, np.random.default_rng(7))
    assert out_f.dtype == np.float32 and out_f.min() >= 0 and out_f.max() <= 1
    # the uint8 result is the float one, rounded
    assert np.abs(out_f * 255 - out).max() <= 0.5 + 1e-3


def test_elastic_with_zero_alpha_is_identity():
    x = digits(8)
    np.testing.assert_array_equal(random_elastic(x, 0.0, 5.0, np.random.default_rng(0)), x)
    # a displacement too small to move any rounded value goes through the resampling
    np.testing.assert_array_equal(random_elastic(x, 1e-4, 5.0, np.random.default_rng(0)), x)


def test_elastic_displacements_are_bounded_and_as_smooth_as_the_gaussian():
    alpha, sigma = 34.0, 5.0
    dy, dx = elastic_displacements((4000, 28, 28), alpha, sigma, np.random.default_rng(0))
    assert dy.shape == dx.shape == (4000, 28, 28) and dy.dtype == np.float32
    # each is a weighted mean of noise in [-alpha, alpha] with weights summing to <= 1
    assert np.abs(dy).max() <= alpha and np.abs(dx).max() <= alpha
    assert abs(dy.mean()) < 0.05 and abs(dx.mean()) < 0.05  # no drift in any direction
    # At the centre, far from the edges, the variance is that of uniform noise (1/3)
    # times the sum of the squared 2-D Gaussian weights, (sum of squared 1-D taps) ** 2.
    taps = np.exp(-0.5 * (np.arange(-20, 21) / sigma) ** 2)
    taps /= taps.sum()
    expected_rms = alpha * np.sqrt(1 / 3) * np.sum(taps**2)
    for field in (dy, dx):
        assert np.sqrt(np.mean(field[:, 14, 14] ** 2)) == pytest.approx(expected_rms, rel=0.05)
    # neighbouring displacements move together (smooth), distant ones do not
    near = np.corrcoef(dy[:, 14, 14], dy[:, 14, 15])[0, 1]
    far = np.corrcoef(dy[:, 4, 4], dy[:, 24, 24])[0, 1]
    assert near > 0.95 and abs(far) < 0.15


def test_elastic_roughly_keeps_each_digits_ink():
    x = digits()
    out = random_elastic(x, 34.0, 5.0, np.random.default_rng(0))
    ratio = out.sum(axis=(1, 2)) / x.sum(axis=(1, 2))
    assert abs(ratio.mean() - 1) < 0.05
    assert np.all((ratio > 0.6) & (ratio < 1.5))


def test_augment_batch_applies_elastic_then_the_rest_seeded():
    x = digits(16)
    a = augment_batch(x, np.random.default_rng(5), 2, 10.0, 34.0, 5.0)
    b = augment_batch(x, np.random.default_rng(5), 2, 10.0, 34.0, 5.0)
    np.testing.assert_array_equal(a, b)
    elastic_only = augment_batch(x, np.random.default_rng(5), elastic_alpha=34.0, elastic_sigma=5.0)
    np.testing.assert_array_equal(
        elastic_only, random_elastic(x, 34.0, 5.0, np.random.default_rng(5))
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"augment_elastic": -1.0}, "alpha must be >= 0"),
        ({"augment_elastic": float("nan")}, "finite"),
        ({"augment_elastic_sigma": 0.0}, "sigma must be between 1 and 20"),
        ({"augment_elastic_sigma": 50.0}, "sigma must be between 1 and 20"),
    ],
)
def test_config_refuses_bad_elastic_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_training_with_elastic_distortions_is_seeded():
    x = np.repeat(digits(40), 2, axis=0)
    y = np.arange(80) % 2
    config = TrainConfig(hidden=(16,), epochs=2, batch_size=16, val_fraction=0.0)

    def weights(**changes: object) -> np.ndarray:
        trainer = Trainer(config.replace(**changes), x, y)
        trainer.fit()
        return trainer.model.weights[0]

    distorted = weights(augment_elastic=34.0)
    np.testing.assert_array_equal(distorted, weights(augment_elastic=34.0))
    assert not np.array_equal(distorted, weights())
    assert not np.array_equal(distorted, weights(augment_elastic=34.0, augment_elastic_sigma=8.0))


def test_elastic_in_chunks_and_alternating_shapes_matches_one_call_per_chunk():
    x = np.concatenate([digits(64)] * 5)  # 320 images: chunks of 128, 128, 64
    whole = random_elastic(x, 34.0, 5.0, np.random.default_rng(2))
    rng = np.random.default_rng(2)
    parts = [random_elastic(x[i : i + 128], 34.0, 5.0, rng) for i in (0, 128, 256)]
    np.testing.assert_array_equal(whole, np.concatenate(parts))
    # the reused work arrays carry nothing over from one call (or shape) to the next
    small = random_elastic(x[:5, :20, :20], 34.0, 5.0, np.random.default_rng(3))
    again = random_elastic(x[:5, :20, :20], 34.0, 5.0, np.random.default_rng(3))
    np.testing.assert_array_equal(small, again)
    np.testing.assert_array_equal(whole, random_elastic(x, 34.0, 5.0, np.random.default_rng(2)))


def test_elastic_in_threads_matches_one_thread():
    x = digits(200)
    expected = [random_elastic(x, 30.0 + k, 5.0, np.random.default_rng(k)) for k in range(4)]
    with ThreadPoolExecutor(4) as pool:
        got = list(
            pool.map(lambda k: random_elastic(x, 30.0 + k, 5.0, np.random.default_rng(k)), range(4))
        )
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_array_equal(e, g)
