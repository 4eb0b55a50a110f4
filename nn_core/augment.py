"""Vectorised, seeded data augmentation of image batches: random shifts and rotations."""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def random_shift(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Shift each image by its own random whole-pixel offset, filling with zeros.

    Parameters
    ----------
    images : ndarray of shape (n_images, H, W)
    max_shift : int
        Offsets are drawn uniformly from ``-max_shift .. max_shift`` on each axis.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n_images, H, W), same dtype as ``images``
    """
    if max_shift <= 0:
        return images.copy()
    n, height, width = images.shape
    padded = np.zeros((n, height + 2 * max_shift, width + 2 * max_shift), images.dtype)
    padded[:, max_shift : max_shift + height, max_shift : max_shift + width] = images
    windows = sliding_window_view(padded, (height, width), axis=(1, 2))
    offsets = rng.integers(0, 2 * max_shift + 1, size=(2, n))
    return windows[np.arange(n), offsets[0], offsets[1]]


ANGLE_STEP_DEGREES = 0.25


def random_rotation(images: np.ndarray, max_degrees: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate each image about its centre by its own random angle, zero fill.

    Each output pixel takes the value of the nearest source pixel (nearest-neighbour),
    and angles are drawn from a grid of ``ANGLE_STEP_DEGREES`` steps, so that the
    source position of every pixel at every angle is computed once and cached; a batch
    then costs one gather. (Bilinear weights would cost four gathers and a weighted sum
    for a difference of under half a pixel, which augmentation does not need.)

    Parameters
    ----------
    images : ndarray of shape (n_images, H, W)
    max_degrees : float
        Angles are drawn uniformly from ``-max_degrees .. max_degrees``.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n_images, H, W), same dtype as ``images``
    """
    n, height, width = images.shape
    sources = _rotation_sources(height, width, float(max_degrees))
    angle = rng.integers(0, sources.shape[0], size=n)
    # a one-pixel zero border: sources outside the image point into it
    padded = np.zeros((n, height + 2, width + 2), images.dtype)
    padded[:, 1:-1, 1:-1] = images
    first = np.arange(n, dtype=np.int32)[:, None] * padded[0].size
    return np.take(padded, sources[angle] + first).reshape(n, height, width)


@functools.lru_cache(maxsize=16)
def _rotation_sources(height: int, width: int, max_degrees: float) -> np.ndarray:
    """For each angle of the grid, the flat index in the zero-bordered (H+2, W+2) image
    of the source of each output pixel: int32 of shape (n_angles, H * W)."""
    steps = int(np.ceil(max_degrees / ANGLE_STEP_DEGREES))
    angles = np.deg2rad(np.linspace(-max_degrees, max_degrees, 2 * steps + 1))[:, None]
    cy, cx = (height - 1) / 2, (width - 1) / 2
    yy, xx = np.mgrid[0:height, 0:width]
    yy, xx = (yy - cy).ravel(), (xx - cx).ravel()
    # inverse mapping (where each output pixel comes from), shifted by the border of 1
    src_y = np.cos(angles) * yy - np.sin(angles) * xx + cy + 1
    src_x = np.sin(angles) * yy + np.cos(angles) * xx + cx + 1
    src_y = np.clip(np.rint(src_y), 0, height + 1).astype(np.int32)
    src_x = np.clip(np.rint(src_x), 0, width + 1).astype(np.int32)
    return src_y * (width + 2) + src_x


def augment_batch(
    images: np.ndarray,
    rng: np.random.Generator,
    max_shift: int = 0,
    max_degrees: float = 0.0,
) -> np.ndarray:
    """Rotate (if ``max_degrees``) then shift (if ``max_shift``) a batch of (n, H, W) images."""
    if max_degrees > 0:
        images = random_rotation(images, max_degrees, rng)
    if max_shift > 0:
        images = random_shift(images, max_shift, rng)
    return images
