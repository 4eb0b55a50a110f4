"""Training in the background, one ``TrainingRun`` per browser session.

The run owns a ``Trainer`` and a thread that calls ``trainer.run(max_seconds=...)`` in
short chunks until the run is finished, stopped, or its time cap is spent. The thread
never calls Streamlit and never touches ``st.session_state``: it only writes this
object's attributes, which the page reads on its reruns.

A server-wide ``TrainingGate`` caps how many runs train at once (Start, Continue and
Step alike); the others wait in a first-come queue of bounded length and see their place
in it. Before a run is built, its memory is reserved in the server's ledger
(``ui.hosting``, ``nn_core.memory``): work that would not fit is refused in one sentence.
The session watch (``ui.hosting``) stops the runs of tabs that have gone.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import streamlit as st

from nn_core import TrainConfig, Trainer
from nn_core.health import TrainingWatch, watch_training
from nn_core.hidden_space import SNAPSHOT_BUDGET_BYTES as WATCH_BUDGET_BYTES
from nn_core.memory import (
    MemoryBudgetError,
    MemoryEstimate,
    advice,
    dataset_memory,
    training_memory,
)
from nn_core.metrics import evaluate
from nn_core.network import n_parameters
from ui import data as data_ui
from ui import hosting, run_history
from ui import state as keys
from ui.blas_threads import BlasThreads, ThreadProbe
from ui.models import model_bytes

CHUNK_SECONDS = 0.25
_run_ids = itertools.count(1)


class TrainingGate:
    """At most ``capacity`` trainings at once; up to ``max_waiting`` others queue in order.

    A token is first ``enqueue``d (refused when the line is full and no slot is free), then
    its thread blocks in ``acquire`` until it is first in line and a slot is free.
    ``blas``, when given, is told each time the set of running tokens changes (the
    server's BLAS thread count follows the number of trainings).
    """

    def __init__(self, capacity: int, max_waiting: int = 4, blas: BlasThreads | None = None):
        self.capacity = max(1, int(capacity))
        self.max_waiting = max(0, int(max_waiting))
        self.blas = blas
        self._cond = threading.Condition()
        self._queue: deque[int] = deque()
        self._active: set[int] = set()

    def _active_changed(self) -> None:
        if self.blas is not None:
            self.blas.follow(self._active)

    def enqueue(self, token: int) -> bool:
        """Join the line; False (nothing changed) when it is full and no slot is free."""
        with self._cond:
            free = len(self._active) + len(self._queue) < self.capacity
            if not free and len(self._queue) >= self.max_waiting:
                return False
            self._queue.append(token)
            return True

    def acquire(self, token: int, should_abort) -> bool:
        """Block until ``token`` may train (True) or ``should_abort()`` says give up (False).

        A token that was not enqueued joins the line first, whatever its length.
        """
        with self._cond:
            if token not in self._queue:
                self._queue.append(token)
            try:
                while True:
                    if should_abort():
                        return False
                    if self._queue[0] == token and len(self._active) < self.capacity:
                        self._active.add(token)
                        self._active_changed()
                        return True
                    self._cond.wait(timeout=0.1)
            finally:
                self._queue.remove(token)
                self._cond.notify_all()

    def release(self, token: int) -> None:
        with self._cond:
            self._active.discard(token)
            self._active_changed()
            self._cond.notify_all()

    def position(self, token: int) -> int:
        """Trainings ahead of ``token`` (running ones and those queued before it)."""
        with self._cond:
            if token not in self._queue:
                return 0
            return len(self._active) + list(self._queue).index(token)

    def has_room(self) -> bool:
        """True when a new token would be accepted now (a free slot or room in the line)."""
        with self._cond:
            free = len(self._active) + len(self._queue) < self.capacity
            return free or len(self._queue) < self.max_waiting

    def place(self, token: int) -> tuple[int, int]:
        """``(n, waiting)``: ``token`` is n-th (1-based) of ``waiting`` in line; (0, waiting)
        when it is not waiting."""
        with self._cond:
            waiting = len(self._queue)
            if token not in self._queue:
                return 0, waiting
            return list(self._queue).index(token) + 1, waiting

    @property
    def active(self) -> int:
        with self._cond:
            return len(self._active)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def busy_message(self) -> str:
        return (
            f"The server is busy: {self.active} trainings are running and {self.waiting} are "
            f"waiting, as many as its queue holds (DIGITLAB_MAX_QUEUE). Try again in a minute."
        )


@dataclass
class HistoryView:
    """A consistent copy of the trainer's history lists (taken while it may grow)."""

    batch_progress: np.ndarray
    batch_loss: np.ndarray
    batch_accuracy: np.ndarray
    epoch: np.ndarray
    train_loss: np.ndarray
    train_accuracy: np.ndarray
    val_loss: np.ndarray
    val_accuracy: np.ndarray
    learning_rate: np.ndarray
    samples_per_second: np.ndarray


def history_view(history) -> HistoryView:
    """Copy lengths first, then slice, so a list appended by the thread stays consistent."""
    nb = min(len(history.batch_loss), len(history.batch_progress), len(history.batch_accuracy))
    ne = min(
        len(history.epoch),
        len(history.train_loss),
        len(history.train_accuracy),
        len(history.val_loss),
        len(history.val_accuracy),
        len(history.learning_rate),
        len(history.samples_per_second),
    )

    def arr(values, n):
        return np.asarray(values[:n], dtype=np.float64)

    return HistoryView(
        batch_progress=arr(history.batch_progress, nb),
        batch_loss=arr(history.batch_loss, nb),
        batch_accuracy=arr(history.batch_accuracy, nb),
        epoch=arr(history.epoch, ne),
        train_loss=arr(history.train_loss, ne),
        train_accuracy=arr(history.train_accuracy, ne),
        val_loss=arr(history.val_loss, ne),
        val_accuracy=arr(history.val_accuracy, ne),
        learning_rate=arr(history.learning_rate, ne),
        samples_per_second=arr(history.samples_per_second, ne),
    )


class TrainingRun:
    """One training of one session: the trainer, its thread, and what the UI shows of it.

    Parameters
    ----------
    config : TrainConfig
    dataset : nn_core.data.Dataset
        Already reduced to the training subset; its test part is used for evaluation.
    gate : TrainingGate
        The server-wide concurrency cap.
    max_seconds : float
        Training time allowed per Start / Continue.
    settings : dict
        What the sidebar showed (for display and the metrics file).
    owner : str
        The browser session the run belongs to (``ui.hosting.session_id()``).
    estimate : MemoryEstimate, optional
        What the run needs while it trains (reserved again on every Continue and Step).
    data_bytes : int
        Bytes of data this run holds alone (a subset copy; 0 for shared data).
    on_idle : callable, optional
        Called with the run from its thread each time it stops training.
    """

    def __init__(
        self,
        config: TrainConfig,
        dataset,
        gate: TrainingGate,
        max_seconds: float,
        settings: dict | None = None,
        owner: str = "local",
        estimate: MemoryEstimate | None = None,
        data_bytes: int = 0,
        on_idle=None,
    ) -> None:
        self.id = next(_run_ids)
        self.owner = owner
        self.estimate = estimate
        self.data_bytes = int(data_bytes)
        self._on_idle = on_idle
        self.disposed = False
        self.turned_away = False  # the last start found the queue full
        self.config = config
        self.dataset = dataset
        self.settings = dict(settings or {})
        self.gate = gate
        self.max_seconds = float(max_seconds)
        self.trainer = Trainer(
            config, dataset.x_train, dataset.y_train, n_classes=dataset.n_classes
        )
        # Health records and per-epoch weights for the Network page (~3% of training time).
        self.watch: TrainingWatch | None = watch_training(self.trainer)
        self.state = "idle"  # idle | queued | running
        self.message: str | None = None  # why the last chunk of training ended early
        self.error: str | None = None
        self.seconds_trained = 0.0
        self._stop = False
        self._stop_message: str | None = None
        self._max_batches: int | None = None
        self._thread: threading.Thread | None = None
        self._token = 0
        self._rate_batches = 0
        self._rate_seconds = 0.0
        self._eval_key: tuple | None = None
        self._model_file: tuple[bytes, tuple, float, float] | None = None
        self._eval: dict | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ status
    @property
    def active(self) -> bool:
        """True while queued or training (the thread is alive)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def finished(self) -> bool:
        return self.trainer.finished

    @property
    def model(self):
        return self.trainer.model

    @property
    def queue_position(self) -> int:
        return self.gate.position(self._token) if self.state == "queued" else 0

    @property
    def queue_place(self) -> tuple[int, int]:
        """``(n, waiting)``: this run is n-th of ``waiting`` runs queued (0 when not queued)."""
        return self.gate.place(self._token) if self.state == "queued" else (0, self.gate.waiting)

    def model_file(self) -> tuple[bytes, float]:
        """The network as a digitlab ``.npz`` and the epoch it was saved at; remade when the
        run has moved on, but at most every ``DOWNLOAD_REFRESH_SECONDS`` while it trains."""
        t = self.trainer
        state = (t.epochs_done, len(t.history.batch_loss))
        cached = self._model_file
        if cached is not None:
            fresh = cached[1] == state
            recent = self.active and time.monotonic() - cached[2] < DOWNLOAD_REFRESH_SECONDS
            if fresh or recent:
                return cached[0], cached[3]
        epoch = t.progress
        data = model_bytes(self)
        self._model_file = (data, state, time.monotonic(), epoch)
        return data, epoch

    def held_bytes(self) -> int:
        """Bytes of the arrays this run keeps between trainings (weights, optimizer state,
        snapshots, validation images, its own data, the cached evaluation)."""
        t = self.trainer
        if t is None:
            return 0
        arrays = [t.model.params, t.model.grads, t.x_val]
        if not t.finished:  # a finished run's optimizer state is fresh, untouched zeros
            arrays += list(t.optimizer.state.values())
        arrays += list(t.snapshots.values())
        if self._eval is not None:
            arrays += [v for v in self._eval.values() if isinstance(v, np.ndarray)]
        held = self.data_bytes + (self.watch.nbytes if self.watch is not None else 0)
        held += len(self._model_file[0]) if self._model_file is not None else 0
        return held + sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))

    def batches_per_second(self) -> float | None:
        if self._rate_seconds <= 0 or self._rate_batches == 0:
            return None
        return self._rate_batches / self._rate_seconds

    def progress(self) -> dict:
        """Figures for the progress panel, from one reading of where the trainer is.

        ``epoch`` and ``batch`` are the epoch in progress and its batches done, or, between
        epochs, the last finished epoch and its last batch (a finished run reads "epoch 10
        of 10, batch 422 of 422", never "batch 0"); ``epoch`` is 0 before the first batch.
        """
        t = self.trainer
        epochs_done = t.epochs_done  # first: see Trainer.batch_in_epoch
        in_epoch = t.batch_in_epoch
        bpe, target = t.batches_per_epoch, t.target_epochs
        if in_epoch:
            epoch, batch = epochs_done + 1, in_epoch
        else:
            epoch, batch = epochs_done, (bpe if epochs_done else 0)
        batches_done = epochs_done * bpe + in_epoch
        rate = self.batches_per_second()
        left = None
        if rate and not t.finished:
            left = max(0.0, (target * bpe - batches_done) / rate)
        return {
            "epochs_done": epochs_done,
            "target_epochs": target,
            "epoch": epoch,
            "batch": batch,
            "batches_per_epoch": bpe,
            "batches_done": len(t.history.batch_loss),
            "fraction": min(1.0, batches_done / max(target * bpe, 1)),
            "batches_per_second": rate,
            "samples_per_second": rate * t.batch_size if rate else None,
            "seconds_left": left,
            "seconds_trained": self.seconds_trained,
            "diverged": t.divergence is not None,
            "diverged_at": (t.divergence.epoch, t.divergence.batch) if t.divergence else None,
        }

    # ------------------------------------------------------------------ control
    def start(self, max_batches: int | None = None) -> bool:
        """Train in the background until finished, stopped or time-capped (or for
        ``max_batches`` batches). False when already active, finished, or the queue is full
        (``message`` then says so)."""
        if self.active or self.disposed or (self.finished and max_batches is None):
            return False
        token = next(_run_ids) * 1000 + self.id
        self.turned_away = not self.gate.enqueue(token)
        if self.turned_away:
            self.message = self.gate.busy_message()
            return False
        if self.finished:  # a Step after the end trains one more epoch's first batch
            self.trainer.extend(1)
        self._stop = False
        self._stop_message = None
        self._max_batches = max_batches
        self.message = None
        self.error = None
        self._token = token
        self.state = "queued"
        self._thread = threading.Thread(
            target=self._work, name=f"digitlab-run-{self.id}", daemon=True
        )
        self._thread.start()
        return True

    def stop(self, wait: float = 2.0) -> None:
        """Stop after the current batch and keep the model trained so far."""
        self._stop = True
        if self.trainer is not None:
            self.trainer.request_stop()
        thread = self._thread
        if thread is not None and thread.is_alive() and wait:
            thread.join(timeout=wait)

    def step(self, wait: float = 10.0) -> bool:
        """Train on one batch, through the gate like any training: at once when a slot is
        free (waiting up to ``wait`` s for it to end), else queued in the background."""
        if not self.start(max_batches=1):
            return False
        thread = self._thread
        deadline = time.monotonic() + wait
        while thread.is_alive() and time.monotonic() < deadline:
            thread.join(timeout=0.05)
            if self.state == "queued":
                break  # it will run when its turn comes; the page shows the queue
        return True

    def abandon(self, message: str) -> None:
        """Stop because nobody is watching: a queued run leaves the line, a running one
        stops after its batch. ``message`` is what the tab shows if it comes back."""
        self._stop_message = message
        self.stop(wait=0)

    def compact(self) -> int:
        """Free what a tab that has gone can do without (cached evaluation and model file,
        the weight snapshots between the first and the last); return the bytes freed. The
        run stays whole: a tab that comes back sees it and can train on."""
        if self.disposed or self.active:
            return 0
        before = self.held_bytes()
        with self._lock:
            self._eval, self._eval_key = None, None
        self._model_file = None
        snapshots = self.trainer.snapshots
        for epoch in sorted(snapshots)[1:-1]:
            del snapshots[epoch]
        self._idle()
        return before - self.held_bytes()

    def dispose(self) -> int:
        """Drop the large objects of a run whose session cannot come back; return the bytes
        it held. The run is unusable afterwards."""
        self.abandon("This run was closed.")
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5.0)
        held = self.held_bytes()
        self.disposed = True
        self.trainer = None
        self.watch = None
        self.dataset = None
        self._eval = None
        self._model_file = None
        return held

    def extend(self, epochs: int) -> None:
        """Plan more epochs (Continue after the run finished)."""
        self.trainer.extend(int(epochs))

    # ------------------------------------------------------------------ thread
    def _work(self) -> None:
        hosting.lower_thread_priority(keys.get_limits().training_nice)
        token = self._token
        if not self.gate.acquire(token, lambda: self._stop):
            self.state = "idle"
            self.message = self._stop_message or "Stopped while waiting in the queue."
            self._idle()
            return
        try:
            self.state = "running"
            if self._max_batches is not None:
                t0 = time.perf_counter()
                done = self.trainer.run(max_batches=self._max_batches)
                self._note_rate(done, time.perf_counter() - t0)
                return
            budget_start = self.seconds_trained
            threads = _ChunkThreads(self.gate.blas, token)
            while not self._stop and not self.trainer.finished:
                spent = self.seconds_trained - budget_start
                if spent >= self.max_seconds:
                    self.message = (
                        f"Paused after {self.max_seconds:g} s of training, the cap per run "
                        "on this server. Press Continue to train on."
                    )
                    break
                chunk = min(CHUNK_SECONDS, self.max_seconds - spent)
                threads.before()
                t0 = time.perf_counter()
                done = self.trainer.run(max_seconds=chunk)
                elapsed = time.perf_counter() - t0
                threads.after(done, elapsed)
                self.seconds_trained += elapsed
                self._note_rate(done, elapsed)
                if done == 0 and not self.trainer.finished and not self._stop:
                    break  # a stop request from a callback
        except Exception as exc:  # shown to the user; the model so far is kept
            self.error = f"Training failed: {type(exc).__name__}: {exc}"
        finally:
            self.trainer.release_memory()  # a paused run keeps no full-batch float copies
            if self.trainer.finished:  # a finished one keeps no optimizer state either
                self.trainer.release_optimizer_state()
            self.gate.release(token)
            self.state = "idle"
            if self.trainer.stop_reason:
                self.message = self.trainer.stop_reason
            elif self._stop_message:
                self.message = self._stop_message
            self._idle()

    def _idle(self) -> None:
        if self._on_idle is not None:
            try:
                self._on_idle(self)
            except Exception:  # bookkeeping must never break the run
                hosting.LOG.exception("on_idle of run %s failed", self.id)

    def _note_rate(self, batches: int, seconds: float) -> None:
        # An exponential average over about the last ten seconds.
        if seconds <= 0:
            return
        decay = 0.5 ** (seconds / 10.0)
        self._rate_batches = self._rate_batches * decay + batches
        self._rate_seconds = self._rate_seconds * decay + seconds

    # ------------------------------------------------------------------ results
    def history(self) -> HistoryView:
        return history_view(self.trainer.history)

    def snapshots(self) -> dict[int, np.ndarray]:
        return dict(self.trainer.snapshots)

    def evaluation(self) -> dict:
        """Test-set predictions of the current weights, cached per epoch (or batch when idle).

        Computed on a copy of the model so the training thread is never disturbed.
        """
        t = self.trainer
        key = (t.epochs_done, None if self.active else len(t.history.batch_loss))
        with self._lock:
            if self._eval_key != key or self._eval is None:
                self._eval = evaluate_model(
                    t.model.copy(), self.dataset.x_test, self.dataset.y_test, self.dataset.n_classes
                )
                self._eval_key = key
            return self._eval


def evaluate_model(model, x_test: np.ndarray, y_test: np.ndarray, n_classes: int) -> dict:
    """Probabilities, predictions, confusion matrix, per-class scores, accuracy and loss on
    a test set (``nn_core.metrics.evaluate``)."""
    return evaluate(model, x_test, y_test, n_classes)


class _ChunkThreads:
    """A run's say in the BLAS thread count, chunk by chunk (``ui.blas_threads``): when
    its share of the cores is several threads, it times one thread against several and
    asks for several while they are faster. Does nothing without a policy."""

    def __init__(self, blas: BlasThreads | None, token: int) -> None:
        self.blas = blas
        self.token = token
        self.probe = ThreadProbe()
        self._several: bool | None = None  # what the chunk in progress runs on

    def before(self) -> None:
        blas = self.blas
        if blas is None or blas.fixed or blas.shared() <= 1:
            self._several = None
            if blas is not None:
                blas.ask_several(self.token, False)
            return
        several = not self.probe.want_single(time.monotonic())
        self._several = blas.ask_several(self.token, several) > 1

    def after(self, batches: int, seconds: float) -> None:
        if self._several is None:
            return
        now_several = self.blas.wanted() > 1
        if now_several == self._several:  # not when another run came or went meanwhile
            self.probe.record(self._several, batches, seconds, time.monotonic())


# OpenBLAS's thread count is one per process, so is the policy that sets it.
_BLAS = BlasThreads()


@st.cache_resource(show_spinner=False)
def get_gate(capacity: int, max_waiting: int = 4) -> TrainingGate:
    """The server-wide gate (one per server process, capacity and queue length); the
    process's BLAS thread count follows the trainings it lets in."""
    return TrainingGate(capacity, max_waiting, blas=_BLAS)


def gate() -> TrainingGate:
    limits = keys.get_limits()
    limit_blas_threads(limits.blas_threads)
    return get_gate(limits.max_concurrent, limits.max_queue)


def limit_blas_threads(threads: int) -> BlasThreads:
    """Put the server's BLAS thread policy in force: ``threads`` per product whatever
    runs, or 0 to follow the trainings (``DIGITLAB_BLAS_THREADS``, ``ui.blas_threads``)."""
    if _BLAS.fixed != threads or _BLAS.current is None:
        _BLAS.configure(threads)
    return _BLAS


# ------------------------------------------------------------ run callbacks (sidebar)
def run_memory(config: TrainConfig, dataset, subset) -> tuple[MemoryEstimate, int]:
    """What a run of ``config`` on ``subset`` needs while it trains, and the bytes of data
    it holds alone (a subset is a copy; the full data set is shared or counted already)."""
    n_inputs = int(np.prod(subset.x_train.shape[1:]))
    own = 0 if subset is dataset else dataset_memory(len(subset.y_train), n_inputs)
    estimate = training_memory(
        config,
        len(subset.y_train),
        n_inputs,
        subset.n_classes,
        input_itemsize=subset.x_train.itemsize,
        n_test=len(subset.y_test),
    )
    # The health watch (nn_core.health) keeps whole-network snapshots up to its budget.
    one = n_parameters((n_inputs, *config.hidden, subset.n_classes)) * 4
    watched = min((config.epochs + 1) * one, WATCH_BUDGET_BYTES + one)
    return estimate + MemoryEstimate(data=own, snapshots=watched), own


def reserve_run(owner: str, estimate: MemoryEstimate, config: TrainConfig, n_inputs: int) -> str:
    """Reserve a run's memory; the refusal sentence, or "" when it fits."""
    try:
        hosting.ledger().reserve(
            owner, "run", estimate, "This training", advice(estimate, config, n_inputs)
        )
    except MemoryBudgetError as exc:
        return str(exc)
    return ""


def _after_training(run: TrainingRun) -> None:
    """From the run's thread when it stops: its reservation shrinks to what it keeps."""
    if not run.disposed:
        hosting.ledger().set(run.owner, "run", run.held_bytes())


def new_run() -> TrainingRun | None:
    ss = st.session_state
    ss[keys.CONTROL_ERROR] = None
    limits = keys.get_limits()
    try:
        config = keys.config_from_state()
    except ValueError as exc:
        ss[keys.CONTROL_ERROR] = f"These settings cannot train: {exc}"
        return None
    dataset = data_ui.current_dataset()
    if dataset is None:
        ss[keys.CONTROL_ERROR] = "Upload a valid data set first, or switch the data to MNIST."
        return None
    subset = data_ui.training_subset(dataset, int(ss.get("cfg_subset", 0)), config.seed)
    owner = hosting.session_id()
    estimate, own_bytes = run_memory(config, dataset, subset)
    old = ss.get(keys.RUN)
    if old is not None:
        old.stop()
    refusal = reserve_run(owner, estimate, config, int(np.prod(subset.x_train.shape[1:])))
    if refusal:
        ss[keys.CONTROL_ERROR] = refusal
        return None
    settings = {
        "data": dataset.name,
        "training images": len(subset.y_train),
        "preset": keys.PRESET_LABELS.get(ss.get("cfg_preset"), "Custom"),
        **config.to_dict(),
    }
    try:
        run = TrainingRun(
            config,
            subset,
            gate(),
            limits.max_train_seconds,
            settings=settings,
            owner=owner,
            estimate=estimate,
            data_bytes=own_bytes,
            on_idle=_after_training,
        )
    except ValueError as exc:
        hosting.ledger().release(owner, "run")
        ss[keys.CONTROL_ERROR] = f"Cannot train on this data: {exc}"
        return None
    ss[keys.RUN] = run
    run_history.on_new_run(run, limits)  # earlier runs stay in the Runs page's history
    hosting.watch().track(owner, run)
    hosting.forget_lost_session()
    return run


def _launch(run: TrainingRun, max_batches: int | None = None) -> None:
    """Start (or step) ``run`` after reserving its memory again; refusals go to the sidebar."""
    ss = st.session_state
    if run.estimate is not None:
        refusal = reserve_run(run.owner, run.estimate, run.config, run.trainer.model.sizes[0])
        if refusal:
            ss[keys.CONTROL_ERROR] = refusal
            return
    started = run.step() if max_batches == 1 else run.start()
    if not started and run.message:
        ss[keys.CONTROL_ERROR] = run.message
        _after_training(run)


def on_start() -> None:
    ss = st.session_state
    if not gate().has_room():  # refuse before the current run is replaced or memory reserved
        ss[keys.CONTROL_ERROR] = gate().busy_message()
        return
    run = new_run()
    if run is not None:
        _launch(run)
        if run.turned_away:
            ss[keys.RUN] = None  # the line filled up meanwhile: nothing to keep
            hosting.ledger().release(run.owner, "run")


def on_stop() -> None:
    run = st.session_state.get(keys.RUN)
    if run is not None:
        run.stop(wait=1.0)


def on_step() -> None:
    ss = st.session_state
    run = ss.get(keys.RUN)
    if run is None:
        run = new_run()
    if run is not None and not run.active:
        ss[keys.CONTROL_ERROR] = None
        _launch(run, max_batches=1)


def on_continue() -> None:
    ss = st.session_state
    run = ss.get(keys.RUN)
    if run is None:
        on_start()
        return
    if run.active:
        return
    ss[keys.CONTROL_ERROR] = None
    if run.finished:
        limits = keys.get_limits()
        room = limits.max_epochs - run.trainer.epochs_done
        more = min(int(ss.get("more_epochs", 1)), room)
        if more < 1:
            ss[keys.CONTROL_ERROR] = (
                f"This run has reached the cap of {limits.max_epochs} epochs on this server "
                "(DIGITLAB_MAX_EPOCHS)."
            )
            return
        run.extend(more)
    _launch(run)


def on_reset() -> None:
    ss = st.session_state
    run = ss.get(keys.RUN)
    if run is not None:
        run.stop(wait=1.0)
    ss[keys.RUN] = None
    ss[keys.CONTROL_ERROR] = None
    hosting.ledger().release(hosting.session_id(), "run")


DOWNLOAD_REFRESH_SECONDS = 10.0


def download_model_button(run: TrainingRun | None) -> None:
    """A sidebar button that saves the run's network, even while it trains, so nothing a
    visitor trained exists only in the server's memory.

    The file is made when the button is drawn (Streamlit serves a file made on the click
    only for a moment, too short while pages redraw every second): while the run trains
    it is remade at most every ``DOWNLOAD_REFRESH_SECONDS``, and the label says which
    epoch it holds; a stopped run's file holds its last weights.
    """
    if run is None or run.disposed:
        return
    data, epoch = run.model_file()
    label = f"Download model (epoch {epoch:.1f})" if run.active else "Download model"
    st.download_button(
        label,
        data=data,
        file_name=f"digitlab-{keys.architecture_label(run.model.sizes)}.npz",
        mime="application/octet-stream",
        key="btn_download_model",
        on_click="ignore",
        icon=":material/download:",
        help="The network as it is (a digitlab .npz): keep it, or upload it again later.",
    )


def live_run_panel(run: TrainingRun | None) -> None:
    """What the sidebar redraws while a run trains: its progress, and the download."""
    progress_panel(run)
    download_model_button(run)


# ------------------------------------------------------------------ run status
def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def run_status(run: TrainingRun, progress: dict) -> str:
    """One word for the state of the run: diverged, training, queued, finished, stopped, ready."""
    if progress["diverged"]:
        return "diverged"
    if run.state in ("running", "queued"):
        return "training" if run.state == "running" else "queued"
    if run.finished:
        return "finished"
    return "stopped" if progress["batches_done"] else "ready"


def queue_notice(run: TrainingRun) -> None:
    """A queued run's place in the line, the line's length and how many train now."""
    if run.state != "queued":
        return
    place, waiting = run.queue_place
    running = run.gate.active
    st.info(
        f"Queued: number {place} of {waiting} waiting, behind {running} running "
        f"training{'s' if running != 1 else ''}. It starts by itself."
    )


def progress_text(status: str, p: dict) -> str:
    """The progress bar's one line: the status and one count of epochs (and batches)."""
    if p["diverged_at"]:
        epoch, batch = p["diverged_at"]
        return f"diverged in epoch {epoch}" + (f", batch {batch}" if batch else "")
    if p["epoch"] == 0:
        return f"{status}: 0 of {p['target_epochs']} epochs"
    text = f"{status}: epoch {p['epoch']} of {p['target_epochs']}"
    if p["batches_per_epoch"] > 1:
        return f"{text}, batch {p['batch']} of {p['batches_per_epoch']}"
    return f"{text} (full batch)"


def progress_panel(run: TrainingRun | None) -> None:
    """Status, epoch / batch, throughput and time left (call inside a fragment)."""
    if run is None:
        st.caption("No training yet. Press **Start** (or **Step** for one batch).")
        return
    p = run.progress()
    queue_notice(run)
    status = run_status(run, p)
    st.progress(p["fraction"], text=progress_text(status, p))
    rate = p["samples_per_second"]
    if rate and run.active:
        st.markdown(f"**{rate:,.0f}** images/s · **{_fmt_seconds(p['seconds_left'])}** left")
    divergence = run.trainer.divergence
    if divergence is not None:  # the Training page has the whole story
        st.error(
            f"Training diverged: lower the learning rate, e.g. to {divergence.suggested_lr:g}, "
            "and press Start."
        )
    elif run.message:
        st.warning(run.message)
    if run.error:
        st.error(run.error)
