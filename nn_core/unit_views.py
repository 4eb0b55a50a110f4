"""What one unit of an ``MLP`` looks for: the images that excite it most, and the input it
would like best.

A unit is ``(layer, unit)``: ``layer`` 0 is the first hidden layer and ``n_layers - 1``
the output layer (as in ``nn_core.explain``). Its *response* to an image is its
pre-activation ``Z`` (the logit, for an output unit): sigmoid, tanh and ReLU only bend it,
so the images that raise ``Z`` most are those that raise the unit's activation most, and
``Z`` still has a gradient where a ReLU unit is silent.

``maximise_unit`` synthesises an input by projected gradient ascent: it climbs
``Z(x) - l2 / 2 * ||x||^2`` over the scaled pixels ``x`` (0..1 for MNIST: the L2 term keeps
pixels that do not matter dark), with an optional light blur between steps so the image
stays smooth, and clips every pixel back into ``[0, 1]`` after each step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nn_core.explain import unit_gradient
from nn_core.network import MLP, PREDICT_CHUNK

MAX_STEPS = 2000


@dataclass(frozen=True)
class UnitMaximum:
    """An input synthesised to excite one unit.

    Attributes
    ----------
    image : ndarray of shape (n_inputs,), float64
        Scaled pixels (``raw * input_scale``), each in [0, 1].
    responses : ndarray of shape (steps + 1,)
        The unit's response (pre-activation) at the start and after each step.
    """

    image: np.ndarray
    responses: np.ndarray

    @property
    def start(self) -> float:
        return float(self.responses[0])

    @property
    def response(self) -> float:
        return float(self.responses[-1])


def check_unit(model: MLP, layer: int, unit: int) -> None:
    """Raise a ValueError naming the valid range when (layer, unit) is not in ``model``."""
    if not 0 <= layer < model.n_layers:
        raise ValueError(f"layer must be in 0..{model.n_layers - 1}, got {layer}")
    width = model.sizes[layer + 1]
    if not 0 <= unit < width:
        raise ValueError(f"layer {layer} has units 0..{width - 1}, got {unit}")


def layer_responses(
    model: MLP, images: np.ndarray, layer: int, activated: bool = False
) -> np.ndarray:
    """Every unit's pre-activation (or, with ``activated``, activation) in ``layer`` for
    each image, computed in chunks.

    Parameters
    ----------
    model : MLP
    images : ndarray of shape (n, H, W) or (n, n_inputs)
        Raw, as the network receives them.
    layer : int
    activated : bool
        Return the activations ``A`` instead of the pre-activations ``Z``.

    Returns
    -------
    ndarray of shape (n, sizes[layer + 1]), the network's dtype
    """
    check_unit(model, layer, 0)
    n = images.shape[0]
    out = np.empty((n, model.sizes[layer + 1]), model.dtype)
    for start in range(0, n, PREDICT_CHUNK):
        chunk = model.prepare_inputs(images[start : start + PREDICT_CHUNK])
        with np.errstate(over="ignore", invalid="ignore"):
            pre, post = model.forward_prepared(chunk, return_all=True)
        out[start : start + PREDICT_CHUNK] = (post if activated else pre)[layer]
    return out


def top_images(responses: np.ndarray, k: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` images with the largest response of each unit, largest first.

    Parameters
    ----------
    responses : ndarray of shape (n_images, n_units)
        From ``layer_responses``.
    k : int

    Returns
    -------
    indices : ndarray of shape (min(k, n_images), n_units), int64
    values : ndarray of the same shape
        Ties are broken by the lower image index.
    """
    k = min(int(k), responses.shape[0])
    # a stable sort of -responses keeps equal responses in image order
    order = np.argsort(-responses, axis=0, kind="stable")[:k]
    return order.astype(np.int64), np.take_along_axis(responses, order, axis=0)


def maximise_unit(
    model: MLP,
    layer: int,
    unit: int,
    *,
    steps: int = 200,
    step_size: float = 0.05,
    l2: float = 0.01,
    blur: float = 0.0,
    image_shape: tuple[int, int] | None = None,
    start: np.ndarray | None = None,
) -> UnitMaximum:
    """An input, pixels in [0, 1], that makes unit ``unit`` of ``layer`` respond strongly.

    Projected gradient ascent on ``Z(x) - l2 / 2 * ||x||^2``: each step moves every pixel
    by ``step_size`` times the gradient divided by its root mean square over the pixels
    free to move (so the step size does not depend on how steep the unit is), blurs when
    ``blur`` > 0, and clips to [0, 1]. The step size and the blur decay along a cosine, so
    the last steps settle.

    Parameters
    ----------
    model : MLP
    layer, unit : int
        0 is the first hidden layer, ``n_layers - 1`` the output layer.
    steps : int
    step_size : float
        Pixels move about this much per step at the start.
    l2 : float
        Weight of the penalty on bright pixels (0: none).
    blur : float
        In [0, 1]: after each step, the image is mixed this much with its 3x3 box blur
        (needs square images or ``image_shape``).
    image_shape : (H, W), optional
    start : ndarray of shape (n_inputs,), optional
        Scaled pixels to start from; a dim grey (0.1) by default.

    Returns
    -------
    UnitMaximum
    """
    check_unit(model, layer, unit)
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be in 1..{MAX_STEPS}, got {steps}")
    if not 0 <= blur <= 1:
        raise ValueError(f"blur must be in [0, 1], got {blur}")
    n_inputs = model.sizes[0]
    x = np.full(n_inputs, 0.1) if start is None else np.clip(np.asarray(start, float), 0, 1)
    shape = _shape(n_inputs, image_shape) if blur > 0 else None
    scale = model.input_scale
    responses = [_response(model, x, layer, unit)]
    for step in range(steps):
        # unit_gradient takes raw inputs: x / scale is scaled back to x inside it
        grad = unit_gradient(model, (x / scale)[None], layer, np.array([unit]))[0, 0]
        grad = grad.astype(np.float64) - l2 * x
        # Pixels pressed against a bound cannot move: leave them out of the step's scale,
        # so the others keep moving once the steep ones have reached 0 or 1.
        free = ~(((x <= 0) & (grad < 0)) | ((x >= 1) & (grad > 0)))
        rms = float(np.sqrt(np.mean(grad[free] ** 2))) if free.any() else 0.0
        if rms == 0 or not np.isfinite(rms):
            responses.append(responses[-1])
            continue
        settle = 0.5 * (1 + np.cos(np.pi * step / steps))
        x = x + step_size * settle * grad / rms
        if shape is not None:  # blurring fades with the steps, or it would undo the last ones
            mix = blur * settle
            x = (1 - mix) * x + mix * _box_blur(x.reshape(shape)).reshape(-1)
        np.clip(x, 0.0, 1.0, out=x)
        responses.append(_response(model, x, layer, unit))
    return UnitMaximum(image=x, responses=np.array(responses))


def _response(model: MLP, x: np.ndarray, layer: int, unit: int) -> float:
    prepared = x[None].astype(model.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        pre, _ = model.forward_prepared(prepared, return_all=True)
    return float(pre[layer][0, unit])


def _box_blur(image: np.ndarray) -> np.ndarray:
    """3x3 mean of each pixel's neighbourhood (edges repeated), shape kept."""
    padded = np.pad(image, 1, mode="edge")
    h, w = image.shape
    return sum(padded[i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0


def _shape(n_inputs: int, image_shape: tuple[int, int] | None) -> tuple[int, int]:
    if image_shape is not None:
        if image_shape[0] * image_shape[1] != n_inputs:
            raise ValueError(f"image_shape {image_shape} does not hold {n_inputs} inputs")
        return (int(image_shape[0]), int(image_shape[1]))
    side = math.isqrt(n_inputs)
    if side * side != n_inputs:
        raise ValueError(f"{n_inputs} inputs are not a square image; pass image_shape=(H, W)")
    return (side, side)
