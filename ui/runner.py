"""Training in the background, one ``TrainingRun`` per browser session.

The run owns a ``Trainer`` and a thread that calls ``trainer.run(max_seconds=...)`` in
short chunks until the run is finished, stopped, or its time cap is spent. The thread
never calls Streamlit and never touches ``st.session_state``: it only writes this
object's attributes, which the page reads on its reruns.

A server-wide ``TrainingGate`` caps how many runs train at once; the others wait in a
first-come queue and see how many trainings are ahead of them.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import streamlit as st
from threadpoolctl import threadpool_limits

from nn_core import TrainConfig, Trainer
from nn_core.metrics import evaluate
from ui import data as data_ui
from ui import state as keys

CHUNK_SECONDS = 0.25
_run_ids = itertools.count(1)


class TrainingGate:
    """At most ``capacity`` trainings at once; the others queue in arrival order."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, int(capacity))
        self._cond = threading.Condition()
        self._queue: deque[int] = deque()
        self._active: set[int] = set()

    def acquire(self, token: int, should_abort) -> bool:
        """Block until ``token`` may train (True) or ``should_abort()`` says give up (False)."""
        with self._cond:
            self._queue.append(token)
            try:
                while True:
                    if should_abort():
                        return False
                    if self._queue[0] == token and len(self._active) < self.capacity:
                        self._active.add(token)
                        return True
                    self._cond.wait(timeout=0.1)
            finally:
                self._queue.remove(token)
                self._cond.notify_all()

    def release(self, token: int) -> None:
        with self._cond:
            self._active.discard(token)
            self._cond.notify_all()

    def position(self, token: int) -> int:
        """Trainings ahead of ``token`` (running ones and those queued before it)."""
        with self._cond:
            if token not in self._queue:
                return 0
            return len(self._active) + list(self._queue).index(token)

    @property
    def active(self) -> int:
        with self._cond:
            return len(self._active)


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
    """

    def __init__(
        self,
        config: TrainConfig,
        dataset,
        gate: TrainingGate,
        max_seconds: float,
        settings: dict | None = None,
    ) -> None:
        self.id = next(_run_ids)
        self.config = config
        self.dataset = dataset
        self.settings = dict(settings or {})
        self.gate = gate
        self.max_seconds = float(max_seconds)
        self.trainer = Trainer(
            config, dataset.x_train, dataset.y_train, n_classes=dataset.n_classes
        )
        self.state = "idle"  # idle | queued | running
        self.message: str | None = None  # why the last chunk of training ended early
        self.error: str | None = None
        self.seconds_trained = 0.0
        self._stop = False
        self._thread: threading.Thread | None = None
        self._token = 0
        self._rate_batches = 0
        self._rate_seconds = 0.0
        self._eval_key: tuple | None = None
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

    def batches_per_second(self) -> float | None:
        if self._rate_seconds <= 0 or self._rate_batches == 0:
            return None
        return self._rate_batches / self._rate_seconds

    def progress(self) -> dict:
        """Figures for the progress panel."""
        t = self.trainer
        bpe = t.batches_per_epoch
        done_batches = len(t.history.batch_loss)
        total_batches = t.target_epochs * bpe
        epoch_frac = t.progress
        batch_in_epoch = round((epoch_frac - int(epoch_frac)) * bpe)
        rate = self.batches_per_second()
        left = None
        if rate and not t.finished:
            left = max(0.0, (total_batches - (t.epochs_done * bpe + batch_in_epoch)) / rate)
        return {
            "epochs_done": t.epochs_done,
            "target_epochs": t.target_epochs,
            "epoch_fraction": epoch_frac,
            "batch": batch_in_epoch,
            "batches_per_epoch": bpe,
            "batches_done": done_batches,
            "fraction": min(1.0, epoch_frac / max(t.target_epochs, 1)),
            "batches_per_second": rate,
            "samples_per_second": rate * t.batch_size if rate else None,
            "seconds_left": left,
            "seconds_trained": self.seconds_trained,
        }

    # ------------------------------------------------------------------ control
    def start(self) -> bool:
        """Train in the background until finished, stopped or time-capped."""
        if self.active or self.finished:
            return False
        self._stop = False
        self.message = None
        self.error = None
        self._token = next(_run_ids) * 1000 + self.id
        self.state = "queued"
        self._thread = threading.Thread(
            target=self._work, name=f"digitlab-run-{self.id}", daemon=True
        )
        self._thread.start()
        return True

    def stop(self, wait: float = 2.0) -> None:
        """Stop after the current batch and keep the model trained so far."""
        self._stop = True
        self.trainer.request_stop()
        thread = self._thread
        if thread is not None and thread.is_alive() and wait:
            thread.join(timeout=wait)

    def step(self) -> bool:
        """Train on one batch now (only when not running in the background)."""
        if self.active:
            return False
        self.message = None
        if self.trainer.finished:
            self.trainer.extend(1)
        start = time.perf_counter()
        done = self.trainer.run(max_batches=1)
        self._note_rate(done, time.perf_counter() - start)
        return done > 0

    def extend(self, epochs: int) -> None:
        """Plan more epochs (Continue after the run finished)."""
        self.trainer.extend(int(epochs))

    # ------------------------------------------------------------------ thread
    def _work(self) -> None:
        token = self._token
        if not self.gate.acquire(token, lambda: self._stop):
            self.state = "idle"
            self.message = "Stopped while waiting in the queue."
            return
        try:
            self.state = "running"
            budget_start = self.seconds_trained
            while not self._stop and not self.trainer.finished:
                spent = self.seconds_trained - budget_start
                if spent >= self.max_seconds:
                    self.message = (
                        f"Paused after {self.max_seconds:g} s of training, the cap per run "
                        "on this server. Press Continue to train on."
                    )
                    break
                chunk = min(CHUNK_SECONDS, self.max_seconds - spent)
                t0 = time.perf_counter()
                done = self.trainer.run(max_seconds=chunk)
                elapsed = time.perf_counter() - t0
                self.seconds_trained += elapsed
                self._note_rate(done, elapsed)
                if done == 0 and not self.trainer.finished and not self._stop:
                    break  # a stop request from a callback
        except Exception as exc:  # shown to the user; the model so far is kept
            self.error = f"Training failed: {type(exc).__name__}: {exc}"
        finally:
            self.trainer.release_memory()  # a paused run keeps no full-batch float copies
            self.gate.release(token)
            self.state = "idle"
            if self.trainer.stop_reason:
                self.message = self.trainer.stop_reason

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


@st.cache_resource(show_spinner=False)
def get_gate(capacity: int) -> TrainingGate:
    """The server-wide gate (one per server process and capacity)."""
    return TrainingGate(capacity)


@st.cache_resource(show_spinner=False)
def limit_blas_threads(threads: int) -> threadpool_limits:
    """Cap the BLAS threads of this server process (once per process and value)."""
    return threadpool_limits(limits=threads, user_api="blas")


# ------------------------------------------------------------ run callbacks (sidebar)
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
    limit_blas_threads(limits.blas_threads)
    subset = data_ui.training_subset(dataset, int(ss.get("cfg_subset", 0)), config.seed)
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
            get_gate(limits.max_concurrent),
            limits.max_train_seconds,
            settings=settings,
        )
    except ValueError as exc:
        ss[keys.CONTROL_ERROR] = f"Cannot train on this data: {exc}"
        return None
    old = ss.get(keys.RUN)
    if old is not None:
        old.stop()
    ss[keys.RUN] = run
    return run


def on_start() -> None:
    run = new_run()
    if run is not None:
        run.start()


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
        run.step()


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
    run.start()


def on_reset() -> None:
    ss = st.session_state
    run = ss.get(keys.RUN)
    if run is not None:
        run.stop(wait=1.0)
    ss[keys.RUN] = None
    ss[keys.CONTROL_ERROR] = None


# ------------------------------------------------------------------ run status
def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def progress_panel(run: TrainingRun | None) -> None:
    """Status, epoch / batch, throughput and time left (call inside a fragment)."""
    if run is None:
        st.caption("No training yet. Press **Start** (or **Step** for one batch).")
        return
    p = run.progress()
    if run.state == "queued":
        ahead = run.queue_position
        st.info(f"Queued: {ahead} training{'s' if ahead != 1 else ''} ahead. It starts by itself.")
    status = (
        "training"
        if run.state == "running"
        else "queued"
        if run.state == "queued"
        else "finished"
        if run.finished
        else "stopped"
        if p["batches_done"]
        else "ready"
    )
    st.progress(
        p["fraction"], text=f"{status}: epoch {p['epoch_fraction']:.2f} / {p['target_epochs']}"
    )
    epoch = p["epochs_done"] if run.finished else min(p["epochs_done"] + 1, p["target_epochs"])
    rate = p["samples_per_second"]
    left = _fmt_seconds(p["seconds_left"]) if run.active else "–"
    line = (
        f"**Epoch** {epoch}/{p['target_epochs']} · **batch** {p['batch']}/{p['batches_per_epoch']}"
    )
    if rate:
        line += f"  \n**{rate:,.0f}** images/s · **{left}** left"
    st.markdown(line)
    if run.message:
        st.warning(run.message)
    if run.error:
        st.error(run.error)
