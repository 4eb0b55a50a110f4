"""Central finite differences of a network's loss, for gradient tests."""

from __future__ import annotations

import numpy as np

from nn_core.network import MLP


def numerical_gradient(
    model: MLP, x: np.ndarray, y: np.ndarray, l2: float = 0.0, eps: float = 1e-6
) -> np.ndarray:
    """d(loss)/d(params) by central differences, shape (n_params,)."""
    grad = np.zeros_like(model.params)
    for k in range(model.params.size):
        old = model.params[k]
        model.params[k] = old + eps
        plus = model.loss_and_gradient(x, y, l2=l2).loss
        model.params[k] = old - eps
        minus = model.loss_and_gradient(x, y, l2=l2).loss
        model.params[k] = old
        grad[k] = (plus - minus) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))
