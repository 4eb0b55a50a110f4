"""Vectorised, seeded data augmentation of image batches: random shifts, rotations and
elastic distortions."""

from __future__ import annotations

import functools
import threading

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


# The smoothing kernel reaches this many sigmas each way (as scipy.ndimage's default).
ELASTIC_TRUNCATE = 4.0
# Images distorted at a time: a fixed number (it decides how the random draws are cut,
# so it is part of what a seed reproduces) that bounds the reused work arrays (~64
# bytes a pixel, 6.5 MB for 28x28 images).
ELASTIC_CHUNK = 128


def random_elastic(
    images: np.ndarray, alpha: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Distort each image by its own smooth random displacement field (Simard et al. 2003).

    Each pixel's two displacements are drawn uniformly from [-1, 1], smoothed by a
    Gaussian of standard deviation ``sigma`` and scaled by ``alpha``; each output pixel
    is then read, with bilinear weights, at its own position plus its displacement.

    Parameters
    ----------
    images : ndarray of shape (n_images, H, W)
        uint8 or float images; outside the image counts as 0 (background).
    alpha : float
        Scale of the displacements in pixels; 0 returns a copy. No displacement
        exceeds ``alpha``; for 28x28 digits, about 30-40 distorts like handwriting.
    sigma : float
        Smoothness of the fields in pixels (4-6 for 28x28 digits).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n_images, H, W), same dtype as ``images`` (uint8 rounded)
    """
    if alpha <= 0:
        return images.copy()
    out = np.empty_like(images)
    for start in range(0, images.shape[0], ELASTIC_CHUNK):
        chunk = images[start : start + ELASTIC_CHUNK]
        work = _workspace(chunk.shape)
        dy, dx = _displacements_into(work, alpha, sigma, rng)
        distorted = _bilinear_into(work, chunk, dy, dx)
        if images.dtype == np.uint8:
            # bilinear weights are convex, so the values stay within 0..255
            distorted = np.rint(distorted, out=distorted)
        np.copyto(out[start : start + ELASTIC_CHUNK], distorted, casting="unsafe")
    return out


def elastic_displacements(
    shape: tuple[int, int, int], alpha: float, sigma: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random displacement fields: uniform [-1, 1] noise, Gaussian-smoothed, scaled.

    The smoothing is separable and zero-padded (noise outside the image counts as 0), so
    it is two matrix products with a banded (size, size) matrix of Gaussian weights, one
    product per axis, over the whole batch at once.

    Parameters
    ----------
    shape : tuple of int
        ``(n_images, H, W)``.
    alpha, sigma : float
        Scale and smoothing (Gaussian standard deviation), both in pixels.
    rng : numpy.random.Generator

    Returns
    -------
    dy, dx : ndarray of shape (n_images, H, W), float32
        Displacements along rows and columns, each within ``[-alpha, alpha]``.
    """
    dy, dx = _displacements_into(_Workspace(shape), alpha, sigma, rng)
    return dy, dx


def bilinear_sample(images: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Read each image at displaced positions with bilinear weights, zero outside.

    Output pixel ``(k, i, j)`` is image ``k`` at the real position
    ``(i + dy[k, i, j], j + dx[k, i, j])``: the weighted mean of its four nearest pixels,
    those outside the image counting as 0.

    Parameters
    ----------
    images : ndarray of shape (n_images, H, W)
    dy, dx : ndarray of shape (n_images, H, W)
        Displacements along rows and columns, in pixels.

    Returns
    -------
    ndarray of shape (n_images, H, W), float32
    """
    return _bilinear_into(_Workspace(images.shape), images, dy, dx)


class _Workspace:
    """The work arrays of one chunk of (n, H, W) images, all float32 but ``index``.

    Reused from batch to batch (``_workspace``): fresh arrays of this size would be
    returned to the system after each batch and faulted in again at the next, which
    measured 1,800 page faults and more system than user time per batch of 128.
    """

    def __init__(self, shape: tuple[int, int, int]) -> None:
        n, height, width = shape
        self.shape = shape
        self.fields = np.empty((2 * n, height, width), np.float32)  # noise, then fields
        self.smoothed = np.empty((2 * n, height, width), np.float32)  # half-smoothed
        # a zero border of one pixel, never written
        self.padded = np.zeros((n, height + 2, width + 2), np.float32)
        self.corner = np.empty((4, n, height, width), np.float32)  # four reads, then floor
        self.index = np.empty((2, n, height, width), np.int32)


_local = threading.local()


def _workspace(shape: tuple[int, int, int]) -> _Workspace:
    """This thread's work arrays for ``shape``, kept while the shape repeats."""
    work = getattr(_local, "elastic", None)
    if work is None or work.shape != shape:
        work = _local.elastic = _Workspace(shape)
    return work


def _displacements_into(
    work: _Workspace, alpha: float, sigma: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``elastic_displacements`` in ``work.fields``; returns views (dy, dx) of it."""
    n, height, width = work.shape
    noise = rng.random(out=work.fields, dtype=np.float32)
    noise *= np.float32(2 * alpha)
    noise -= np.float32(alpha)  # uniform in [-alpha, alpha]
    along_x = work.smoothed.reshape(-1, width)
    np.matmul(noise.reshape(-1, width), _gaussian_matrix(width, float(sigma)).T, out=along_x)
    np.matmul(_gaussian_matrix(height, float(sigma)), work.smoothed, out=work.fields)
    return work.fields[:n], work.fields[n:]


@functools.lru_cache(maxsize=16)
def _gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """(size, size) float32: row i holds the weights of a normalised Gaussian centred on
    i, cut at ``ELASTIC_TRUNCATE`` sigmas and at the edges (zero padding)."""
    radius = int(ELASTIC_TRUNCATE * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    offset = np.arange(size)[None, :] - np.arange(size)[:, None]
    inside = np.abs(offset) <= radius
    weights = np.where(inside, taps[np.clip(offset + radius, 0, 2 * radius)], 0.0)
    return weights.astype(np.float32)


def _bilinear_into(
    work: _Workspace, images: np.ndarray, dy: np.ndarray, dx: np.ndarray
) -> np.ndarray:
    """``bilinear_sample`` in ``work`` (overwrites ``work.smoothed``); returns a view."""
    n, height, width = images.shape
    work.padded[:, 1:-1, 1:-1] = images
    y, x = work.smoothed[:n], work.smoothed[n:]
    y0, x0 = work.corner[0], work.corner[1]
    # positions, clipped to the zero border, so that every read is inside the padded
    # image and a position beyond the border reads only zeros
    np.add(dy, np.arange(height, dtype=np.float32)[:, None], out=y)
    np.add(dx, np.arange(width, dtype=np.float32)[None, :], out=x)
    np.clip(y, -1, height, out=y)
    np.clip(x, -1, width, out=x)
    # the last cell's top-left corner is H-1 (W-1), so that its far corner is the border
    np.minimum(np.floor(y, out=y0), height - 1, out=y0)
    np.minimum(np.floor(x, out=x0), width - 1, out=x0)
    fy, fx = np.subtract(y, y0, out=y), np.subtract(x, x0, out=x)
    index, column = work.index[0], work.index[1]
    np.copyto(index, y0, casting="unsafe")
    np.copyto(column, x0, casting="unsafe")
    stride = width + 2
    index *= stride
    index += column
    index += (np.arange(n, dtype=np.int32) * np.int32(work.padded[0].size) + stride + 1)[
        :, None, None
    ]
    # the four corners: top-left, top-right, bottom-left, bottom-right (all indices are
    # valid, and mode="clip" saves numpy's bounds check and its temporary copy)
    a, b, c, d = work.corner
    for corner, step in ((a, 0), (b, 1), (c, stride - 1), (d, 1)):
        index += step
        np.take(work.padded, index, out=corner, mode="clip")
    b -= a
    b *= fx
    a += b  # top edge
    d -= c
    d *= fx
    c += d  # bottom edge
    c -= a
    c *= fy
    a += c
    return a


def augment_batch(
    images: np.ndarray,
    rng: np.random.Generator,
    max_shift: int = 0,
    max_degrees: float = 0.0,
    elastic_alpha: float = 0.0,
    elastic_sigma: float = 6.0,
) -> np.ndarray:
    """Distort (if ``elastic_alpha``), rotate (if ``max_degrees``), then shift (if
    ``max_shift``) a batch of images.

    Parameters
    ----------
    images : ndarray of shape (n_images, H, W)
    rng : numpy.random.Generator
    max_shift, max_degrees : see ``random_shift`` and ``random_rotation``
    elastic_alpha, elastic_sigma : see ``random_elastic``

    Returns
    -------
    ndarray of shape (n_images, H, W), same dtype as ``images``
    """
    if elastic_alpha > 0:
        images = random_elastic(images, elastic_alpha, elastic_sigma, rng)
    if max_degrees > 0:
        images = random_rotation(images, max_degrees, rng)
    if max_shift > 0:
        images = random_shift(images, max_shift, rng)
    return images
