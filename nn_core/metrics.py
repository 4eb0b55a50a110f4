"""Classification metrics from labels and predicted probabilities, and ``evaluate``: every
figure of a network on a test set in one pass (the command line and the dashboard use it)."""

from __future__ import annotations

import numpy as np

EVAL_CHUNK = 4096  # rows per forward pass: bounds the memory of a large test set


def evaluate(model, x: np.ndarray, y: np.ndarray, n_classes: int | None = None) -> dict:
    """Probabilities, predictions, confusion matrix, per-class scores, accuracy and loss.

    Parameters
    ----------
    model : nn_core.MLP
    x : ndarray of shape (n_samples, H, W) or (n_samples, n_inputs)
        Raw inputs, as the network was trained on (usually uint8 pixels).
    y : ndarray of shape (n_samples,)
        Integer labels.
    n_classes : int, optional
        Size of the confusion matrix; the network's output count by default (never less).

    Returns
    -------
    dict
        ``probs`` (n_samples, n_outputs) float32; ``y_pred`` (n_samples,) int64;
        ``confusion`` (n_classes, n_classes) int64, rows true, columns predicted;
        ``scores`` (``per_class_scores``); ``accuracy`` and ``loss`` (mean cross-entropy,
        from the logits with log-sum-exp, so a confident mistake costs its true amount
        rather than a clipped ``-log(tiny)``), NaN for an empty set; ``n`` (int).
    """
    y = np.asarray(y, dtype=np.int64)
    n = int(x.shape[0])
    k = model.sizes[-1] if n_classes is None else max(int(n_classes), model.sizes[-1])
    probs = np.empty((n, model.sizes[-1]), dtype=np.float32)
    loss_sum = 0.0
    for start in range(0, n, EVAL_CHUNK):
        stop = min(start + EVAL_CHUNK, n)
        pre_activations, activations = model.forward(x[start:stop], return_all=True)
        probs[start:stop] = activations[-1]
        loss_sum += float(np.sum(cross_entropy_from_logits(pre_activations[-1], y[start:stop])))
    y_pred = probs.argmax(axis=1).astype(np.int64)
    confusion = confusion_matrix(y, y_pred, k)
    return {
        "probs": probs,
        "y_pred": y_pred,
        "confusion": confusion,
        "scores": per_class_scores(confusion),
        "accuracy": accuracy(y, y_pred),
        "loss": loss_sum / n if n else float("nan"),
        "n": n,
    }


def cross_entropy_from_logits(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``-log softmax(logits)[y]`` per sample, by log-sum-exp in float64.

    Parameters
    ----------
    logits : ndarray of shape (n_samples, n_classes)
    y : ndarray of shape (n_samples,)

    Returns
    -------
    ndarray of shape (n_samples,), float64
        Finite for any finite logits, however confident the mistake.
    """
    z = np.asarray(logits, dtype=np.float64)
    top = z.max(axis=1)
    log_sum = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
    return log_sum - z[np.arange(z.shape[0]), y]


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
