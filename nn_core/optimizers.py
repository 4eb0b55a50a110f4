"""Optimizers that update a flat parameter vector in place, and learning-rate schedules.

Every optimizer works on the whole ``params`` vector at once (see ``network.MLP``), so an
update is a handful of vector operations whatever the number of layers. Their state is
a dict of arrays, so a trainer can snapshot and restore it.

A step consumes the gradient: ``grads`` is the step's scratch space and holds no
gradient afterwards (the next backward pass overwrites it anyway). The update is bound
by memory bandwidth, and one array fewer to stream is 10-20% faster.
"""

from __future__ import annotations

import math

import numpy as np

OPTIMIZERS = ("gd", "sgd", "adam")
SCHEDULES = ("constant", "step", "cosine")

# A running average whose gradient stays zero (the weights of a pixel that is never inked)
# decays geometrically and reaches float32's subnormal range after ~800 Adam steps; each
# arithmetic operation on a subnormal is then ~100x slower (measured: Adam's update went
# from 293 to 478 us on 784-128-64-10 by the third epoch). So the optimizers flush such
# values to zero while they are still 1000x above the smallest normal number: too small
# by far to move any parameter, so the result is the textbook update to float32 precision.
FLUSH_MARGIN = 1e-3


class GradientDescent:
    """Plain or momentum SGD: ``v = momentum * v - lr * g; p += v``.

    With ``nesterov`` the step looks ahead: ``p += momentum * v - lr * g``. With zero
    momentum this is the notebook's gradient descent, ``p -= lr * g``.
    """

    def __init__(self, params: np.ndarray, momentum: float = 0.0, nesterov: bool = False):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.momentum = momentum
        self.nesterov = nesterov
        self.state = {"velocity": np.zeros_like(params)} if momentum else {}
        self._flush = _SubnormalFlush(momentum, params.dtype)

    def step(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        """Update ``params`` of shape (n_params,) from ``grads`` of the same shape.

        ``grads`` is overwritten (it is the scratch space of the update).
        """
        step = grads
        step *= params.dtype.type(lr)
        if not self.momentum:
            params -= step
            return
        velocity = self.state["velocity"]
        momentum = params.dtype.type(self.momentum)
        velocity *= momentum
        velocity -= step
        if self.nesterov:
            # look ahead: the step is momentum * v_new - lr * g
            params -= step
            np.multiply(velocity, momentum, out=step)
            params += step
        else:
            params += velocity
        self._flush.step(grads, velocity)


class Adam:
    """Adam (Kingma and Ba, 2015) with bias correction.

    The moments are kept unnormalised, ``m' = m / (1 - beta1)`` and
    ``v' = v / (1 - beta2)``, so that each update needs no multiply of the gradient
    by ``1 - beta``: the constants fold into the step size and epsilon. The update is
    the textbook one.
    """

    def __init__(
        self,
        params: np.ndarray,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ):
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {beta}")
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.state = {
            "m": np.zeros_like(params),
            "v": np.zeros_like(params),
            "t": np.zeros(1, dtype=np.int64),
        }
        # the first moment decays fastest (unless beta1 is 0: then it is the gradient itself)
        self._flush = _SubnormalFlush(beta1 or beta2, params.dtype)

    # The update is ten passes over four vectors and bound by memory bandwidth. Done a
    # block at a time, a block's four slices stay in the core's L2 cache between passes
    # instead of streaming from L3 ten times (block of 2**16 float32 = 4 x 256 KiB).
    BLOCK = 1 << 16

    def step(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        """Update ``params`` of shape (n_params,) from ``grads`` of the same shape.

        ``grads`` is overwritten (it is the scratch space of the update).
        """
        self.state["t"][0] += 1
        t = int(self.state["t"][0])
        b1, b2 = self.beta1, self.beta2
        # lr * m_hat / (sqrt(v_hat) + eps), with m = (1 - b1) m', v = (1 - b2) v'
        step_size = lr * (1 - b1) / (1 - b1**t)
        denom_scale = math.sqrt((1 - b2) / (1 - b2**t))
        dtype = params.dtype.type
        consts = (dtype(b1), dtype(b2), dtype(denom_scale / step_size), dtype(self.eps / step_size))
        m, v = self.state["m"], self.state["v"]
        for start in range(0, params.shape[0], self.BLOCK):
            block = slice(start, start + self.BLOCK)
            _adam_block(params[block], grads[block], m[block], v[block], *consts)
        self._flush.step(grads, m, v)


def _adam_block(p, g, m, v, b1, b2, denom_scale, eps) -> None:
    """One block of the Adam update (moments unnormalised, see ``Adam``), in place;
    ``g`` ends as scratch."""
    m *= b1
    m += g
    v *= b2
    g *= g
    v += g
    step = np.sqrt(v, out=g)
    step *= denom_scale
    step += eps
    np.divide(m, step, out=step)
    p -= step


class _SubnormalFlush:
    """Zero the entries of decaying state arrays before they turn subnormal.

    Every ``interval`` steps (the steps a value decaying by ``decay`` per step takes to
    shrink by ``FLUSH_MARGIN``), entries below ``threshold`` in magnitude are set to zero;
    an entry at or above it cannot reach the subnormal range before the next flush.
    """

    def __init__(self, decay: float, dtype: np.dtype) -> None:
        self.interval = max(1, int(math.log(FLUSH_MARGIN) / math.log(decay))) if decay else 0
        self.threshold = dtype.type(np.finfo(dtype).tiny / FLUSH_MARGIN)
        self.steps = 0

    def step(self, scratch: np.ndarray, *arrays: np.ndarray) -> None:
        """Count one optimizer step; flush ``arrays`` when due (``scratch``: same shape)."""
        self.steps += 1
        if not self.interval or self.steps % self.interval:
            return
        for values in arrays:
            np.abs(values, out=scratch)
            np.greater_equal(scratch, self.threshold, out=scratch)
            values *= scratch  # keeps NaN and inf: a divergence is still caught


def make_optimizer(
    name: str,
    params: np.ndarray,
    momentum: float = 0.9,
    nesterov: bool = False,
    beta1: float = 0.9,
    beta2: float = 0.999,
) -> GradientDescent | Adam:
    """Build an optimizer by name: ``gd`` (no momentum), ``sgd`` (momentum), ``adam``."""
    if name == "gd":
        return GradientDescent(params)
    if name == "sgd":
        return GradientDescent(params, momentum=momentum, nesterov=nesterov)
    if name == "adam":
        return Adam(params, beta1=beta1, beta2=beta2)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def learning_rate(
    schedule: str,
    base_lr: float,
    progress: float,
    total_epochs: int,
    step_epochs: int = 10,
    gamma: float = 0.5,
    min_fraction: float = 0.0,
) -> float:
    """Learning rate at a point of training.

    Parameters
    ----------
    schedule : {"constant", "step", "cosine"}
    base_lr : float
    progress : float
        Epochs done so far, fractional within an epoch (0.5 = half way through epoch 1).
    total_epochs : int
        Length of the run (the cosine's half period).
    step_epochs, gamma : int, float
        ``step`` multiplies the rate by ``gamma`` every ``step_epochs`` epochs.
    min_fraction : float
        Floor of the cosine, as a fraction of ``base_lr``.
    """
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        return base_lr * gamma ** int(progress // max(step_epochs, 1))
    if schedule == "cosine":
        frac = min(progress / max(total_epochs, 1), 1.0)
        cosine = 0.5 * (1 + math.cos(math.pi * frac))
        return base_lr * (min_fraction + (1 - min_fraction) * cosine)
    raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
