"""Vectorised, seeded data augmentation of image batches: random shifts and rotations."""

from __future__ import annotations

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


def random_rotation(images: np.ndarray, max_degrees: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate each image about its centre by its own random angle, bilinear, zero fill.

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
    angles = np.deg2rad(rng.uniform(-max_degrees, max_degrees, size=n)).astype(np.float32)
    cos, sin = np.cos(angles)[:, None, None], np.sin(angles)[:, None, None]
    cy, cx = (height - 1) / 2, (width - 1) / 2
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy, xx = yy - cy, xx - cx
    # inverse mapping: where in the source each output pixel comes from
    src_y = cos * yy - sin * xx + cy
    src_x = sin * yy + cos * xx + cx
    y0, x0 = np.floor(src_y), np.floor(src_x)
    fy, fx = src_y - y0, src_x - x0
    padded = np.zeros((n, height + 2, width + 2), np.float32)
    padded[:, 1:-1, 1:-1] = images
    flat = padded.reshape(n, -1)
    y0 = np.clip(y0, -1, height).astype(np.int64) + 1
    x0 = np.clip(x0, -1, width).astype(np.int64) + 1
    y1, x1 = np.minimum(y0 + 1, height + 1), np.minimum(x0 + 1, width + 1)
    row = width + 2

    def gather(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        return np.take_along_axis(flat, (ys * row + xs).reshape(n, -1), axis=1).reshape(
            n, height, width
        )

    out = (
        gather(y0, x0) * (1 - fy) * (1 - fx)
        + gather(y0, x1) * (1 - fy) * fx
        + gather(y1, x0) * fy * (1 - fx)
        + gather(y1, x1) * fy * fx
    )
    if np.issubdtype(images.dtype, np.integer):
        np.rint(out, out=out)
    return out.astype(images.dtype)


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
