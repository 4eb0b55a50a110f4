"""Teach a trained network one person's handwriting without making it forget MNIST.

Fine-tuning continues training a copy of a network on a few personal samples. Alone,
a few hundred steps on a few dozen digits pull the network towards them and away from
everything else ("catastrophic forgetting"). Two things help, and both are here:

- **replay**: every batch mixes in images of the original training set (a share of the
  batch set by ``replay``), so the old task keeps pulling too;
- **augmentation**: the personal images are shifted and rotated at random
  (``nn_core.augment``), so a few samples go further.

Some personal samples are kept aside to measure the result: a split per digit
(``per_digit_split``), or, when there are few, leave-one-out (``leave_one_out``: one
fine-tune per sample, each scored on the sample it did not see). ``teach`` does all of it
and returns the before/after comparison that the dashboard and the command line show.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from nn_core.augment import augment_batch
from nn_core.metrics import evaluate
from nn_core.network import MLP
from nn_core.optimizers import OPTIMIZERS, make_optimizer

MAX_REPLAY = 0.95  # a batch always holds some personal samples
# Fewer samples than this: leave-one-out (one fine-tune per sample) instead of a split.
# Each fine-tune takes ~0.1-0.3 s (benchmarks/finetune_speed.py), so the page's button,
# which fine-tunes twice to compare replay shares, stays within a few seconds.
LEAVE_ONE_OUT_BELOW = 10


class FinetuneError(ValueError):
    """Fine-tuning cannot run (no samples, a misfit set, a diverged run); one sentence."""


@dataclass(frozen=True)
class FinetuneSettings:
    """How to fine-tune.

    Attributes
    ----------
    steps : int
        Optimizer steps (batches). ``steps_for_epochs`` converts passes over the
        personal samples into steps.
    batch_size : int
        Images per batch, personal and replayed together.
    lr : float
        Learning rate; small, so the network moves only as far as it must.
    replay : float
        Share of each batch taken from the original training set, in [0, MAX_REPLAY].
    augment_shift : int
        Random shifts of the personal images, up to this many pixels.
    augment_rotation : float
        Random rotations of the personal images, up to this many degrees.
    optimizer : {"adam", "sgd", "gd"}
    seed : int
        Same seed, same settings and data: the same fine-tuned network.
    """

    steps: int = 150
    batch_size: int = 32
    lr: float = 3e-4
    replay: float = 0.5
    augment_shift: int = 2
    augment_rotation: float = 10.0
    optimizer: str = "adam"
    seed: int = 0

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise FinetuneError("; ".join(problems) + ".")


def _problems(s: FinetuneSettings) -> Iterator[str]:
    if s.steps < 1:
        yield f"steps must be at least 1, got {s.steps}"
    if s.batch_size < 2:
        yield f"batch size must be at least 2, got {s.batch_size}"
    if not (math.isfinite(s.lr) and 0 < s.lr < 1):
        yield f"the learning rate must be between 0 and 1, got {s.lr}"
    if not (math.isfinite(s.replay) and 0 <= s.replay <= MAX_REPLAY):
        yield f"replay must be between 0 and {MAX_REPLAY:g}, got {s.replay}"
    if s.augment_shift < 0 or not (0 <= s.augment_rotation <= 180):
        yield "augmentation needs a shift >= 0 pixels and a rotation of 0 to 180 degrees"
    if s.optimizer not in OPTIMIZERS:
        yield f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {s.optimizer!r}"


# ---------------------------------------------------------------------- replay mixing
def batch_shares(batch_size: int, replay: float) -> tuple[int, int]:
    """How many personal and replayed images one batch holds.

    Returns
    -------
    (n_personal, n_replay) : tuple of int
        ``n_replay = round(batch_size * replay)``, and at least one personal image.
    """
    n_replay = min(round(batch_size * replay), batch_size - 1)
    return batch_size - n_replay, n_replay


def steps_for_epochs(epochs: float, n_personal: int, batch_size: int, replay: float) -> int:
    """Steps that show each personal training sample ``epochs`` times (on average)."""
    per_batch = batch_shares(batch_size, replay)[0]
    return max(1, math.ceil(epochs * n_personal / per_batch))


def mixed_batches(
    n_personal: int,
    n_pool: int,
    steps: int,
    batch_size: int,
    replay: float,
    rng: np.random.Generator,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Indices of each batch's personal and replayed images.

    Personal samples are drawn epoch by epoch (every sample once per shuffled pass, so
    none is favoured); replayed ones uniformly from the pool, fresh every batch.

    Parameters
    ----------
    n_personal : int
        Personal training samples (at least 1).
    n_pool : int
        Images available for replay (may be 0 when ``replay`` is 0).
    steps, batch_size : int
    replay : float
        Share of each batch from the pool.
    rng : numpy.random.Generator

    Yields
    ------
    personal : ndarray of shape (n_personal_per_batch,), int64
    replayed : ndarray of shape (n_replay_per_batch,), int64
    """
    if n_personal < 1:
        raise FinetuneError("There are no personal samples to learn from.")
    per_batch, n_replay = batch_shares(batch_size, replay)
    if n_replay and n_pool < 1:
        raise FinetuneError("Replay needs the original training images; none were given.")
    order = np.zeros(0, np.int64)
    for _ in range(steps):
        while order.size < per_batch:
            order = np.concatenate([order, rng.permutation(n_personal)])
        personal, order = order[:per_batch], order[per_batch:]
        yield personal, rng.integers(0, n_pool, size=n_replay) if n_replay else order[:0]


# ---------------------------------------------------------------------- splits
def per_digit_split(
    labels: np.ndarray, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Keep ``test_fraction`` of each digit's samples aside for testing.

    Every class with two samples or more keeps at least one aside and at least one to
    learn from; a class with a single sample keeps it for learning.

    Parameters
    ----------
    labels : ndarray of shape (n,), int
    test_fraction : float
        In (0, 1).
    rng : numpy.random.Generator

    Returns
    -------
    train, test : ndarray of int64
        Sorted indices into ``labels``, disjoint, together all of them.
    """
    if not 0 < test_fraction < 1:
        raise FinetuneError(f"the held-out share must be between 0 and 1, got {test_fraction}")
    labels = np.asarray(labels)
    test = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        if members.size >= 2:
            n_test = min(max(1, round(test_fraction * members.size)), members.size - 1)
            test.append(members[:n_test])
    test_idx = np.sort(np.concatenate(test)).astype(np.int64) if test else np.zeros(0, np.int64)
    train_idx = np.setdiff1d(np.arange(labels.size), test_idx).astype(np.int64)
    return train_idx, test_idx


def leave_one_out(n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Folds that each hold out one sample: (the other indices, [i]) for i in 0..n-1."""
    everything = np.arange(n, dtype=np.int64)
    for i in range(n):
        yield np.delete(everything, i), everything[i : i + 1]


def split_mode(n: int) -> str:
    """``"leave-one-out"`` below ``LEAVE_ONE_OUT_BELOW`` samples, else ``"per-digit"``."""
    return "leave-one-out" if n < LEAVE_ONE_OUT_BELOW else "per-digit"


# ---------------------------------------------------------------------- fine-tuning
@dataclass
class Finetuned:
    """A fine-tuned copy of a network and how it got there.

    Attributes
    ----------
    model : MLP
        The new network (the original is untouched).
    losses : ndarray of shape (steps,), float64
        Each batch's loss.
    seconds : float
        Training time.
    """

    model: MLP
    losses: np.ndarray
    seconds: float


def finetune(
    model: MLP,
    x_personal: np.ndarray,
    y_personal: np.ndarray,
    settings: FinetuneSettings,
    x_replay: np.ndarray | None = None,
    y_replay: np.ndarray | None = None,
) -> Finetuned:
    """Fine-tune a copy of ``model`` on personal samples, mixing in replayed ones.

    Parameters
    ----------
    model : MLP
        Left unchanged.
    x_personal : ndarray of shape (n, H, W), uint8
        Personal training images (augmented on the fly).
    y_personal : ndarray of shape (n,), int
    settings : FinetuneSettings
    x_replay : ndarray of shape (m, H, W), uint8, optional
        The original training images to replay; needed when ``settings.replay > 0``.
    y_replay : ndarray of shape (m,), int, optional

    Returns
    -------
    Finetuned

    Raises
    ------
    FinetuneError
        No samples, images of the wrong size, labels the network has no output for, or a
        loss that is no longer finite (then nothing is returned: try a smaller rate).
    """
    x_personal = np.asarray(x_personal)
    y_personal = np.asarray(y_personal, np.int64)
    check_fits(model, x_personal, y_personal)
    n_pool = 0 if x_replay is None else int(x_replay.shape[0])
    if x_replay is not None:
        check_fits(model, x_replay, np.asarray(y_replay), what="the replayed images")
    tuned = model.copy()
    optimizer = make_optimizer(settings.optimizer, tuned.params)
    rng = np.random.default_rng(settings.seed)
    batches = mixed_batches(
        len(y_personal), n_pool, settings.steps, settings.batch_size, settings.replay, rng
    )
    losses = np.empty(settings.steps)
    start = time.perf_counter()
    for step, (mine, replayed) in enumerate(batches):
        x, y = _batch(x_personal, y_personal, mine, x_replay, y_replay, replayed, settings, rng)
        with np.errstate(over="ignore", invalid="ignore"):
            loss, grads, _ = tuned.loss_and_gradient(tuned.prepare_inputs(x), y)
            if not math.isfinite(loss):
                raise FinetuneError(
                    f"Fine-tuning diverged at step {step + 1} (the loss is no longer a number); "
                    f"the network was kept as it was. Try a smaller learning rate than "
                    f"{settings.lr:g}."
                )
            optimizer.step(tuned.params, grads, settings.lr)
        losses[step] = loss
    tuned.release_buffers()
    return Finetuned(tuned, losses, time.perf_counter() - start)


def _batch(
    x_personal: np.ndarray,
    y_personal: np.ndarray,
    mine: np.ndarray,
    x_replay: np.ndarray | None,
    y_replay: np.ndarray | None,
    replayed: np.ndarray,
    settings: FinetuneSettings,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One batch: augmented personal images, then replayed ones as they are."""
    images = x_personal[mine]
    if settings.augment_shift or settings.augment_rotation:
        images = augment_batch(images, rng, settings.augment_shift, settings.augment_rotation)
    labels = y_personal[mine]
    if replayed.size:
        images = np.concatenate([images, x_replay[replayed]])
        labels = np.concatenate([labels, np.asarray(y_replay)[replayed]])
    return images, labels.astype(np.int64)


def check_fits(model: MLP, x: np.ndarray, y: np.ndarray, what: str = "your digits") -> None:
    """Raise FinetuneError when ``model`` cannot read ``x`` or has no output for a label.

    Parameters
    ----------
    model : MLP
    x : ndarray of shape (n, H, W)
    y : ndarray of shape (n,)
    what : str
        The images as the message names them.
    """
    if x.shape[0] == 0:
        raise FinetuneError(f"There are none of {what} yet: add some first.")
    pixels = int(np.prod(x.shape[1:]))
    if pixels != model.sizes[0]:
        raise FinetuneError(
            f"The network reads {model.sizes[0]}-pixel images, but {what} are "
            f"{'x'.join(map(str, x.shape[1:]))} ({pixels} pixels). Use a network trained on "
            "images of that size, or a set made for this one."
        )
    if y.size and int(y.max()) >= model.sizes[-1]:
        raise FinetuneError(
            f"{what[0].upper()}{what[1:]} include class {int(y.max())}, but the network has "
            f"only {model.sizes[-1]} outputs (0..{model.sizes[-1] - 1})."
        )


# ---------------------------------------------------------------------- before and after
@dataclass
class Scores:
    """A network on the held-out personal samples and on the original test set.

    ``personal_accuracy`` is NaN when nothing was held out. ``personal_pred`` has shape
    (n_held_out,) and ``personal_probs`` (n_held_out, n_classes); ``test_accuracy`` is
    None without a test set.
    """

    personal_accuracy: float
    personal_pred: np.ndarray
    personal_probs: np.ndarray
    test_accuracy: float | None


def score(
    model: MLP,
    x_held: np.ndarray,
    y_held: np.ndarray,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
) -> Scores:
    """Accuracy of ``model`` on held-out personal samples and (optionally) a test set."""
    probs = model.predict_proba(x_held) if len(y_held) else np.zeros((0, model.sizes[-1]))
    pred = probs.argmax(axis=1).astype(np.int64)
    personal = float(np.mean(pred == y_held)) if len(y_held) else float("nan")
    test = None
    if x_test is not None and y_test is not None and len(y_test):
        test = float(evaluate(model, x_test, y_test)["accuracy"])
    return Scores(personal, pred, probs.astype(np.float64), test)


@dataclass
class Outcome:
    """Before and after one fine-tuning, on the same held-out samples.

    Attributes
    ----------
    settings : FinetuneSettings
    mode : {"per-digit", "leave-one-out"}
    held_out : ndarray of shape (k,), int64
        Indices (into the personal set) of the samples scored; with leave-one-out, all.
    labels : ndarray of shape (k,), int64
        Their true labels.
    before, after : Scores
        ``after.personal_*`` come, with leave-one-out, from the fold that held each
        sample out.
    model : MLP
        The fine-tuned network to keep: trained on the training part of the split, or, with
        leave-one-out, on every sample.
    seconds : float
        Fine-tuning time, all folds included.
    """

    settings: FinetuneSettings
    mode: str
    held_out: np.ndarray
    labels: np.ndarray
    before: Scores
    after: Scores
    model: MLP
    seconds: float
    losses: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    @property
    def changed(self) -> np.ndarray:
        """Positions (into ``held_out``) whose predicted digit changed, shape (c,)."""
        return np.flatnonzero(self.before.personal_pred != self.after.personal_pred)

    def summary(self) -> dict:
        """The figures as plain JSON-able values."""
        return {
            "replay": self.settings.replay,
            "steps": self.settings.steps,
            "lr": self.settings.lr,
            "split": self.mode,
            "held_out": int(self.held_out.size),
            "personal_accuracy_before": self.before.personal_accuracy,
            "personal_accuracy_after": self.after.personal_accuracy,
            "test_accuracy_before": self.before.test_accuracy,
            "test_accuracy_after": self.after.test_accuracy,
            "changed": [
                {
                    "sample": int(self.held_out[i]),
                    "label": int(self.labels[i]),
                    "before": int(self.before.personal_pred[i]),
                    "after": int(self.after.personal_pred[i]),
                }
                for i in self.changed
            ],
            "seconds": self.seconds,
        }


def teach(
    model: MLP,
    images: np.ndarray,
    labels: np.ndarray,
    settings: FinetuneSettings,
    replay_set: tuple[np.ndarray, np.ndarray] | None = None,
    test_set: tuple[np.ndarray, np.ndarray] | None = None,
    mode: str | None = None,
    test_fraction: float = 0.3,
) -> Outcome:
    """Split the personal samples, fine-tune, and score before and after.

    Parameters
    ----------
    model : MLP
        The network to start from (never changed).
    images : ndarray of shape (n, H, W), uint8
    labels : ndarray of shape (n,), int
    settings : FinetuneSettings
    replay_set : (x, y), optional
        The original training images and labels (required when ``settings.replay > 0``).
    test_set : (x, y), optional
        The original test set, for the forgetting figure.
    mode : {"per-digit", "leave-one-out"}, optional
        ``split_mode(n)`` by default.
    test_fraction : float
        Share of each digit held out by the per-digit split.

    Returns
    -------
    Outcome
    """
    images = np.asarray(images)
    labels = np.asarray(labels, np.int64)
    check_fits(model, images, labels)
    if settings.replay > 0 and replay_set is None:
        raise FinetuneError("Replay needs the original training images; none were given.")
    if len(np.unique(labels)) < 1 or len(labels) < 2:
        raise FinetuneError("Add at least two samples: one to learn from and one to test on.")
    mode = mode or split_mode(len(labels))
    x_pool, y_pool = replay_set if replay_set is not None else (None, None)
    x_test, y_test = test_set if test_set is not None else (None, None)
    if mode == "leave-one-out":
        return _teach_leave_one_out(model, images, labels, settings, x_pool, y_pool, x_test, y_test)
    if mode != "per-digit":
        raise FinetuneError(f"unknown split {mode!r}; use 'per-digit' or 'leave-one-out'")
    train, held = per_digit_split(labels, test_fraction, np.random.default_rng(settings.seed))
    if held.size == 0:
        raise FinetuneError(
            "Every digit has a single sample, so none can be kept aside for testing. Draw at "
            "least two of some digit, or use leave-one-out."
        )
    tuned = finetune(model, images[train], labels[train], settings, x_pool, y_pool)
    return Outcome(
        settings,
        mode,
        held,
        labels[held],
        score(model, images[held], labels[held], x_test, y_test),
        score(tuned.model, images[held], labels[held], x_test, y_test),
        tuned.model,
        tuned.seconds,
        tuned.losses,
    )


def _teach_leave_one_out(
    model: MLP,
    images: np.ndarray,
    labels: np.ndarray,
    settings: FinetuneSettings,
    x_pool: np.ndarray | None,
    y_pool: np.ndarray | None,
    x_test: np.ndarray | None,
    y_test: np.ndarray | None,
) -> Outcome:
    """One fine-tune per sample, scored on that sample; the kept model learns from all."""
    n = len(labels)
    probs = np.empty((n, model.sizes[-1]))
    seconds = 0.0
    for train, held in leave_one_out(n):
        tuned = finetune(model, images[train], labels[train], settings, x_pool, y_pool)
        probs[held] = tuned.model.predict_proba(images[held])
        seconds += tuned.seconds
    final = finetune(model, images, labels, settings, x_pool, y_pool)
    seconds += final.seconds
    pred = probs.argmax(axis=1).astype(np.int64)
    test_after = None
    if x_test is not None and y_test is not None and len(y_test):
        test_after = float(evaluate(final.model, x_test, y_test)["accuracy"])
    everything = np.arange(n, dtype=np.int64)
    after = Scores(float(np.mean(pred == labels)), pred, probs, test_after)
    return Outcome(
        settings,
        "leave-one-out",
        everything,
        labels,
        score(model, images, labels, x_test, y_test),
        after,
        final.model,
        seconds,
        final.losses,
    )


def with_replay(settings: FinetuneSettings, replay: float) -> FinetuneSettings:
    """The same settings with another replay share (for a side-by-side comparison)."""
    return replace(settings, replay=replay)


def finetune_record(
    outcome: Outcome,
    *,
    name: str,
    class_names: tuple[str, ...],
    n_train: int,
    test_source: str = "the official MNIST test set (10,000 images)",
):
    """The fine-tuning as a run of the run history (``nn_core.run_record.RunRecord``).

    Its history is one "epoch" of ``settings.steps`` batches (their losses); its test
    accuracy is the original test set's after fine-tuning.

    Parameters
    ----------
    outcome : Outcome
    name : str
        For people, e.g. "run 3 fine-tuned on my digits (replay 50%)".
    class_names : tuple of str
    n_train : int
        Personal samples it learned from.
    test_source : str
    """
    from nn_core.config import TrainConfig
    from nn_core.run_record import RunRecord, now_iso

    model, s = outcome.model, outcome.settings
    config = TrainConfig(
        hidden=tuple(model.sizes[1:-1]), activation=model.activation, init=model.init,
        optimizer=s.optimizer, lr=s.lr, batch_size=s.batch_size, epochs=1, val_fraction=0.0,
        seed=s.seed, augment_shift=s.augment_shift, augment_rotation=s.augment_rotation,
        dtype=model.dtype.name,
    )  # fmt: skip
    steps = len(outcome.losses)
    nan = float("nan")
    history = {
        "batch_progress": [(k + 1) / steps for k in range(steps)],
        "batch_loss": [float(v) for v in outcome.losses],
        "batch_accuracy": [nan] * steps,
        "epoch": [1],
        "train_loss": [float(np.mean(outcome.losses)) if steps else nan],
        "train_accuracy": [nan],
        "val_loss": [nan],
        "val_accuracy": [nan],
        "learning_rate": [s.lr],
        "seconds_per_epoch": [outcome.seconds],
        "samples_per_second": [steps * s.batch_size / outcome.seconds if outcome.seconds else nan],
    }
    metrics = {
        "epochs": 1, "seconds": outcome.seconds, "n_params": int(model.n_params),
        "n_train": int(n_train), "n_val": 0,
        "final_train_loss": float(outcome.losses[-1]) if steps else None,
        "final_val_accuracy": None, "best_val_accuracy": None,
        "test_accuracy": outcome.after.test_accuracy, "test_loss": None,
        "stop_reason": None,
    }  # fmt: skip
    data = {
        "name": f"my digits + {s.replay:.0%} replay",
        "test_source": test_source,
        "image_shape": [28, 28] if model.sizes[0] == 784 else None,
    }
    return RunRecord(
        name=name, config=config, status="finished", history=history, metrics=metrics,
        data=data, model=model, class_names=tuple(class_names), created=now_iso(),
        origin="finetune",
    )  # fmt: skip
