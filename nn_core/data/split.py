"""Stratified splitting of a labelled set into two parts."""

from __future__ import annotations

import numpy as np


def stratified_split(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices so that each class keeps its share in both parts.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,)
        Integer class labels.
    fraction : float
        Share of each class that goes to the second part, in [0, 1).
    rng : numpy.random.Generator
        Source of the shuffle; the same seed gives the same split.

    Returns
    -------
    kept, held_out : ndarray of shape (n_kept,), ndarray of shape (n_held_out,)
        Sorted int64 indices into ``labels``. Every class with at least two samples
        contributes at least one sample to ``held_out`` when ``fraction > 0``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    labels = np.asarray(labels)
    if fraction == 0.0:
        return np.arange(labels.shape[0], dtype=np.int64), np.empty(0, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    _classes, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    held = []
    for start, count in zip(starts, counts):
        members = order[start : start + count]
        n_held = round(count * fraction)
        n_held = min(max(n_held, 1), count - 1) if count >= 2 else 0
        held.append(rng.permutation(members)[:n_held])
    held_out = np.sort(np.concatenate(held)).astype(np.int64)
    mask = np.ones(labels.shape[0], dtype=bool)
    mask[held_out] = False
    return np.flatnonzero(mask).astype(np.int64), held_out
