"""Weight initialisations, looked up by name.

``notebook`` is the classic from-scratch notebook's uniform [0, 1) start, kept to show
why it fails: every unit starts positive and alike, so the softmax saturates at once.
"""

from __future__ import annotations

import numpy as np

INITS = ("he", "glorot", "notebook")


def init_layer(name: str, weight: np.ndarray, bias: np.ndarray, rng: np.random.Generator) -> None:
    """Fill one layer's weight of shape (fan_in, fan_out) and bias of shape (fan_out,)."""
    fan_in, fan_out = weight.shape
    if name == "he":
        weight[...] = rng.standard_normal(weight.shape) * np.sqrt(2.0 / fan_in)
        bias[...] = 0
    elif name == "glorot":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        weight[...] = rng.uniform(-limit, limit, weight.shape)
        bias[...] = 0
    elif name == "notebook":
        weight[...] = rng.random(weight.shape)
        bias[...] = rng.random(bias.shape)
    else:
        raise ValueError(f"unknown init {name!r}; choose one of {', '.join(INITS)}")
