"""Minibatch training with callbacks, stop and resume, divergence detection, early stopping.

A ``Trainer`` owns a network, its optimizer and the run's history. It advances one batch
at a time (``step``), for a time budget (``run``) or to the end (``fit``), so a command
line and a web page can drive it the same way. Training images stay uint8; each batch is
gathered and scaled on the fly, so the float copy of the data set is never made (full-batch
training too converts a cache-sized chunk at a time: ``nn_core.full_batch``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from nn_core.augment import augment_batch
from nn_core.config import TrainConfig
from nn_core.data.split import stratified_split
from nn_core.divergence import Divergence, DivergenceWatch, diagnose, layer_changes
from nn_core.full_batch import FullBatch
from nn_core.metrics import cross_entropy_from_logits
from nn_core.network import MLP, layer_views
from nn_core.optimizers import learning_rate, make_optimizer

# A callback gets the trainer and a dict of figures; returning True asks to stop.
Callback = Callable[["Trainer", dict], bool | None]

SNAPSHOT_BUDGET_BYTES = 64 * 1024**2
PROBE_ROWS = 2000  # samples the end-of-training "one answer" test looks at


@dataclass
class Callbacks:
    """Functions called after each batch and after each epoch.

    Each gets the trainer and a dict. After a batch: ``epoch`` (1-based, in progress),
    ``batch``, ``batches_per_epoch``, ``loss``, ``accuracy`` (of that batch), ``lr``,
    ``elapsed`` (training seconds of the run so far) and ``samples_per_second``. After an
    epoch: ``epoch``, ``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy``,
    ``lr``, ``seconds`` (of the epoch), ``elapsed`` and ``samples_per_second``. A callback
    that returns True asks training to stop after this batch; ``fit`` or ``run`` resume.
    """

    on_batch: Sequence[Callback] = ()
    on_epoch: Sequence[Callback] = ()


@dataclass
class History:
    """What a run measured, as plain lists (JSON-able through ``to_dict``).

    Per batch: ``batch_progress`` (epochs done, fractional), ``batch_loss``,
    ``batch_accuracy``. Per epoch: the rest; validation figures are NaN without a
    validation split, and on the epochs that ``val_every`` skips. ``seconds_per_epoch``
    counts training only, not evaluation.
    """

    batch_progress: list[float] = field(default_factory=list)
    batch_loss: list[float] = field(default_factory=list)
    batch_accuracy: list[float] = field(default_factory=list)
    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    seconds_per_epoch: list[float] = field(default_factory=list)
    samples_per_second: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, list]:
        return {name: list(values) for name, values in self.__dict__.items()}


class Trainer:
    """Train an ``MLP`` on labelled images.

    Parameters
    ----------
    config : TrainConfig
    x_train : ndarray of shape (n_samples, H, W) or (n_samples, n_features)
        Training inputs, usually uint8 pixels (scaled by 1/255 in the network). A part
        of it, stratified by class, is held out for validation (``config.val_fraction``).
    y_train : ndarray of shape (n_samples,)
        Integer labels in ``0 .. n_classes - 1``.
    n_classes : int, optional
        Defaults to ``y_train.max() + 1``.
    callbacks : Callbacks, optional
    model : MLP, optional
        Start from this network instead of a new one built from ``config``.
    input_scale : float
        Passed to a new network: 1/255 for pixels, 1.0 for inputs already scaled.

    Attributes
    ----------
    stop_reason : str or None
        Why training halted before its target (divergence, early stopping), in plain words.
    divergence : Divergence or None
        Set when the run diverged (``nn_core.divergence``): where, why, and the fix.
    snapshots : dict of int to ndarray of shape (n_inputs, sizes[1]), float32
        The first layer's weights at the end of epochs (0: the start), thinned to fit
        ``SNAPSHOT_BUDGET_BYTES``.
    """

    def __init__(
        self,
        config: TrainConfig,
        x_train: np.ndarray,
        y_train: np.ndarray,
        n_classes: int | None = None,
        callbacks: Callbacks | None = None,
        model: MLP | None = None,
        input_scale: float = 1.0 / 255.0,
    ) -> None:
        self.config = config
        self.callbacks = callbacks or Callbacks()
        y_train = np.asarray(y_train, dtype=np.int64)
        if x_train.shape[0] != y_train.shape[0] or x_train.shape[0] < 2:
            raise ValueError(
                f"need at least 2 samples and one label per sample, got "
                f"{x_train.shape[0]} inputs and {y_train.shape[0]} labels"
            )
        self.n_classes = int(n_classes if n_classes is not None else y_train.max() + 1)
        self.x = x_train.reshape(x_train.shape[0], -1)
        self.image_shape = x_train.shape[1:] if x_train.ndim == 3 else None
        seeds = np.random.SeedSequence(config.seed).spawn(4)
        self._split_rng, self._shuffle_rng, self._dropout_rng, self._augment_rng = (
            np.random.default_rng(s) for s in seeds
        )
        self.train_idx, val_idx = stratified_split(y_train, config.val_fraction, self._split_rng)
        self.y = y_train
        self.x_val, self.y_val = self.x[val_idx], y_train[val_idx]
        self.model = model or MLP(
            self.x.shape[1],
            config.hidden,
            self.n_classes,
            activation=config.activation,
            init=config.init,
            dtype=config.dtype,
            seed=config.seed,
            input_scale=input_scale,
        )
        self.optimizer = make_optimizer(
            config.optimizer, self.model.params, config.momentum, config.nesterov
        )
        self.history = History()
        self.epochs_done = 0
        self.target_epochs = config.epochs
        self.stop_reason: str | None = None
        self.divergence: Divergence | None = None
        self._watch = DivergenceWatch(self.n_classes, self.model.weights)
        self.snapshots: dict[int, np.ndarray] = {0: self._first_layer_copy()}
        self._stop_requested = False
        self._position = 0
        self._order: np.ndarray | None = None
        self._epoch_sums = np.zeros(3)  # loss * n, correct, n
        self._epoch_seconds = 0.0
        self.seconds_trained = 0.0  # training time of the whole run, evaluation excluded
        self._good_state = self._capture_state()  # the weights a divergence goes back to
        self._good_epoch = 0
        self._best: tuple[float, int, dict] | None = None  # val loss, epoch, state
        self._full_batch: FullBatch | None = None  # the training rows, chunk by chunk
        self._val_batch: FullBatch | None = None  # the validation rows, for full batch
        batch = self.batch_size
        self._batch_u8 = np.empty((batch, self.x.shape[1]), self.x.dtype)
        self._batch_x = np.empty((batch, self.x.shape[1]), self.model.dtype)

    # ---------------------------------------------------------------- properties
    @property
    def n_train(self) -> int:
        return self.train_idx.shape[0]

    @property
    def batch_size(self) -> int:
        size = self.config.batch_size
        return self.n_train if size == 0 else min(size, self.n_train)

    @property
    def batches_per_epoch(self) -> int:
        return -(-self.n_train // self.batch_size)

    @property
    def progress(self) -> float:
        """Epochs done, fractional within the current epoch."""
        return self.epochs_done + self._position / self.n_train

    @property
    def batch_in_epoch(self) -> int:
        """Batches done of the epoch in progress (0 between epochs).

        Read ``epochs_done`` first, then this: an epoch's end resets this before it counts
        the epoch, so the pair read from another thread is never ahead of the training.
        """
        return -(-self._position // self.batch_size)

    @property
    def finished(self) -> bool:
        """True when the target epochs are done or training was halted (diverged, early stop)."""
        return self.epochs_done >= self.target_epochs or self.stop_reason is not None

    # ---------------------------------------------------------------- control
    def request_stop(self) -> None:
        """Ask a running ``run``/``fit`` to return after the current batch (thread-safe)."""
        self._stop_requested = True

    def extend(self, epochs: int) -> None:
        """Plan ``epochs`` more epochs after those already planned (Continue)."""
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        self.target_epochs = max(self.target_epochs, self.epochs_done) + epochs
        self.stop_reason = None
        self.divergence = None

    def fit(self, epochs: int | None = None) -> History:
        """Train to the target (or ``epochs`` more), unless stopped; return the history."""
        if epochs is not None:
            self.extend(epochs)
        self.run()
        return self.history

    def run(self, max_seconds: float | None = None, max_batches: int | None = None) -> int:
        """Train until finished, stopped, or a budget is spent; return batches done."""
        self._stop_requested = False
        deadline = None if max_seconds is None else time.perf_counter() + max_seconds
        done = 0
        while not self.finished and not self._stop_requested:
            if max_batches is not None and done >= max_batches:
                break
            if deadline is not None and time.perf_counter() >= deadline:
                break
            self.step()
            done += 1
        if self.finished:
            self.release_memory()
        return done

    def release_memory(self) -> None:
        """Drop the caches that only speed up further training (full-batch chunk buffers,
        the network's work buffers); training can resume and rebuilds them."""
        self._full_batch = None
        self._val_batch = None
        self.model.release_buffers()

    def release_optimizer_state(self) -> None:
        """Drop a finished run's optimizer state (momentum, Adam's moments) and its copy
        kept for a rollback: a shared server keeps only what the pages show. Training on
        (Continue) starts the optimizer afresh, as a new one would; its zeroed arrays take
        no memory until written."""
        self.optimizer = make_optimizer(
            self.config.optimizer, self.model.params, self.config.momentum, self.config.nesterov
        )
        rollback = {f"opt_{key}": value for key, value in self.optimizer.state.items()}
        self._good_state = {"params": self._good_state["params"], **rollback}

    def step(self) -> dict | None:
        """Train on one batch; return its figures, or None if training is finished."""
        if self.finished:
            return None
        start = time.perf_counter()
        if self._position == 0:
            self._order = self._epoch_order()
        idx = self._order[self._position : self._position + self.batch_size]
        lr = self._current_lr()
        n = idx.shape[0]
        batch = self._position // self.batch_size + 1
        # Overflows are expected when a run diverges: the loss test below catches them.
        with np.errstate(over="ignore", invalid="ignore"):
            loss, grads, correct = self._loss_and_gradient(idx)
            if self._watch.loss_diverged(loss, n, self.epochs_done + 1, batch):
                self._halt_diverged("loss", loss, batch)
                return None
            if self._position == 0 and self._watch.rising_since is None:
                self._keep_good_state()
            self.optimizer.step(self.model.params, grads, lr)
        self._epoch_sums += (loss * n, correct, n)
        self._position += n
        seconds = time.perf_counter() - start
        self._epoch_seconds += seconds
        self.seconds_trained += seconds
        info = self._record_batch(loss, correct / n, lr, n / seconds)
        if self._position >= self.n_train:
            self._end_epoch(lr)
        return info

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """Mean cross-entropy and accuracy of the current network on (x, y).

        Parameters
        ----------
        x : ndarray of shape (n_samples, H, W) or (n_samples, n_inputs)
            Raw inputs, like ``x_train``.
        y : ndarray of shape (n_samples,)
        """
        if x.shape[0] == 0:
            return float("nan"), float("nan")
        return _loss_and_accuracy(self.model.logits(x), y)

    def _evaluate_validation(self) -> tuple[float, float]:
        if self._full_batch is None or self.y_val.shape[0] == 0:
            return self.evaluate(self.x_val, self.y_val)
        # Full batch: an epoch is a single step, so validation runs as often as training;
        # it goes through the same chunked, threaded path.
        if self._val_batch is None:
            self._val_batch = FullBatch(self.model, self.x_val, np.arange(self.y_val.shape[0]))
        return _loss_and_accuracy(self._val_batch.logits(), self.y_val)

    # ---------------------------------------------------------------- internals
    def _epoch_order(self) -> np.ndarray:
        if self.batch_size >= self.n_train:
            return self.train_idx
        return self._shuffle_rng.permutation(self.train_idx)

    def _loss_and_gradient(self, idx: np.ndarray):
        """``MLP.loss_and_gradient`` of the batch of rows ``idx`` (a ``BatchGradient``)."""
        c = self.config
        if idx.shape[0] == self.n_train and not self.config.augments:
            if self._full_batch is None:
                self._full_batch = FullBatch(self.model, self.x, idx, self.y[idx], compact=True)
            return self._full_batch.loss_and_gradient(c.l2, c.dropout, self._dropout_rng)
        x, y = self._load_batch(idx)
        return self.model.loss_and_gradient(x, y, c.l2, c.dropout, self._dropout_rng)

    def _load_batch(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, n = self.config, idx.shape[0]
        # The indices are the Trainer's own, all valid: mode="clip" skips the bounds
        # check, which with ``out`` gathers through a temporary copy (2x slower).
        raw = np.take(self.x, idx, axis=0, out=self._batch_u8[:n], mode="clip")
        if self.config.augments:
            if self.image_shape is None:
                raise ValueError("augmentation needs image-shaped inputs (n, H, W)")
            images = augment_batch(
                raw.reshape(n, *self.image_shape),
                self._augment_rng,
                c.augment_shift,
                c.augment_rotation,
                c.augment_elastic,
                c.augment_elastic_sigma,
            )
            raw = images.reshape(n, -1)
        return self.model.scale_inputs(raw, self._batch_x[:n]), self.y[idx]

    def _current_lr(self) -> float:
        c = self.config
        return learning_rate(
            c.schedule, c.lr, self.progress, self.target_epochs, c.step_epochs, c.gamma
        )

    def _record_batch(self, loss: float, acc: float, lr: float, samples_per_second: float) -> dict:
        h = self.history
        h.batch_progress.append(self.progress)
        h.batch_loss.append(loss)
        h.batch_accuracy.append(acc)
        info = {
            "epoch": self.epochs_done + 1,
            "batch": -(-self._position // self.batch_size),
            "batches_per_epoch": self.batches_per_epoch,
            "loss": loss,
            "accuracy": acc,
            "lr": lr,
            "elapsed": self.seconds_trained,
            "samples_per_second": samples_per_second,
        }
        self._notify(self.callbacks.on_batch, info)
        return info

    def _end_epoch(self, lr: float) -> None:
        loss_sum, correct, n = self._epoch_sums
        if self._watch.weights_exploded(self.model.params, self.model.weights):
            self._halt_diverged("weights", loss_sum / n, batch=0)
            return
        self._position = 0  # before counting the epoch (see batch_in_epoch)
        self.epochs_done += 1
        val_loss, val_acc = float("nan"), float("nan")
        if self._validates_now():
            val_loss, val_acc = self._evaluate_validation()
        seconds = self._epoch_seconds
        h = self.history
        h.epoch.append(self.epochs_done)
        h.train_loss.append(loss_sum / n)
        h.train_accuracy.append(correct / n)
        h.val_loss.append(val_loss)
        h.val_accuracy.append(val_acc)
        h.learning_rate.append(lr)
        h.seconds_per_epoch.append(seconds)
        h.samples_per_second.append(n / seconds if seconds > 0 else float("inf"))
        self._epoch_sums[:] = 0
        self._epoch_seconds = 0.0
        self._keep_snapshot()
        if math.isfinite(val_loss):
            self._check_early_stopping(val_loss)
        if self.epochs_done >= self.target_epochs and self.stop_reason is None:
            self._check_one_answer()
        info = {
            "epoch": self.epochs_done,
            "train_loss": h.train_loss[-1],
            "train_accuracy": h.train_accuracy[-1],
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "lr": lr,
            "seconds": seconds,
            "elapsed": self.seconds_trained,
            "samples_per_second": h.samples_per_second[-1],
        }
        self._notify(self.callbacks.on_epoch, info)

    def _validates_now(self) -> bool:
        """Validate after every ``val_every``-th epoch and after the last one."""
        every = self.config.val_every
        return self.epochs_done % every == 0 or self.epochs_done >= self.target_epochs

    def _notify(self, callbacks: Sequence[Callback], info: dict) -> None:
        for callback in callbacks:
            if callback(self, info):
                self._stop_requested = True

    def _capture_state(self) -> dict:
        state = {"params": self.model.params.copy()}
        for key, value in self.optimizer.state.items():
            state[f"opt_{key}"] = value.copy()
        return state

    def _restore_state(self, state: dict) -> None:
        self.model.params[...] = state["params"]
        for key, value in self.optimizer.state.items():
            value[...] = state[f"opt_{key}"]

    def _halt_diverged(
        self,
        sign: str,
        loss: float,
        batch: int,
        one_answer: tuple[int, float, float] | None = None,
    ) -> None:
        """Stop as diverged; put back the last good weights unless the run is over anyway
        (the "one answer" test runs after the last epoch, whose weights are kept)."""
        epoch = self.epochs_done + (0 if sign == "one answer" else 1)
        layer, change = self._where_it_shows(sign)
        kept = None if sign == "one answer" else self._put_back_good_state()
        self.divergence = diagnose(
            sign,
            optimizer=self.config.optimizer,
            lr=self.config.lr,
            epoch=epoch,
            batch=batch,
            started=self._watch.rising_since or (epoch, batch),
            start_loss=self._watch.start_loss or float("nan"),
            loss=loss,
            layer=layer,
            layer_change=change,
            kept_epoch=kept,
            one_answer=one_answer,
        )
        self.stop_reason = self.divergence.message

    def _where_it_shows(self, sign: str) -> tuple[int, float]:
        """The layer (1-based) whose weights changed most relative to their size since the
        good state (for "one answer": grew most since the start), and that ratio."""
        if sign == "one answer":
            changes = self._watch.growth(self.model.weights)
        else:
            good_weights = layer_views(self._good_state["params"], self.model.sizes)[0]
            changes = layer_changes(self.model.weights, good_weights)
        layer = int(np.argmax(changes))
        return layer + 1, changes[layer]

    def _put_back_good_state(self) -> int:
        """Restore the last good weights, drop the epoch in progress; return their epoch."""
        self._restore_state(self._good_state)
        self._position = 0
        self._epoch_sums[:] = 0
        self._epoch_seconds = 0.0
        self._watch.restart_smoothing()
        return self._good_epoch

    def _keep_good_state(self) -> None:
        """Remember the weights an epoch starts from, once its first loss shows them sound
        (the weights at the end of an epoch can be the ones that blew up)."""
        self._good_state = self._capture_state()
        self._good_epoch = self.epochs_done

    def _check_one_answer(self) -> None:
        """After the last planned epoch: diverged if one answer for everything, at chance."""
        x, y = self._probe()
        with np.errstate(over="ignore", invalid="ignore"):
            predictions = self.model.logits(x).argmax(axis=1)
        seen = self._watch.one_answer(predictions, y)
        if seen is not None:
            self._halt_diverged("one answer", self.history.train_loss[-1], 0, seen)

    def _probe(self) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``PROBE_ROWS`` validation samples (training samples without a validation
        split), spread evenly over the set."""
        if self.y_val.shape[0]:
            every = max(1, self.y_val.shape[0] // PROBE_ROWS)
            return self.x_val[::every], self.y_val[::every]
        every = max(1, self.n_train // PROBE_ROWS)
        rows = self.train_idx[::every]  # not the whole training set: a copy of it is large
        return self.x[rows], self.y[rows]

    def _check_early_stopping(self, val_loss: float) -> None:
        patience = self.config.early_stopping
        if not patience:
            return
        if self._best is None or val_loss < self._best[0]:
            self._best = (val_loss, self.epochs_done, self._capture_state())
            return
        best_loss, best_epoch, best_state = self._best
        if self.epochs_done - best_epoch >= patience:
            self._restore_state(best_state)
            self.stop_reason = (
                f"Early stopping: the validation loss has not improved for {patience} "
                f"epochs; the weights of epoch {best_epoch} (best validation loss "
                f"{best_loss:.4f}) were restored."
            )

    def _first_layer_copy(self) -> np.ndarray:
        # float32, not float16: float16 overflows past 65504, and a diverging run's
        # weights pass that before they stop being finite.
        return self.model.weights[0].astype(np.float32)

    def _keep_snapshot(self) -> None:
        self.snapshots[self.epochs_done] = self._first_layer_copy()
        size = next(iter(self.snapshots.values())).nbytes
        if size * len(self.snapshots) > SNAPSHOT_BUDGET_BYTES:
            # Thin out: keep the first, the last, and every other one between.
            epochs = sorted(self.snapshots)
            for epoch in epochs[1:-1:2]:
                del self.snapshots[epoch]

    def summary(self) -> dict:
        """The run in a few figures (for a saved model's metadata)."""
        h = self.history
        return {
            "epochs": self.epochs_done,
            "train_samples": int(self.n_train),
            "val_samples": int(self.y_val.shape[0]),
            "final_train_loss": h.train_loss[-1] if h.train_loss else None,
            "final_val_accuracy": _last_finite(h.val_accuracy),
            "seconds": float(sum(h.seconds_per_epoch)),
            "stop_reason": self.stop_reason,
        }


def _last_finite(values: list[float]) -> float | None:
    """The last finite value of a per-epoch list (epochs that did not validate are NaN)."""
    return next((v for v in reversed(values) if math.isfinite(v)), None)


def _loss_and_accuracy(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy (log-sum-exp: right for however confident a mistake) and accuracy
    of logits of shape (n, classes) against y."""
    loss = float(np.mean(cross_entropy_from_logits(logits, y)))
    return loss, float(np.mean(logits.argmax(axis=1) == y))
