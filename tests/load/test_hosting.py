"""The hosted demo's guards without a browser: the training gate and its queue cap, Step
through the gate, the session watch that stops the runs of tabs that have gone, and the
memory reservations of runs."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from nn_core.config import TrainConfig
from nn_core.data import Dataset
from nn_core.memory import MB, MemoryLedger
from ui.hosting import SessionWatch, previous_session_id
from ui.runner import TrainingGate, TrainingRun


def tiny_dataset(n: int = 400, side: int = 8) -> Dataset:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    x = rng.integers(0, 60, (n, side, side)).astype(np.uint8)
    for i, label in enumerate(y):
        x[i, 2 * label : 2 * label + 2] = 220
    return Dataset(x[:300], y[:300], x[300:], y[300:], n_classes=3, name="bars")


def make_run(gate: TrainingGate, epochs: int = 2, owner: str = "s1", **kwargs) -> TrainingRun:
    config = TrainConfig(hidden=(16,), batch_size=16, epochs=epochs, val_fraction=0.1)
    return TrainingRun(config, tiny_dataset(), gate, max_seconds=60, owner=owner, **kwargs)


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def hold_slot(gate: TrainingGate) -> int:
    """Occupy one of the gate's slots with a token of nobody's (as another visitor would)."""
    token = 10**9 + gate.active
    assert gate.enqueue(token)
    assert gate.acquire(token, lambda: False)
    return token


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------ the gate
def test_the_queue_has_a_cap_and_tells_each_waiter_its_place():
    gate = TrainingGate(capacity=1, max_waiting=2)
    held = hold_slot(gate)
    assert gate.enqueue(1) and gate.enqueue(2)
    assert not gate.enqueue(3)  # full: refused, nothing changed
    assert gate.waiting == 2
    assert gate.place(1) == (1, 2) and gate.place(2) == (2, 2) and gate.place(3) == (0, 2)
    message = gate.busy_message()
    assert "1 trainings are running and 2 are waiting" in message
    assert "DIGITLAB_MAX_QUEUE" in message
    gate.release(held)


def test_a_free_slot_is_never_refused_even_with_a_zero_length_queue():
    gate = TrainingGate(capacity=2, max_waiting=0)
    assert gate.enqueue(1) and gate.enqueue(2)
    assert not gate.enqueue(3)


def test_a_run_refused_by_a_full_queue_says_so_and_never_trains():
    gate = TrainingGate(capacity=1, max_waiting=1)
    held = hold_slot(gate)
    first, second = make_run(gate), make_run(gate, owner="s2")
    assert first.start()
    assert not second.start()
    assert "DIGITLAB_MAX_QUEUE" in second.message
    assert not second.active and len(second.trainer.history.batch_loss) == 0
    first.stop()
    gate.release(held)


# ------------------------------------------------------------------------ Step, queued
def test_step_waits_its_turn_in_the_queue_and_then_trains_one_batch():
    """Issue 14: Step bypassed the queue (six Step tabs trained at once)."""
    gate = TrainingGate(capacity=1, max_waiting=4)
    held = hold_slot(gate)
    run = make_run(gate)
    assert run.step(wait=0.5)
    assert run.state == "queued" and run.queue_place == (1, 1)
    time.sleep(0.3)
    assert len(run.trainer.history.batch_loss) == 0  # no slot, no training
    gate.release(held)
    wait_until(lambda: not run.active)
    assert len(run.trainer.history.batch_loss) == 1


def test_step_with_a_free_slot_trains_at_once():
    run = make_run(TrainingGate(capacity=1))
    assert run.step()
    assert not run.active and len(run.trainer.history.batch_loss) == 1


# ------------------------------------------------------------------- the session watch
def test_a_queued_run_whose_tab_closed_never_trains():
    gate = TrainingGate(capacity=1, max_waiting=4)
    held = hold_slot(gate)
    clock, connected = FakeClock(), {"s1": True}
    watch = SessionWatch(15, 135, lambda owner: connected[owner], clock=clock)
    run = make_run(gate)
    watch.track("s1", run)
    assert run.start() and run.state == "queued"
    connected["s1"] = False
    assert watch.check() == []  # the tab just went: within the grace period
    clock.now = 14.9
    assert watch.check() == []
    clock.now = 15.0
    events = watch.check()
    assert len(events) == 1 and "stopped while queued" in events[0]
    wait_until(lambda: not run.active, timeout=2)
    assert gate.waiting == 0
    gate.release(held)
    time.sleep(0.3)
    assert len(run.trainer.history.batch_loss) == 0
    assert "no connection" in run.message


def test_a_running_run_of_a_gone_tab_frees_its_slot_for_the_next_visitor():
    gate = TrainingGate(capacity=1, max_waiting=4)
    clock, connected = FakeClock(), {"gone": True, "next": True}
    watch = SessionWatch(15, 135, lambda owner: connected[owner], clock=clock)
    abandoned = make_run(gate, epochs=10_000, owner="gone")
    waiting = make_run(gate, epochs=1, owner="next")
    watch.track("gone", abandoned)
    watch.track("next", waiting)
    assert abandoned.start()
    wait_until(lambda: abandoned.state == "running")
    assert waiting.start() and waiting.state == "queued"
    connected["gone"] = False
    watch.check()
    clock.now = 16
    assert any("stopped while running" in e for e in watch.check())
    wait_until(lambda: waiting.finished, timeout=10)
    assert not abandoned.active and not abandoned.finished
    assert len(abandoned.trainer.history.batch_loss) > 0  # the model so far is kept


def test_a_tab_that_comes_back_within_the_grace_period_keeps_training():
    clock, connected = FakeClock(), {"s1": False}
    watch = SessionWatch(15, 135, lambda owner: connected[owner], clock=clock)
    run = make_run(TrainingGate(capacity=1), epochs=10_000)
    watch.track("s1", run)
    assert run.start()
    watch.check()  # gone at t=0
    clock.now = 10
    connected["s1"] = True
    watch.check()  # back
    connected["s1"] = False
    clock.now = 20
    watch.check()  # gone again at t=20
    clock.now = 34
    assert watch.check() == []
    assert run.active
    run.stop()


def test_a_session_that_cannot_come_back_releases_its_runs_and_memory():
    ledger = MemoryLedger(300 * MB, 700 * MB)
    ledger.set("s1", "run", 50 * MB)
    ledger.set("s1", "upload", 20 * MB)
    clock, forgotten = FakeClock(), []

    def forget(owner):
        forgotten.append(owner)
        ledger.release(owner)

    watch = SessionWatch(15, 135, lambda owner: False, on_forget=forget, clock=clock)
    run = make_run(TrainingGate(capacity=1))
    assert run.step()
    watch.track("s1", run)
    watch.check()
    clock.now = 135
    events = watch.check()
    assert forgotten == ["s1"] and ledger.held() == 0
    assert "closed" in events[0] and "MB of runs released" in events[0]
    assert run.disposed and run.trainer is None and run.dataset is None
    assert watch.owners() == set()


def test_a_replaced_run_is_not_kept_alive_by_the_watch():
    import gc

    watch = SessionWatch(15, 135, lambda owner: True)
    run = make_run(TrainingGate(capacity=1))
    watch.track("s1", run)
    del run
    gc.collect()
    assert watch.check() == [] and watch.owners() == {"s1"}


# ------------------------------------------------------------------ memory of runs
def test_a_finished_run_reports_what_it_keeps_and_its_thread_says_when_it_stops():
    seen = []
    run = make_run(TrainingGate(capacity=1), on_idle=lambda r: seen.append(r.held_bytes()))
    assert run.start()
    wait_until(lambda: not run.active)
    assert run.finished and len(seen) == 1
    params = run.trainer.model.params.nbytes
    assert params * 2 < seen[0] < 10 * MB


def test_previous_session_id_is_none_outside_a_websocket_script_run():
    assert previous_session_id() is None


def test_concurrent_starts_never_exceed_the_capacity():
    gate = TrainingGate(capacity=2, max_waiting=10)
    runs = [make_run(gate, epochs=3, owner=f"s{i}") for i in range(5)]
    peak = []

    def watch_active():
        while any(r.active for r in runs) or not peak:
            peak.append(gate.active)
            time.sleep(0.005)

    threads = [threading.Thread(target=r.start) for r in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    watch_active()
    assert max(peak) <= 2
    assert all(r.finished for r in runs)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_training_threads_run_at_a_lower_priority_than_the_server(monkeypatch):
    """Pages first: the server's threads keep nice 0, each training thread takes nice 10."""
    import os

    monkeypatch.setenv("DIGITLAB_TRAINING_NICE", "10")
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = []
    run = make_run(
        TrainingGate(capacity=1),
        on_idle=lambda r: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())),
    )
    assert run.step()
    wait_until(lambda: bool(seen))
    assert seen == [max(base, 10)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base


RACE = """
import sys, threading, time
import numpy as np
import plotly.graph_objects as go
go.Figure(go.Scatter(x=np.arange(10), y=np.arange(10))).to_json()  # Plotly warmed up
errors = []
start = threading.Barrier(6)

def session(first):
    start.wait()
    if {preload}:
        import ui.preload  # what streamlit_app.py does first in every session
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.4:
        if first and time.monotonic() - t0 > 0.1:
            import pandas  # a page's first use of pandas, in one session's thread
        try:
            go.Figure(go.Scatter(x=np.arange(10), y=np.arange(10))).to_json()
        except Exception as exc:
            errors.append(f"{{type(exc).__name__}}: {{exc}}")

threads = [threading.Thread(target=session, args=(i == 0,)) for i in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(len(errors), errors[:1])
"""


def fresh_python(code: str) -> str:
    """The last line ``code`` prints in a new interpreter (nothing imported yet)."""
    import subprocess

    from tests.load.test_load import ROOT

    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def race(preload: bool) -> str:
    return fresh_python(RACE.format(preload=preload))


def test_sessions_importing_pandas_while_others_draw_see_half_initialised_modules():
    """Issue 14's exception box, reproduced: Plotly looks pandas up in sys.modules while
    another session's thread is still importing it."""
    assert "partially initialized module 'pandas'" in race(preload=False)


def test_with_the_preload_no_session_sees_a_half_initialised_module():
    assert race(preload=True).startswith("0 ")


FROZEN = """
import gc
import plotly.graph_objects as go
before = len(gc.get_objects())
import ui.preload
tracked = {id(o) for o in gc.get_objects()}
print(before, len(tracked), gc.get_freeze_count(), id(go.Scatter.__init__) in tracked)
"""


def test_the_preload_hides_the_loaded_modules_from_the_collector():
    """Streamlit collects garbage after every script run, fragment reruns included. Over the
    objects of pandas, Plotly and scikit-learn that took 70 ms of GIL per run and halved a
    training's speed beside a live page; frozen, they are no longer scanned."""
    before, tracked, frozen, scatter_tracked = fresh_python(FROZEN).split()
    assert int(frozen) > int(before) > 10_000  # Plotly alone, and more once everything loaded
    assert int(tracked) < int(before) / 10
    assert scatter_tracked == "False"


def test_a_finished_run_drops_its_optimizer_state_and_can_still_continue():
    """Issue 14: finished wide runs kept their optimizer state (Adam: twice the weights)
    and its rollback copy until the session expired."""
    run = make_run(TrainingGate(capacity=1), epochs=2)
    weights = run.trainer.model.params.nbytes
    moments = sum(a.nbytes for a in run.trainer.optimizer.state.values())
    assert moments >= 2 * weights
    run.trainer.run(max_batches=1)  # a stopped run keeps them (Continue resumes exactly)
    trained = [a.copy() for a in run.trainer.optimizer.state.values()]
    assert any(np.any(a) for a in trained)

    def held_besides_records():  # the snapshots and the health records grow with epochs
        snapshots = sum(a.nbytes for a in run.trainer.snapshots.values())
        return run.held_bytes() - run.watch.nbytes - snapshots

    counted = held_besides_records()
    assert run.start()
    wait_until(lambda: not run.active)
    assert run.finished
    # fresh zeros: pages the kernel has not handed out, and not counted as held
    assert not any(np.any(a) for a in run.trainer.optimizer.state.values())
    assert held_besides_records() == counted - moments
    run.extend(1)
    assert run.start()
    wait_until(lambda: not run.active)
    assert run.finished and run.trainer.epochs_done == 3
    assert np.all(np.isfinite(run.trainer.model.params))


def test_a_finished_run_of_a_gone_tab_is_compacted_after_the_grace_period():
    """Issue 14: closed tabs' sessions held their runs whole until Streamlit dropped them."""
    reported = []
    clock = FakeClock()
    watch = SessionWatch(15, 135, lambda owner: False, clock=clock)
    run = make_run(
        TrainingGate(capacity=1), epochs=6, on_idle=lambda r: reported.append(r.held_bytes())
    )
    assert run.start()
    wait_until(lambda: not run.active)
    run.evaluation()
    run.model_file()
    held = run.held_bytes()
    watch.track("s1", run)
    watch.check()
    clock.now = 15
    events = watch.check()
    assert any("compacted" in e for e in events), events
    assert sorted(run.trainer.snapshots) == [0, 6]
    assert run.held_bytes() < held and reported[-1] == run.held_bytes()
    assert not run.disposed and run.finished  # a tab that comes back still has its run
    run.extend(1)
    assert run.start()
    wait_until(lambda: not run.active)
    assert run.trainer.epochs_done == 7


def test_live_pages_redraw_less_often_while_queued_or_when_many_runs_are_live():
    from ui.hosting import QUEUED_EVERY, live_every

    gate = TrainingGate(capacity=2, max_waiting=4)
    held = [hold_slot(gate) for _ in range(2)]
    running = make_run(gate)
    running.state = "running"  # as its thread says while it trains
    assert live_every(0.5, running) == 0.5  # two live runs, two slots
    waiting = [make_run(gate, owner=f"w{i}") for i in range(4)]
    for run in waiting:
        assert run.start()
    assert all(run.state == "queued" for run in waiting)
    assert live_every(0.5, waiting[0]) == QUEUED_EVERY
    assert live_every(0.5, running) == 0.5 * 6 / 2
    for run in waiting:
        run.stop()
    for token in held:
        gate.release(token)
