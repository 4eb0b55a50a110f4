import numpy as np

from nn_core.augment import augment_batch, random_rotation, random_shift


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
