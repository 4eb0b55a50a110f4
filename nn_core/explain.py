"""Looking inside a trained ``MLP``: activations, contributions, saliency, counterfactuals.

Every function takes a batch of images, shape (n, H, W) or (n, n_features), raw as the
network receives them (uint8 pixels for a network with ``input_scale`` 1/255), and returns
plain arrays in the network's dtype. Saliency maps come back with the images' shape.

The class *score* is always the **logit** (the output layer's pre-activation), not the
softmax probability: a logit depends on its own class only, so its gradient says what
makes the image look like that class, not what makes it look unlike the others.

Gradients are taken with respect to the *scaled* input, the pixels as the network sees
them (``raw * input_scale``: 0..1 for MNIST pixels). Gradient x input is the same in either
unit. Back-propagation to the input uses the derivatives of ``nn_core.activations``, the
table the training step uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nn_core.activations import ACTIVATIONS
from nn_core.network import MLP

OCCLUSION_PATCH = 4
OCCLUSION_STRIDE = 2
OCCLUSION_BATCH_ELEMENTS = 4_000_000  # occluded copies x features per forward pass


@dataclass
class LayerActivations:
    """Every layer's values for a batch.

    Attributes
    ----------
    pre : list of ndarray
        ``pre[i]`` is layer ``i``'s pre-activation Z, shape (n, sizes[i + 1]); ``pre[-1]``
        holds the logits, shape (n, n_classes).
    post : list of ndarray
        ``post[i]`` is layer ``i``'s activation A, same shapes; ``post[-1]`` is the softmax.
    probs : ndarray of shape (n, n_classes)
        The output probabilities (the same array as ``post[-1]``).
    """

    pre: list[np.ndarray]
    post: list[np.ndarray]
    probs: np.ndarray

    @property
    def logits(self) -> np.ndarray:
        """The output layer's pre-activation, shape (n, n_classes)."""
        return self.pre[-1]

    @property
    def hidden(self) -> list[np.ndarray]:
        """The hidden layers' activations, each (n, width); empty without hidden layers."""
        return self.post[:-1]


@dataclass
class Contributions:
    """How each unit feeding the output layer adds to one class's logit.

    Attributes
    ----------
    values : ndarray of shape (n, n_units)
        ``activation * outgoing weight`` of every unit of the last hidden layer (of the
        scaled input pixels for a network without hidden layers).
    bias : ndarray of shape (n,)
        The class's output bias; ``values.sum(axis=1) + bias == logit``.
    logit : ndarray of shape (n,)
        The class's logit.
    top : ndarray of shape (n, k), int
        Indices of the ``k`` largest contributions of each image, largest first.
    classes : ndarray of shape (n,), int
        The class explained for each image.
    """

    values: np.ndarray
    bias: np.ndarray
    logit: np.ndarray
    top: np.ndarray
    classes: np.ndarray


@dataclass
class Counterfactual:
    """A minimal edit of each image that makes the network predict a target class.

    Attributes
    ----------
    image : ndarray, the input's shape
        The edited images in scaled units (``raw * input_scale``, 0..1 for pixels).
    change : ndarray, the input's shape
        ``image`` minus the scaled original.
    prob_path : ndarray of shape (n, n_steps + 1, n_classes)
        The probabilities before the first step and after each step; an image that
        stopped early repeats its last row.
    reached : ndarray of shape (n,), bool
        Whether the target became the predicted class with at least ``min_probability``.
    steps : ndarray of shape (n,), int
        Steps taken by each image.
    targets : ndarray of shape (n,), int
    """

    image: np.ndarray
    change: np.ndarray
    prob_path: np.ndarray
    reached: np.ndarray
    steps: np.ndarray
    targets: np.ndarray


# --------------------------------------------------------------------------- forward
def layer_activations(model: MLP, images: np.ndarray) -> LayerActivations:
    """Each layer's pre-activation and activation, and the output probabilities.

    Parameters
    ----------
    model : MLP
    images : ndarray of shape (n, H, W) or (n, n_features)

    Returns
    -------
    LayerActivations
        ``pre[i]`` and ``post[i]`` of shape (n, sizes[i + 1]); ``probs`` (n, n_classes).
    """
    pre, post = model.forward(_batch(images), return_all=True)
    return LayerActivations(pre=pre, post=post, probs=post[-1])


def class_contributions(
    model: MLP, images: np.ndarray, classes: int | np.ndarray, top: int = 10
) -> Contributions:
    """How much each unit of the last hidden layer adds to a class's logit.

    The logit of class ``c`` is ``sum_j a_j * W[j, c] + b_c`` over the units ``j`` of the
    last hidden layer; each term ``a_j * W[j, c]`` is that unit's contribution.

    Parameters
    ----------
    model : MLP
    images : ndarray of shape (n, H, W) or (n, n_features)
    classes : int or ndarray of shape (n,)
        The class to explain, one for all images or one per image.
    top : int
        How many of the largest contributions to index in ``Contributions.top``.

    Returns
    -------
    Contributions
        ``values`` (n, n_units), ``bias`` (n,), ``logit`` (n,), ``top`` (n, min(top, n_units)).
    """
    images = _batch(images)
    n = images.shape[0]
    classes = _classes(model, classes, n)
    prepared = model.prepare_inputs(images)
    if model.n_layers > 1:
        _, post = model.forward_prepared(prepared, return_all=True)
        feeding = post[-2]
    else:
        feeding = prepared
    values = feeding * model.weights[-1][:, classes].T
    bias = model.biases[-1][classes].copy()
    logit = values.sum(axis=1) + bias
    k = min(int(top), values.shape[1])
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    return Contributions(values=values, bias=bias, logit=logit, top=order, classes=classes)


# -------------------------------------------------------------------------- saliency
def logit_gradient(model: MLP, images: np.ndarray, classes: int | np.ndarray) -> np.ndarray:
    """Gradient of a class's logit with respect to the input pixels.

    The class score is the logit, not the probability. Pixels are in scaled units
    (``raw * input_scale``: a positive value means brightening that pixel raises the score).

    Parameters
    ----------
    model : MLP
    images : ndarray of shape (n, H, W) or (n, n_features)
    classes : int or ndarray of shape (n,)

    Returns
    -------
    ndarray, same shape as ``images``, the network's dtype
    """
    grad, _ = _score_gradient(model, images, classes)
    return grad


def gradient_times_input(model: MLP, images: np.ndarray, classes: int | np.ndarray) -> np.ndarray:
    """``logit_gradient`` times the (scaled) input, pixel by pixel.

    Dark pixels (0) get 0: the map shows the ink that counts for or against the class.
    Same parameters as ``logit_gradient``.

    Returns
    -------
    ndarray, same shape as ``images``, the network's dtype
    """
    grad, scaled = _score_gradient(model, images, classes)
    return grad * scaled


def contrast_gradient(
    model: MLP,
    images: np.ndarray,
    classes: int | np.ndarray,
    rivals: int | np.ndarray,
) -> np.ndarray:
    """ "Why ``classes`` rather than ``rivals``": gradient of (logit class - logit rival).

    Class scores are logits. Positive pixels push towards ``classes`` and away from
    ``rivals``; negative ones the other way.

    Parameters
    ----------
    model : MLP
    images : ndarray of shape (n, H, W) or (n, n_features)
    classes, rivals : int or ndarray of shape (n,)

    Returns
    -------
    ndarray, same shape as ``images``, the network's dtype
    """
    grad, _ = _score_gradient(model, images, classes, rivals)
    return grad


def unit_gradient(model: MLP, images: np.ndarray, layer: int, units: np.ndarray) -> np.ndarray:
    """Gradient of hidden units' pre-activations with respect to the input pixels.

    It shows what a unit responds to in each image. For a unit of the first layer it is
    the same for every image: the unit's weight image, ``weights[0][:, unit]``. Pixels are
    in scaled units, as in ``logit_gradient``.

    Parameters
    ----------
    model : MLP
    images : ndarray of shape (n, H, W) or (n, n_features)
    layer : int
        Index of the layer, 0 for the first hidden layer (``n_layers - 1`` is the output).
    units : ndarray of shape (k,), int
        Units of that layer.

    Returns
    -------
    ndarray of shape (n, k, H, W) or (n, k, n_features), the network's dtype
    """
    images = _batch(images)
    units = np.asarray(units, dtype=np.int64).reshape(-1)
    if not 0 <= layer < model.n_layers:
        raise ValueError(f"layer must be in 0..{model.n_layers - 1}, got {layer}")
    width = model.sizes[layer + 1]
    if units.size and (units.min() < 0 or units.max() >= width):
        raise ValueError(f"layer {layer} has units 0..{width - 1}, got {units.tolist()}")
    n, k = images.shape[0], units.size
    _, post = model.forward_prepared(model.prepare_inputs(images), return_all=True)
    repeated = [np.repeat(a, k, axis=0) for a in post[:layer]]  # row i * k + j: image i, unit j
    delta = np.zeros((n * k, width), model.dtype)
    delta[np.arange(n * k), np.tile(units, n)] = 1
    grad = _backprop_to_input(model, repeated, delta, layer)
    return grad.reshape(n, k, *images.shape[1:])


def occlusion_map(
    model: MLP,
    images: np.ndarray,
    classes: int | np.ndarray,
    patch: int = OCCLUSION_PATCH,
    stride: int = OCCLUSION_STRIDE,
    fill: float = 0.0,
    image_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Drop in a class's probability when a square patch of the image is masked.

    Unlike the gradient maps this uses the probability, because it measures what the
    network finally says. Each patch position (stride ``stride``, the last row and column
    of positions flush with the border so every pixel is covered) is filled with ``fill``;
    a pixel's value is the mean drop over the patches that cover it. All occluded copies
    of an image go through the network as one batch.

    Parameters
    ----------
    model : MLP
    images : ndarray of shape (n, H, W) or (n, n_features)
    classes : int or ndarray of shape (n,)
    patch : int
        Side of the square patch, in pixels.
    stride : int
        Distance between patch positions, in pixels.
    fill : float
        Value of masked pixels in raw units (0 = background for MNIST).
    image_shape : (H, W), optional
        Needed for flat inputs that are not square images.

    Returns
    -------
    ndarray, same shape as ``images``, the network's dtype
        Positive where masking lowers the probability (the pixels support the class).
    """
    images = _batch(images)
    n = images.shape[0]
    shape = _image_shape(images, image_shape)
    patch, stride = int(patch), int(stride)
    if not 1 <= patch <= min(shape) or stride < 1:
        raise ValueError(
            f"patch must be 1..{min(shape)} and stride at least 1, got {patch} and {stride}"
        )
    classes = _classes(model, classes, n)
    masks = occlusion_masks(shape, patch, stride)  # (P, H*W) bool
    coverage = masks.sum(axis=0).astype(model.dtype)
    flat = images.reshape(n, -1)
    base = model.forward(flat)[np.arange(n), classes]
    per_chunk = max(1, OCCLUSION_BATCH_ELEMENTS // (masks.size))
    drops = np.empty((n, masks.shape[0]), model.dtype)
    for start in range(0, n, per_chunk):
        rows = slice(start, start + per_chunk)
        drops[rows] = base[rows, None] - _occluded_probs(
            model, flat[rows], masks, fill, classes[rows]
        )
    maps = (drops @ masks.astype(model.dtype)) / coverage
    return maps.reshape(images.shape)


def occlusion_masks(shape: tuple[int, int], patch: int, stride: int) -> np.ndarray:
    """Boolean masks of every patch position, shape (n_positions, H * W).

    Positions start at 0 and step by ``stride``; a last position flush with the far edge
    is added when the steps miss it, so every pixel is covered at least once.
    """
    rows = _positions(shape[0], patch, stride)
    cols = _positions(shape[1], patch, stride)
    masks = np.zeros((len(rows), len(cols), *shape), bool)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            masks[i, j, r : r + patch, c : c + patch] = True
    return masks.reshape(len(rows) * len(cols), shape[0] * shape[1])


def saliency(
    model: MLP,
    images: np.ndarray,
    classes: int | np.ndarray,
    method: str = "gradient",
    **options,
) -> np.ndarray:
    """One of the saliency maps by name: see ``SALIENCY_METHODS``.

    Parameters
    ----------
    model : MLP
    images : ndarray of shape (n, H, W) or (n, n_features)
    classes : int or ndarray of shape (n,)
    method : {"gradient", "gradient_x_input", "occlusion"}
    **options
        Passed to the method (``patch``, ``stride``, ``fill`` for occlusion).

    Returns
    -------
    ndarray, same shape as ``images``
    """
    if method not in SALIENCY_METHODS:
        raise ValueError(
            f"unknown saliency method {method!r}; choose one of {', '.join(SALIENCY_METHODS)}"
        )
    return SALIENCY_METHODS[method](model, images, classes, **options)


SALIENCY_METHODS: dict[str, Callable[..., np.ndarray]] = {
    "gradient": logit_gradient,
    "gradient_x_input": gradient_times_input,
    "occlusion": occlusion_map,
}


# -------------------------------------------------------------------- counterfactual
def counterfactual(
    model: MLP,
    images: np.ndarray,
    targets: int | np.ndarray,
    penalty: str = "l1",
    strength: float = 0.4,
    step_size: float = 0.05,
    max_steps: int = 300,
    min_probability: float = 0.5,
    on_step: Callable[[int, np.ndarray], None] | None = None,
) -> Counterfactual:
    """The smallest edit found that makes the network predict ``targets``.

    Minimises ``cross_entropy(target) + lam * penalty(edited - original)`` over the
    scaled pixels by projected gradient descent, keeping every pixel in 0..1. Each step is
    scaled so that the pixel that moves most moves by ``step_size``: the gradient's own
    scale changes a lot between networks and during the search. For the same reason the
    penalty's weight ``lam`` is relative: ``strength`` times the image's largest
    cross-entropy gradient at that step, so the pull towards the target always wins
    somewhere and the search never stalls short of it. The L2 penalty is the squared
    Euclidean norm of the change, added to the gradient. The L1 penalty is the sum of
    absolute changes, applied by soft thresholding after each step (its proximal step): a
    pixel changes only where its gradient is at least ``strength`` times the largest, so
    most pixels stay exactly as they were. An image stops as soon as its target is the
    predicted class with at least ``min_probability``; the search stops when all have or
    after ``max_steps``. Nothing is random: the same inputs give the same result.

    Parameters
    ----------
    model : MLP
    images : ndarray of shape (n, H, W) or (n, n_features)
        Raw, as for prediction; the edit is made on the scaled pixels (``raw * input_scale``),
        which must lie in 0..1.
    targets : int or ndarray of shape (n,)
    penalty : {"l2", "l1"}
    strength : float
        Weight of the penalty, relative to the largest cross-entropy gradient, in [0, 1).
    step_size : float
        Largest change of one pixel in one step, in scaled units.
    max_steps : int
    min_probability : float
        Probability the target needs besides being the most probable class.
    on_step : callable(step, probs), optional
        Called after every step with the step number and the (n, n_classes) probabilities,
        e.g. to show progress.

    Returns
    -------
    Counterfactual
        Edited images and changes with the input's shape, in scaled units.
    """
    if penalty not in ("l1", "l2"):
        raise ValueError(f"penalty must be 'l1' or 'l2', got {penalty!r}")
    if not 0 <= strength < 1:
        raise ValueError(f"strength must be in [0, 1), got {strength}")
    images = _batch(images)
    n = images.shape[0]
    targets = _classes(model, targets, n)
    original = model.prepare_inputs(images)
    if original.size and (original.min() < 0 or original.max() > 1):
        raise ValueError(
            "the counterfactual edits pixels in 0..1, but this network's scaled inputs go "
            f"from {original.min():.3g} to {original.max():.3g}"
        )
    edited = original.copy()
    onehot = _one_hot(model, targets)
    probs = model.forward_prepared(edited)
    path = [probs]
    active = ~_reached(probs, targets, min_probability)
    steps = np.zeros(n, np.int64)
    for step in range(1, int(max_steps) + 1):
        if not active.any():
            break
        rows = np.flatnonzero(active)
        edited[rows] = _counterfactual_step(
            model, edited[rows], original[rows], onehot[rows], penalty, strength, step_size
        )
        probs = model.forward_prepared(edited)
        steps[rows] = step
        active &= ~_reached(probs, targets, min_probability)
        moved = (steps == step)[:, None]
        path.append(np.where(moved, probs, path[-1]))
        if on_step is not None:
            on_step(step, probs)
    return Counterfactual(
        image=edited.reshape(images.shape),
        change=(edited - original).reshape(images.shape),
        prob_path=np.stack(path, axis=1),
        reached=_reached(probs, targets, min_probability),
        steps=steps,
        targets=targets,
    )


def _counterfactual_step(
    model: MLP,
    edited: np.ndarray,
    original: np.ndarray,
    onehot: np.ndarray,
    penalty: str,
    strength: float,
    step_size: float,
) -> np.ndarray:
    """One projected (and for L1 proximal) gradient step on images (m, n_features)."""
    dtype = model.dtype.type
    grad, _ = _input_gradient(model, edited, targets=onehot)
    # Pixels pinned at 0 or 1 that the gradient pushes outwards cannot move: leave them
    # out, so that they do not set the step's scale.
    grad[((edited <= 0) & (grad > 0)) | ((edited >= 1) & (grad < 0))] = 0
    weight = dtype(strength) * np.abs(grad).max(axis=1, keepdims=True)
    if penalty == "l2":
        grad += 2 * weight * (edited - original)
    largest = np.abs(grad).max(axis=1, keepdims=True)
    rate = dtype(step_size) / np.maximum(largest, np.finfo(model.dtype).tiny)
    edited = edited - rate * grad
    if penalty == "l1":
        change = edited - original
        shrunk = np.maximum(np.abs(change) - rate * weight, 0)
        edited = original + np.sign(change) * shrunk
    return np.clip(edited, 0, 1, out=edited)


def _reached(probs: np.ndarray, targets: np.ndarray, min_probability: float) -> np.ndarray:
    rows = np.arange(len(targets))
    return (probs.argmax(axis=1) == targets) & (probs[rows, targets] >= min_probability)


# ------------------------------------------------------------------------- internals
def _input_gradient(
    model: MLP,
    prepared: np.ndarray,
    seed: np.ndarray | None = None,
    targets: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Back-propagate to the scaled input.

    With ``seed`` (n, n_classes), the gradient of ``sum(seed * logits)`` per row; with
    ``targets`` (one-hot, n x n_classes) instead, the gradient of the cross-entropy
    ``-log p_target`` (seed ``probs - targets``).

    Returns
    -------
    grad : ndarray of shape (n, n_features)
    probs : ndarray of shape (n, n_classes)
    """
    _, post = model.forward_prepared(prepared, return_all=True)
    probs = post[-1]
    delta = probs - targets if seed is None else seed.astype(model.dtype, copy=False)
    return _backprop_to_input(model, post, delta, model.n_layers - 1), probs


def _score_gradient(
    model: MLP,
    images: np.ndarray,
    classes: int | np.ndarray,
    rivals: int | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of each image's class logit (minus its rival's logit, with ``rivals``)
    with respect to the scaled input, and that input.

    Returns
    -------
    grad, scaled : ndarray, both the shape of ``images``, the network's dtype
    """
    images = _batch(images)
    n = images.shape[0]
    seed = _one_hot(model, _classes(model, classes, n))
    if rivals is not None:
        seed -= _one_hot(model, _classes(model, rivals, n))
    scaled = model.prepare_inputs(images)
    grad, _ = _input_gradient(model, scaled, seed)
    return grad.reshape(images.shape), scaled.reshape(images.shape)


def _backprop_to_input(
    model: MLP, post: list[np.ndarray], delta: np.ndarray, layer: int
) -> np.ndarray:
    """Carry ``delta``, a gradient with respect to layer ``layer``'s pre-activation
    (m, sizes[layer + 1]), down to the scaled input (m, n_features); ``post`` holds the
    activations of the same m rows."""
    backward = ACTIVATIONS[model.activation][1]
    for i in range(layer, -1, -1):
        delta = delta @ model.weights[i].T
        if i > 0:
            backward(post[i - 1], delta)
    return delta


def _occluded_probs(
    model: MLP, flat: np.ndarray, masks: np.ndarray, fill: float, classes: np.ndarray
) -> np.ndarray:
    """Probability of each image's class on each occluded copy, shape (n, n_positions)."""
    n, n_positions = flat.shape[0], masks.shape[0]
    copies = np.where(masks[None], model.dtype.type(fill), flat[:, None, :].astype(model.dtype))
    probs = model.forward(copies.reshape(n * n_positions, -1)).reshape(n, n_positions, -1)
    return probs[np.arange(n), :, classes]


def _positions(length: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def _batch(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim not in (2, 3):
        raise ValueError(
            f"expected a batch of images, shape (n, H, W) or (n, n_features), got {images.shape}"
        )
    return images


def _image_shape(images: np.ndarray, given: tuple[int, int] | None) -> tuple[int, int]:
    if images.ndim == 3:
        return (images.shape[1], images.shape[2])
    if given is not None:
        if given[0] * given[1] != images.shape[1]:
            raise ValueError(f"image_shape {given} does not hold {images.shape[1]} features")
        return (int(given[0]), int(given[1]))
    side = math.isqrt(images.shape[1])
    if side * side != images.shape[1]:
        raise ValueError(
            f"{images.shape[1]} features are not a square image; pass image_shape=(H, W)"
        )
    return (side, side)


def _classes(model: MLP, classes: int | np.ndarray, n: int) -> np.ndarray:
    out = np.broadcast_to(np.asarray(classes, dtype=np.int64), (n,)).copy()
    n_classes = model.sizes[-1]
    if out.size and (out.min() < 0 or out.max() >= n_classes):
        raise ValueError(f"classes must be in 0..{n_classes - 1}, got {classes}")
    return out


def _one_hot(model: MLP, classes: np.ndarray) -> np.ndarray:
    out = np.zeros((classes.size, model.sizes[-1]), model.dtype)
    out[np.arange(classes.size), classes] = 1
    return out
