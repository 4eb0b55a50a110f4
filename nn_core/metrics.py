"""Classification metrics from labels and predicted probabilities."""

from __future__ import annotations

import numpy as np


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of ``y_pred`` equal to ``y_true``; both of shape (n_samples,)."""
    y_true = np.asarray(y_true)
    if y_true.size == 0:
        return float("nan")
    return float(np.mean(y_true == np.asarray(y_pred)))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs.

    Returns
    -------
    ndarray of shape (n_classes, n_classes), int64
        Row ``i`` column ``j`` counts samples of class ``i`` predicted as ``j``.
    """
    flat = np.asarray(y_true, dtype=np.int64) * n_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_scores(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix.

    A class never predicted has precision 0 (and never present, recall 0), as in
    scikit-learn with ``zero_division=0``.

    Returns
    -------
    dict of ndarray of shape (n_classes,)
        Keys ``precision``, ``recall``, ``f1``, ``support``.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    hits = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, actual, out=np.zeros_like(hits), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": actual.astype(np.int64),
    }


def misclassified(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Indices of wrong predictions, the most confident mistake first.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
    probs : ndarray of shape (n_samples, n_classes)

    Returns
    -------
    ndarray of shape (n_mistakes,), int64
        Sorted by the probability given to the (wrong) predicted class, descending;
        ties keep sample order.
    """
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != np.asarray(y_true))
    confidence = probs[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")].astype(np.int64)
