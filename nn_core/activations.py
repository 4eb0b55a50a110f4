"""Hidden-layer activations, looked up by name.

Each entry is a pair of in-place functions: ``forward(z)`` turns pre-activations into
activations in the same buffer, and ``backward(a, grad)`` multiplies ``grad`` (the
gradient with respect to the activations) by the derivative, written in terms of the
activations ``a`` so that the pre-activations need not be kept. All arrays have shape
(n_samples, n_units).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LEAKY_SLOPE = 0.01

Forward = Callable[[np.ndarray], None]
Backward = Callable[[np.ndarray, np.ndarray], None]


def relu(z: np.ndarray) -> None:
    np.maximum(z, 0, out=z)


def relu_backward(a: np.ndarray, grad: np.ndarray) -> None:
    np.multiply(grad, a > 0, out=grad)


def leaky_relu(z: np.ndarray) -> None:
    np.maximum(z, z * LEAKY_SLOPE, out=z)


def leaky_relu_backward(a: np.ndarray, grad: np.ndarray) -> None:
    np.multiply(grad, np.where(a > 0, 1.0, LEAKY_SLOPE).astype(grad.dtype), out=grad)


def sigmoid(z: np.ndarray) -> None:
    # 1 / (1 + exp(-z)) written so that exp never overflows: tanh is bounded.
    np.multiply(z, 0.5, out=z)
    np.tanh(z, out=z)
    z += 1
    z *= 0.5


def sigmoid_backward(a: np.ndarray, grad: np.ndarray) -> None:
    grad *= a
    grad *= 1 - a


def tanh(z: np.ndarray) -> None:
    np.tanh(z, out=z)


def tanh_backward(a: np.ndarray, grad: np.ndarray) -> None:
    grad *= 1 - a * a


ACTIVATIONS: dict[str, tuple[Forward, Backward]] = {
    "relu": (relu, relu_backward),
    "leaky_relu": (leaky_relu, leaky_relu_backward),
    "sigmoid": (sigmoid, sigmoid_backward),
    "tanh": (tanh, tanh_backward),
}


def check_activation(name: str) -> str:
    """Return ``name`` if it is a known activation, else raise a ValueError listing them."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return name
