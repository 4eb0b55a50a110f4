"""Learning-rate range test: train a few hundred batches with a growing learning rate.

The test (L. Smith, "Cyclical learning rates", 2017) starts from the current settings and
network, multiplies the learning rate by the same factor after every batch, from
``start_lr`` to ``end_lr``, and records the training loss. Too small a rate barely moves the
loss; a good one makes it fall fastest; too large a one makes it climb. The suggested rate
is where the smoothed loss falls fastest (see ``suggest_learning_rate``).

It trains a copy: the caller's network, optimizer and trainer are never touched.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from nn_core.config import TrainConfig
from nn_core.network import MLP
from nn_core.training import Trainer

DEFAULT_BATCHES = 200
DEFAULT_START_LR = 1e-6
DEFAULT_END_LR = 10.0
SMOOTHING = 0.9
# Stop once the smoothed loss exceeds this multiple of its minimum: the rate is far too big.
DIVERGE_FACTOR = 4.0
# The first batches' smoothed loss still leans on the first few raw values; skip them.
WARMUP_FRACTION = 0.1
MAX_BATCHES = 2000

SUGGESTION_METHOD = (
    "steepest descent of the smoothed loss: the rate where the loss, averaged over the last "
    "~10 batches, falls fastest per tenfold increase of the rate, before its minimum"
)


@dataclass(frozen=True)
class LRFinderResult:
    """What a range test measured.

    Attributes
    ----------
    lrs : ndarray of shape (n,)
        Learning rate of each batch, growing geometrically.
    losses : ndarray of shape (n,)
        Training loss measured right after the update with ``lrs[i]`` (the next batch's
        loss, before its own update): the effect of that rate.
    smoothed : ndarray of shape (n,)
        Exponential moving average of ``losses`` (bias-corrected).
    suggested_lr : float or None
        None when the curve shows no descent (the rate range is too small or too large).
    suggested_index : int or None
        Index of ``suggested_lr`` in ``lrs``.
    min_loss_lr : float
        The rate of the smoothed loss's minimum; ``min_loss_lr / 10`` is another common
        rule of thumb.
    method : str
        How the suggestion was chosen, for people.
    stop_reason : str
        Why the test ended (all batches done, or the loss blew up at some rate).
    seconds : float
        Wall time of the test.
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggested_lr: float | None
    suggested_index: int | None
    min_loss_lr: float
    method: str
    stop_reason: str
    seconds: float

    def to_dict(self) -> dict:
        """JSON-able figures (NaN as None is left to ``nn_core.io.jsonable``)."""
        return {
            "lrs": self.lrs.tolist(),
            "losses": self.losses.tolist(),
            "smoothed": self.smoothed.tolist(),
            "suggested_lr": self.suggested_lr,
            "suggested_index": self.suggested_index,
            "min_loss_lr": self.min_loss_lr,
            "method": self.method,
            "stop_reason": self.stop_reason,
            "seconds": self.seconds,
        }


def find_learning_rate(
    config: TrainConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    n_classes: int | None = None,
    model: MLP | None = None,
    start_lr: float = DEFAULT_START_LR,
    end_lr: float = DEFAULT_END_LR,
    n_batches: int = DEFAULT_BATCHES,
    input_scale: float = 1.0 / 255.0,
) -> LRFinderResult:
    """Run a learning-rate range test with ``config``'s settings.

    Parameters
    ----------
    config : TrainConfig
        Everything but the learning rate and its schedule is used as is: network, optimizer,
        batch size, L2, dropout, augmentation, validation split and seed.
    x_train : ndarray of shape (n_samples, H, W) or (n_samples, n_features)
    y_train : ndarray of shape (n_samples,)
        The same data training would get; the validation part is held out the same way.
    n_classes : int, optional
    model : MLP, optional
        Start from this network (e.g. the one trained so far); it is copied, never changed.
        A new network from ``config`` (and its seed) otherwise.
    start_lr, end_lr : float
        The range; ``0 < start_lr < end_lr < 100``.
    n_batches : int
        Batches in the test (at least 10, at most ``MAX_BATCHES``); fewer if the loss blows
        up first.
    input_scale : float
        For a new network: 1/255 for pixels.

    Returns
    -------
    LRFinderResult
    """
    _check_range(start_lr, end_lr, n_batches)
    started = time.perf_counter()
    trainer = _range_trainer(config, x_train, y_train, n_classes, model, input_scale)
    lrs = np.geomspace(start_lr, end_lr, n_batches)
    measured: list[float] = []
    watch = _BlowUpWatch()
    stop_reason = f"all {n_batches} batches done, up to a rate of {end_lr:g}"
    # One more batch than rates: batch i + 1's loss is the effect of rate i.
    for i in range(n_batches + 1):
        if i < n_batches:
            trainer.config = trainer.config.replace(lr=float(lrs[i]))
        info = trainer.step()
        if i == 0:
            continue
        measured.append(math.inf if info is None else info["loss"])
        if watch.blew_up(measured[-1]):
            stop_reason = f"the loss blew up at a rate of {lrs[i - 1]:g}, so the test stopped"
            break
    losses = np.array(measured, dtype=np.float64)
    lrs = lrs[: losses.shape[0]]
    smoothed = smooth_losses(losses)
    index = suggest_index(lrs, smoothed)
    finite = np.isfinite(smoothed)
    min_loss_lr = float(lrs[finite][np.argmin(smoothed[finite])]) if finite.any() else math.nan
    return LRFinderResult(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        suggested_lr=None if index is None else float(lrs[index]),
        suggested_index=index,
        min_loss_lr=min_loss_lr,
        method=SUGGESTION_METHOD,
        stop_reason=stop_reason,
        seconds=time.perf_counter() - started,
    )


def find_learning_rate_for(trainer: Trainer, **kwargs) -> LRFinderResult:
    """Range test from a trainer's settings, data and current network; the trainer is
    left exactly as it was (keyword arguments as ``find_learning_rate``)."""
    x = trainer.x if trainer.image_shape is None else trainer.x.reshape(-1, *trainer.image_shape)
    return find_learning_rate(
        trainer.config,
        x,
        trainer.y,
        n_classes=trainer.n_classes,
        model=trainer.model,
        **kwargs,
    )


def smooth_losses(losses: np.ndarray, beta: float = SMOOTHING) -> np.ndarray:
    """Bias-corrected exponential moving average of ``losses`` of shape (n,)."""
    out = np.empty_like(losses, dtype=np.float64)
    average = 0.0
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        out[i] = average / (1 - beta ** (i + 1))
    return out


def suggest_index(lrs: np.ndarray, smoothed: np.ndarray) -> int | None:
    """Index of the steepest descent of ``smoothed`` against ``log10(lrs)``, before its minimum.

    Parameters
    ----------
    lrs : ndarray of shape (n,)
        Increasing learning rates.
    smoothed : ndarray of shape (n,)
        Smoothed losses; non-finite values end the usable part.

    Returns
    -------
    int or None
        None when fewer than 5 usable points remain after the warm-up, or the loss never
        falls.
    """
    usable = int(np.argmin(np.isfinite(smoothed))) if not np.all(np.isfinite(smoothed)) else None
    end = smoothed.shape[0] if usable is None else usable
    start = int(end * WARMUP_FRACTION)
    if end - start < 5:
        return None
    window = smoothed[start:end]
    lowest = start + int(np.argmin(window))
    if lowest - start < 2:
        return None
    slopes = np.gradient(smoothed[start : lowest + 1], np.log10(lrs[start : lowest + 1]))
    steepest = int(np.argmin(slopes))
    if not slopes[steepest] < 0:
        return None
    return start + steepest


def _check_range(start_lr: float, end_lr: float, n_batches: int) -> None:
    if not 0 < start_lr < end_lr < 100:
        raise ValueError(
            f"the learning-rate range must satisfy 0 < start < end < 100, got {start_lr:g} to "
            f"{end_lr:g}"
        )
    if not 10 <= n_batches <= MAX_BATCHES:
        raise ValueError(
            f"the range test takes 10 to {MAX_BATCHES} batches, got {n_batches}; a few hundred "
            "is usual"
        )


def _range_trainer(
    config: TrainConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    n_classes: int | None,
    model: MLP | None,
    input_scale: float,
) -> Trainer:
    """A trainer on a copy of the network with a constant rate, no validation, no early stop."""
    settings = config.replace(schedule="constant", early_stopping=0, epochs=10**9, val_every=10**9)
    return Trainer(
        settings,
        x_train,
        y_train,
        n_classes=n_classes,
        model=None if model is None else model.copy(),
        input_scale=input_scale,
    )


class _BlowUpWatch:
    """Follows the smoothed loss batch by batch (as ``smooth_losses``) and says when it has
    blown up: a non-finite loss, or a smoothed loss ``DIVERGE_FACTOR`` times its minimum."""

    def __init__(self) -> None:
        self.average = 0.0
        self.count = 0
        self.lowest = math.inf

    def blew_up(self, loss: float) -> bool:
        if not math.isfinite(loss):
            return True
        self.count += 1
        self.average = SMOOTHING * self.average + (1 - SMOOTHING) * loss
        smoothed = self.average / (1 - SMOOTHING**self.count)
        self.lowest = min(self.lowest, smoothed)
        return self.count >= 10 and smoothed > DIVERGE_FACTOR * self.lowest
