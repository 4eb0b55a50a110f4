"""Divergence as a person means it, and what to say about it.

A run has diverged when:

- its loss, averaged over the last few hundred samples, is far above where it started
  (``LOSS_FACTOR`` times the larger of the first batch's loss and ``ln(n_classes)``, the
  loss of a network that knows nothing): the learning rate throws the weights away faster
  than the gradient can pull them back;
- its weights explode: a value is no longer finite, or a layer's root-mean-square weight
  has grown ``WEIGHT_GROWTH`` times its size at the start;
- or, at the end of training, it gives the same answer for almost every image, its
  accuracy is at chance level and its loss rose above its start on the way: a too large
  step killed or saturated its units (a too small learning rate also leaves accuracy at
  chance, but not with one answer for everything after a rising loss).

``DivergenceWatch`` applies these tests during training (``Trainer`` owns one);
``Divergence`` records what was seen, where it started and what to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LOSS_FACTOR = 10.0
SMOOTHING_SAMPLES = 256
WEIGHT_GROWTH = 1000.0
LOSS_ROSE = 1.1
ONE_ANSWER_SHARE = 0.9
CHANCE_MARGIN = 0.25  # "at chance": closer to chance than a quarter of the way to 100%

TYPICAL_LR = {"gd": 0.1, "sgd": 0.05, "adam": 1e-3}
OPTIMIZER_NAMES = {"gd": "gradient descent", "sgd": "SGD with momentum", "adam": "Adam"}


@dataclass(frozen=True)
class Divergence:
    """What was seen when a run diverged, where it started, and the fix.

    Attributes
    ----------
    sign : {"loss", "weights", "one answer"}
        Which test fired.
    epoch, batch : int
        Where it was detected (1-based; ``batch`` within the epoch, 0 when detected at the
        end of the epoch).
    started_epoch, started_batch : int
        The batch from which the smoothed loss stayed above its start, up to the detection.
    layer : int
        Where it shows most: the weight layer (1-based) whose weights changed the most
        relative to their size since the last good weights, ``layer_change`` being that
        ratio (inf when not finite); for "one answer", the layer whose root-mean-square
        weight grew the most since the start, ``layer_change`` being that growth.
    start_loss, loss : float
        The loss the run started from, and the (smoothed) loss when it was detected.
    lr, suggested_lr : float
        The learning rate setting and a lower one to try.
    kept_epoch : int or None
        The epoch whose end-of-epoch weights were put back (0: the initial weights);
        None when the weights were left as they are.
    sentence : str
        One plain sentence with the fix (for a terminal).
    message : str
        ``sentence`` and what happened to the weights (for the app).
    """

    sign: str
    epoch: int
    batch: int
    started_epoch: int
    started_batch: int
    layer: int
    layer_change: float
    start_loss: float
    loss: float
    lr: float
    suggested_lr: float
    kept_epoch: int | None
    sentence: str
    message: str


class DivergenceWatch:
    """The running figures the divergence tests need.

    Parameters
    ----------
    n_classes : int
    weights : list of ndarray
        The network's weight matrices at the start of the run (their sizes are the
        reference for ``WEIGHT_GROWTH``).
    """

    def __init__(self, n_classes: int, weights: list[np.ndarray]) -> None:
        self.start_loss: float | None = None
        self.floor = math.log(n_classes)
        self.smoothed: float | None = None
        self.rose = False
        self.rising_since: tuple[int, int] | None = None
        self._start_rms = [max(_rms(w), 1e-6) for w in weights]

    @property
    def reference(self) -> float:
        """The loss the tests compare against: the start, at least ln(n_classes)."""
        return max(self.start_loss or self.floor, self.floor)

    def loss_diverged(self, loss: float, n: int, epoch: int, batch: int) -> bool:
        """Count one batch of ``n`` samples; True if the loss is not finite or far too high."""
        if not math.isfinite(loss):
            return True
        if self.start_loss is None:
            self.start_loss = loss
        weight = n / (n + SMOOTHING_SAMPLES)
        previous = loss if self.smoothed is None else self.smoothed
        self.smoothed = previous + weight * (loss - previous)
        ratio = self.smoothed / self.reference
        self.rose = self.rose or ratio > LOSS_ROSE
        if ratio <= 1.0:
            self.rising_since = None
        elif self.rising_since is None:
            self.rising_since = (epoch, batch)
        return ratio > LOSS_FACTOR

    def restart_smoothing(self) -> None:
        """Forget the recent losses (after the weights were put back)."""
        self.smoothed = None
        self.rising_since = None

    def growth(self, weights: list[np.ndarray]) -> list[float]:
        """Each layer's root-mean-square weight over its value at the start."""
        with np.errstate(over="ignore", invalid="ignore"):
            return [_rms(w) / start for w, start in zip(weights, self._start_rms)]

    def weights_exploded(self, params: np.ndarray, weights: list[np.ndarray]) -> bool:
        """True if a parameter is not finite or a layer's weights grew ``WEIGHT_GROWTH``-fold."""
        with np.errstate(over="ignore", invalid="ignore"):
            if not math.isfinite(float(np.vdot(params, params))):
                return True
        return max(self.growth(weights)) > WEIGHT_GROWTH

    def one_answer(
        self, predictions: np.ndarray, labels: np.ndarray
    ) -> tuple[int, float, float] | None:
        """(class, its share of the answers, accuracy) when one class is the answer for
        almost every sample and accuracy is at chance after a rising loss; else None.

        Parameters
        ----------
        predictions, labels : ndarray of shape (n_samples,)
        """
        if not self.rose or labels.shape[0] == 0:
            return None
        counts = np.bincount(predictions)
        answer = int(counts.argmax())
        share = counts[answer] / predictions.shape[0]
        chance = np.bincount(labels).max() / labels.shape[0]
        accuracy = float(np.mean(predictions == labels))
        at_chance = accuracy - chance < CHANCE_MARGIN * (1 - chance)
        if share >= ONE_ANSWER_SHARE and at_chance:
            return answer, float(share), accuracy
        return None


def layer_changes(now: list[np.ndarray], before: list[np.ndarray]) -> list[float]:
    """``||W_now - W_before|| / ||W_before||`` per layer (inf where not finite)."""
    changes = []
    with np.errstate(over="ignore", invalid="ignore"):
        for w_now, w_before in zip(now, before):
            change = float(np.linalg.norm(w_now - w_before)) / max(
                float(np.linalg.norm(w_before)), 1e-12
            )
            changes.append(change if math.isfinite(change) else math.inf)
    return changes


def _rms(a: np.ndarray) -> float:
    """Root mean square of an array (inf once its squares overflow)."""
    return math.sqrt(float(np.vdot(a, a)) / max(a.size, 1))


def suggested_lr(optimizer: str, lr: float) -> float:
    """A learning rate to try instead of ``lr``: a tenth of it, and no more than the usual
    value for ``optimizer``, to one significant digit."""
    target = min(lr / 10, TYPICAL_LR.get(optimizer, lr / 10))
    return float(f"{target:.1g}")


def diagnose(
    sign: str,
    *,
    optimizer: str,
    lr: float,
    epoch: int,
    batch: int,
    started: tuple[int, int],
    start_loss: float,
    loss: float,
    layer: int,
    layer_change: float,
    kept_epoch: int | None,
    one_answer: tuple[int, float, float] | None = None,
) -> Divergence:
    """The ``Divergence`` record of what a ``DivergenceWatch`` saw, with its sentences.

    ``started`` is (epoch, batch) where the loss began to rise; ``one_answer`` is (class,
    share of samples, accuracy) for the "one answer" sign; the other arguments are
    ``Divergence``'s fields.
    """
    sentence = describe(
        sign,
        optimizer=optimizer,
        lr=lr,
        epoch=epoch,
        batch=batch,
        start_loss=start_loss,
        loss=loss,
        layer=layer,
        layer_change=layer_change,
        one_answer=one_answer,
    )
    return Divergence(
        sign=sign,
        epoch=epoch,
        batch=batch,
        started_epoch=started[0],
        started_batch=started[1],
        layer=layer,
        layer_change=layer_change,
        start_loss=start_loss,
        loss=loss,
        lr=lr,
        suggested_lr=suggested_lr(optimizer, lr),
        kept_epoch=kept_epoch,
        sentence=sentence,
        message=sentence + _kept_note(kept_epoch),
    )


def _kept_note(kept_epoch: int | None) -> str:
    if kept_epoch is None:
        return ""
    if kept_epoch == 0:
        return " The network was put back to its initial weights."
    return f" The weights from the end of epoch {kept_epoch} were kept."


def describe(
    sign: str,
    *,
    optimizer: str,
    lr: float,
    epoch: int,
    batch: int,
    start_loss: float,
    loss: float,
    layer: int,
    layer_change: float,
    one_answer: tuple[int, float, float] | None = None,
) -> str:
    """The plain sentence for a divergence, ending with the fix.

    ``one_answer`` is (class, share of samples, accuracy) for the "one answer" sign.
    """
    better = suggested_lr(optimizer, lr)
    fix = (
        f"the learning rate {lr:g} is too large for {OPTIMIZER_NAMES.get(optimizer, optimizer)}: "
        f"lower it, e.g. to {better:g}, and train again."
    )
    where = f"in epoch {epoch}" + (f", batch {batch}" if batch else "")
    if sign == "loss":
        rose_to = f"{loss:.3g}" if math.isfinite(loss) else "infinity"
        what = f"the loss rose from {start_loss:.3g} to {rose_to} {where}"
    elif sign == "weights":
        size = "infinite" if math.isinf(layer_change) else f"{layer_change:.3g} times their size"
        what = f"the weights of layer {layer} blew up ({size}) {where}"
    else:
        answer, share, accuracy = one_answer or (0, 1.0, 0.0)
        what = (
            f"after {epoch} epochs the network gives the same answer ({answer}) for "
            f"{share:.0%} of the images and is right for {accuracy:.0%}, no better than "
            "chance, after its loss rose"
        )
    return f"Training diverged: {what}; {fix}"
