"""Tiny synthetic data sets for tests that train many small runs quickly."""

from __future__ import annotations

import numpy as np


def bar_images(n: int = 400, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tiny 8x8 'digits': a bright bar whose row gives the class.

    Returns
    -------
    x : ndarray of shape (n, 8, 8), uint8
    y : ndarray of shape (n,), int64, in 0..k-1
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = rng.integers(0, 30, (n, 8, 8)).astype(np.uint8)
    for i, label in enumerate(y):
        x[i, 2 * label : 2 * label + 2, 1:7] = 220
    return x, y
