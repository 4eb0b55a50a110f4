"""The server's BLAS thread policy (ui.blas_threads): all cores for one training alone,
shared when more run, one when none does; the DIGITLAB_BLAS_THREADS override; the count
given back whenever a run ends, stops, fails or leaves the queue; and OpenBLAS's count
changed while other threads are inside products."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from nn_core.config import TrainConfig
from nn_core.data import Dataset
from ui.blas_threads import BlasThreads, ThreadProbe, available_cores, threads_for
from ui.limits import get_limits
from ui.runner import TrainingGate, TrainingRun


class Recorder:
    """A stand-in for OpenBLAS's count that keeps every count set, in order."""

    def __init__(self, start: int = 2) -> None:
        self.value = start
        self.applied: list[int] = []

    def get(self) -> int:
        return self.value

    def set(self, n: int) -> None:
        self.value = n
        self.applied.append(n)


def policy(cores: int = 2, fixed: int = 0, start: int = 2) -> tuple[BlasThreads, Recorder]:
    record = Recorder(start)
    return BlasThreads(cores=cores, fixed=fixed, count=record), record


def tiny_dataset(n: int = 400, side: int = 8) -> Dataset:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    x = rng.integers(0, 60, (n, side, side)).astype(np.uint8)
    return Dataset(x[:300], y[:300], x[300:], y[300:], n_classes=3, name="noise")


def make_run(gate: TrainingGate, epochs: int = 100_000) -> TrainingRun:
    config = TrainConfig(hidden=(16,), batch_size=16, epochs=epochs, val_fraction=0.1)
    return TrainingRun(config, tiny_dataset(), gate, max_seconds=60)


def wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def blas_counts() -> list[int]:
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


@pytest.fixture
def restore_blas():
    """Give OpenBLAS back the count it had before the test."""
    before = blas_counts()
    yield
    BlasThreads(fixed=before[0]).configure(before[0])
    assert blas_counts() == before


# -------------------------------------------------------------------------- the rule
@pytest.mark.parametrize(
    ("cores", "active", "expected"),
    [(2, 0, 1), (2, 1, 2), (2, 2, 1), (2, 3, 1), (4, 1, 4), (4, 2, 2), (4, 3, 1), (1, 1, 1)],
)
def test_one_training_gets_every_core_and_more_share_them(cores, active, expected):
    assert threads_for(active, cores) == expected


def test_a_fixed_count_wins_whatever_runs():
    assert [threads_for(k, 2, fixed=1) for k in range(4)] == [1, 1, 1, 1]
    assert [threads_for(k, 2, fixed=3) for k in range(4)] == [3, 3, 3, 3]


def test_the_environment_override_and_its_default():
    assert get_limits({}).blas_threads == 0  # follow the trainings
    assert get_limits({"DIGITLAB_BLAS_THREADS": "2"}).blas_threads == 2
    assert get_limits({"DIGITLAB_BLAS_THREADS": "1"}).blas_threads == 1
    for automatic in ("0", "auto", "-3", ""):
        assert get_limits({"DIGITLAB_BLAS_THREADS": automatic}).blas_threads == 0


def test_cores_are_capped_by_an_explicit_openblas_thread_count():
    assert available_cores({"OPENBLAS_NUM_THREADS": "1"}) == 1
    assert available_cores({"OMP_NUM_THREADS": "1,1"}) == 1
    assert available_cores({}) >= 1
    assert available_cores({"OPENBLAS_NUM_THREADS": "64"}) == available_cores({})


# ----------------------------------------------------------------- through the gate
def enter(gate: TrainingGate, token: int) -> int:
    """``token`` starts training and asks for its share of the cores (as a run whose
    timing finds several threads faster does); the count now in force."""
    assert gate.acquire(token, lambda: False)
    return gate.blas.ask_several(token, True)


def test_the_count_follows_every_acquire_and_release():
    blas, record = policy(cores=4)
    gate = TrainingGate(capacity=3, max_waiting=4, blas=blas)
    seen = [enter(gate, token) for token in (1, 2, 3)]
    for token in (1, 2, 3):
        gate.release(token)
        seen.append(blas.current)
    assert seen == [4, 2, 1, 2, 4, 1]  # 1, 2, 3 running; then 2, 1, 0 left
    assert record.applied == [1, 4, 1, 2, 1, 2, 4, 1]  # each enter: acquire, then the ask
    # An unchanged count is not applied again: two cores, three trainings.
    blas, record = policy(cores=2)
    gate = TrainingGate(capacity=3, blas=blas)
    assert [enter(gate, token) for token in (1, 2, 3)] == [2, 1, 1]
    assert record.applied == [1, 2, 1]


def test_two_cores_two_trainings_one_thread_each_then_both_again():
    blas, _ = policy(cores=2)
    gate = TrainingGate(capacity=2, blas=blas)
    assert [enter(gate, token) for token in (1, 2)] == [2, 1]
    gate.release(1)
    assert blas.current == 2
    gate.release(2)
    assert blas.current == 1


def test_work_that_does_not_ask_runs_on_one_thread_and_holds_the_others_to_one():
    blas, _ = policy(cores=2)
    gate = TrainingGate(capacity=2, blas=blas)
    assert gate.acquire(5, lambda: False)  # a sweep, the learning-rate finder
    assert blas.current == 1 and blas.shared() == 2
    assert gate.release(5) is None and blas.current == 1
    blas4, _ = policy(cores=4)
    gate = TrainingGate(capacity=2, blas=blas4)
    assert gate.acquire(5, lambda: False)
    assert enter(gate, 6) == 1  # the count is one per process: the sweep's wins
    gate.release(5)
    assert blas4.current == 4


def test_a_training_gets_several_threads_only_while_it_asks_and_runs():
    blas, _ = policy(cores=2)
    gate = TrainingGate(capacity=2, blas=blas)
    assert enter(gate, 7) == 2
    assert blas.ask_several(7, False) == 1
    assert blas.ask_several(7, True) == 2
    gate.release(7)  # its ask leaves with it
    assert blas.current == 1
    assert gate.acquire(8, lambda: False)
    assert blas.current == 1  # 8 has not asked; 7's old ask does not count
    assert blas.ask_several(99, True) == 1  # not running: no say
    gate.release(8)


def test_a_count_changed_behind_the_policy_is_put_right_at_the_next_change():
    blas, record = policy(cores=2)
    gate = TrainingGate(capacity=2, blas=blas)
    assert enter(gate, 1) == 2
    assert enter(gate, 2) == 1
    record.value = 2  # e.g. a threadpool_limits block elsewhere put back what it found
    assert blas.ask_several(2, True) == 1  # the next chunk's ask
    assert record.value == 1 and record.applied == [1, 2, 1, 1]


def test_a_queued_run_leaving_the_line_changes_nothing():
    blas, record = policy(cores=2)
    gate = TrainingGate(capacity=1, max_waiting=2, blas=blas)
    assert enter(gate, 1) == 2
    assert gate.enqueue(2)
    assert not gate.acquire(2, lambda: True)  # cancelled while waiting
    assert blas.current == 2 and record.applied == [1, 2]
    gate.release(1)
    assert blas.current == 1


def test_the_override_ignores_the_trainings():
    blas, record = policy(cores=2, fixed=2, start=1)
    gate = TrainingGate(capacity=2, blas=blas)
    blas.configure(2)
    assert gate.acquire(1, lambda: False)  # one that does not ask: the override still wins
    assert enter(gate, 2) == 2
    assert blas.ask_several(2, False) == 2
    gate.release(1)
    gate.release(2)
    assert record.applied == [2]
    blas.configure(0)  # back to the policy: nothing runs, one thread
    assert blas.current == 1


# ------------------------------------------------------------- with real trainings
def test_a_run_alone_gets_both_cores_and_gives_them_back_when_stopped(monkeypatch):
    monkeypatch.setattr(ThreadProbe, "want_single", lambda self, now: False)
    blas, record = policy(cores=2)
    run = make_run(TrainingGate(capacity=2, blas=blas))
    assert run.start()
    wait_until(lambda: run.state == "running" and run.trainer.history.batch_loss)
    assert blas.current == 2
    run.stop(wait=10)
    assert not run.active and blas.current == 1
    assert record.applied == [1, 2, 1]  # in the gate, asked for both cores, left


def test_a_run_that_finishes_or_fails_gives_the_cores_back(monkeypatch):
    blas, _ = policy(cores=2)
    gate = TrainingGate(capacity=2, blas=blas)
    finished = make_run(gate, epochs=1)
    assert finished.start()
    wait_until(lambda: not finished.active)
    assert finished.finished and blas.current == 1

    failing = make_run(gate)

    def explode(*args, **kwargs):
        raise FloatingPointError("boom")

    monkeypatch.setattr(failing.trainer, "run", explode)
    assert failing.start()
    wait_until(lambda: not failing.active)
    assert failing.error and "boom" in failing.error
    assert blas.current == 1 and gate.active == 0


def test_two_runs_share_the_cores_and_a_queued_third_waits(monkeypatch):
    monkeypatch.setattr(ThreadProbe, "want_single", lambda self, now: False)
    blas, _ = policy(cores=2)
    gate = TrainingGate(capacity=2, max_waiting=2, blas=blas)
    first, second, third = make_run(gate), make_run(gate), make_run(gate)
    assert first.start()
    wait_until(lambda: first.state == "running")
    assert second.start() and third.start()
    wait_until(lambda: second.state == "running" and third.state == "queued")
    assert blas.current == 1
    n = len(second.trainer.history.batch_loss)
    wait_until(lambda: len(second.trainer.history.batch_loss) > n)  # both train on
    third.stop(wait=10)  # leaves the line
    assert blas.current == 1
    first.stop(wait=10)
    wait_until(lambda: blas.current == 2)  # the one left alone gets both cores
    second.stop(wait=10)
    assert blas.current == 1 and gate.active == 0


def test_a_run_keeps_one_thread_while_its_probe_finds_one_faster(monkeypatch):
    monkeypatch.setattr(ThreadProbe, "want_single", lambda self, now: True)
    blas, record = policy(cores=2)
    run = make_run(TrainingGate(capacity=2, blas=blas))
    assert run.start()
    wait_until(lambda: len(run.trainer.history.batch_loss) > 50)
    assert blas.current == 1 and blas.shared() == 2
    run.stop(wait=10)
    assert blas.current == 1 and set(record.applied) <= {1, 2}


# ------------------------------------------------------------------------ the probe
def test_the_probe_times_both_counts_keeps_the_faster_and_times_them_again():
    probe = ThreadProbe(refresh=5.0, margin=1.05, warmup=0.0)
    assert probe.want_single(0.0)  # nothing timed: one thread first
    probe.record(False, batches=100, seconds=0.25, now=0.25)
    assert not probe.want_single(0.25)  # now several
    probe.record(True, batches=30, seconds=0.25, now=0.5)  # busy cores: several is slower
    assert probe.want_single(1.0)
    probe.record(False, batches=100, seconds=0.25, now=5.5)  # one thread timed again
    assert probe.want_single(5.6)  # several lost: its retry waits 10 s, not 5
    probe.record(False, batches=100, seconds=0.25, now=10.5)
    assert not probe.want_single(10.6)  # 10.1 s since several was timed: again
    probe.record(True, batches=150, seconds=0.25, now=10.8)  # the cores are free now
    assert not probe.want_single(11.0)
    probe.record(True, batches=104, seconds=0.25, now=11.1)  # within the margin: one
    assert probe.want_single(11.2)


def test_the_probe_tries_several_threads_only_after_its_warmup():
    probe = ThreadProbe(refresh=5.0, warmup=2.0)
    probe.record(False, batches=100, seconds=0.25, now=0.25)
    assert probe.want_single(0.5) and probe.want_single(2.2)  # the page's redraw after Start
    assert not probe.want_single(2.3)


def test_a_probe_whose_several_threads_keep_losing_retries_less_and_less_often():
    probe = ThreadProbe(refresh=5.0, warmup=0.0, max_wait=60.0)
    now, retries = 0.0, []
    while now < 300:
        if probe.want_single(now):
            probe.record(False, batches=100, seconds=0.25, now=now + 0.25)
        else:
            retries.append(now)
            probe.record(True, batches=20, seconds=0.25, now=now + 0.25)  # always stalls
        now += 0.25
    gaps = np.diff(retries)
    assert list(np.round(gaps[:4])) == [10, 20, 40, 60]  # doubled from the 5 s refresh
    assert gaps.max() <= 60.5 and len(retries) <= 8  # at most one lost chunk a minute


def test_the_probe_ignores_empty_chunks():
    probe = ThreadProbe()
    probe.record(False, batches=0, seconds=0.25, now=0.0)
    probe.record(False, batches=5, seconds=0.0, now=0.0)
    assert probe.want_single(0.1)


# ------------------------------------------------------------------ real OpenBLAS
def test_the_policy_sets_openblas_itself(restore_blas):
    cores = min(2, available_cores())  # never more than OpenBLAS's pool
    blas = BlasThreads(cores=cores)
    blas.configure(0)
    assert blas_counts() and set(blas_counts()) == {1}
    blas.follow({1})
    assert set(blas_counts()) == {1}  # running, has not asked for more
    blas.ask_several(1, True)
    assert set(blas_counts()) == {cores}
    blas.follow(set())
    assert set(blas_counts()) == {1}


def test_products_stay_right_while_the_count_changes_under_them(restore_blas):
    """OpenBLAS reads the count when a product starts: flipping it while two threads
    multiply never changes a result, never deadlocks."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 784), dtype=np.float32)
    b = rng.standard_normal((784, 128), dtype=np.float32)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    blas = BlasThreads(cores=min(2, available_cores()))
    blas.configure(0)
    stop = threading.Event()
    worst: list[float] = []
    counts: set[int] = set()

    def multiply() -> None:
        err = 0.0
        for _ in range(400):
            err = max(err, float(np.max(np.abs(a @ b - expected))))
        worst.append(err)

    def flip() -> None:
        k = 0
        while not stop.is_set():
            running = set(range(k % 3))  # 0, 1, 2 trainings: 1, 2, 1 threads
            blas.follow(running)
            for token in running:
                blas.ask_several(token, True)
            counts.add(blas.current)
            k += 1

    flipper = threading.Thread(target=flip, daemon=True)
    workers = [threading.Thread(target=multiply, daemon=True) for _ in range(2)]
    flipper.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    stop.set()
    flipper.join(timeout=10)
    assert not any(w.is_alive() for w in workers) and not flipper.is_alive()
    assert len(worst) == 2 and max(worst) < 1e-3 * float(np.max(np.abs(expected)))
    assert counts == {1, min(2, available_cores())}  # the count did change under them


# ------------------------------------------------------------- the numbers stay the same
# In a fresh interpreter, with every count set from threads other than the main one, as in
# the server (Streamlit's main thread runs the event loop; scripts and trainings run in
# threads): OpenBLAS 0.3.31 ignores a count set from another thread once the main thread
# has set one, which pytest's main thread may have done.
SWITCHED_RUN = """
import itertools, json, threading
import numpy as np
import ui.runner as runner
from nn_core import full_batch
from nn_core.config import TrainConfig
from nn_core.data import Dataset
from nn_core.training import Trainer
from ui.blas_threads import BlasThreads, ThreadProbe
from ui.runner import TrainingGate, TrainingRun

runner.CHUNK_SECONDS = 0.005  # many chunks, so many switches
flips = itertools.count()
ThreadProbe.want_single = lambda self, now: next(flips) % 2 == 0
counts = []
plain_run = Trainer.run
def run_and_note_the_count(self, *args, **kwargs):
    counts.append(full_batch.blas_thread_count())
    return plain_run(self, *args, **kwargs)
Trainer.run = run_and_note_the_count

rng = np.random.default_rng(3)
x = rng.integers(0, 256, (2300, 28, 28)).astype(np.uint8)
y = rng.integers(0, 10, 2300)
data = Dataset(x[:2000], y[:2000], x[2000:], y[2000:], n_classes=10, name="noise")
config = TrainConfig(hidden=(400,), batch_size=500, epochs=3, val_fraction=0.1)
result = {}
def train(fixed):
    blas = BlasThreads(cores=2, fixed=fixed)
    blas.configure(fixed)
    counts.clear()
    run = TrainingRun(config, data, TrainingGate(capacity=2, blas=blas), max_seconds=60)
    assert run.start()
    run._thread.join(timeout=60)
    assert run.finished
    result[fixed] = (run.trainer.model.params.copy(), sorted(set(counts)))
for fixed in (1, 0):  # one thread throughout, then the policy flipping the count
    script = threading.Thread(target=train, args=(fixed,))
    script.start()
    script.join()
print(json.dumps({
    "same": bool(np.array_equal(result[0][0], result[1][0])),
    "counts_fixed": result[1][1], "counts_policy": result[0][1],
}))
"""


def test_a_run_switched_between_counts_chunk_by_chunk_ends_with_the_one_thread_numbers():
    """The probe may move a run between one and two BLAS threads at every chunk; the same
    seed must still give the same weights (``nn_core.network._matmul``): here 784 pixels
    and batches of 500, products that OpenBLAS sums differently on two threads."""
    import json

    from tests.load.test_hosting import fresh_python

    out = json.loads(fresh_python(SWITCHED_RUN))
    assert out["counts_fixed"] == [1]
    assert out["counts_policy"] == [1, 2]  # the second run did train on both counts
    assert out["same"]
