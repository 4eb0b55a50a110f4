"""The run history's memory budget and freezing of runs (ui.run_history, no Streamlit run)."""

from __future__ import annotations

import numpy as np
import pytest

from nn_core import TrainConfig
from nn_core.data import load_mnist
from nn_core.run_record import RunRecord
from nn_core.training import History
from ui.run_history import RunHistory, record_bytes
from ui.runner import TrainingGate, TrainingRun


def _record(name: str, n_batches: int, status: str = "finished") -> RunRecord:
    history = History().to_dict()
    history["batch_loss"] = [1.0] * n_batches
    history["batch_progress"] = [0.1] * n_batches
    history["batch_accuracy"] = [0.5] * n_batches
    history["epoch"] = [1, 2]
    history["val_accuracy"] = [0.8, 0.9]
    return RunRecord(name=name, config=TrainConfig(hidden=(8,)), status=status, history=history)


def _history(*records: RunRecord) -> RunHistory:
    history = RunHistory()
    for record in records:
        history.add_record(record)
    return history


def test_within_budget_nothing_is_dropped():
    history = _history(_record("a", 100), _record("b", 100))
    assert history.enforce_budget(10**9) == []
    assert all(e.record.has_batch_history() for e in history.entries)
    assert history.notices == []


def test_oldest_finished_runs_drop_batch_history_first_and_are_named():
    a, b, c = _record("a", 1000), _record("b", 1000), _record("c", 1000)
    history = _history(a, b, c)
    # Room for everything but one run's per-batch lists (3 lists of 1000 values).
    budget = sum(record_bytes(r) for r in (a, b, c)) - 3 * 1000 * 32 + 1
    assert history.enforce_budget(budget) == ["a"]
    kept = [e.record.has_batch_history() for e in history.entries]
    assert kept == [False, True, True]
    first = history.entries[0]
    assert first.dropped and first.record.history["val_accuracy"] == [0.8, 0.9]
    assert "a" in history.notices[-1] and "dropped" in history.notices[-1]
    assert history.nbytes() <= budget


def test_running_runs_keep_their_history_and_nothing_is_removed_when_still_over():
    history = _history(_record("a", 1000, status="running"), _record("b", 1000))
    assert history.enforce_budget(1) == ["b"]
    assert [e.name for e in history.entries] == ["a", "b"]  # never silently lost
    assert history.entries[0].record.has_batch_history()
    assert "over this session's budget" in history.notices[-1]


def test_delete_removes_only_the_chosen_runs():
    history = _history(_record("a", 10), _record("b", 10), _record("c", 10))
    ids = [history.entries[0].id, history.entries[2].id]
    assert history.delete(ids) == 2
    assert [e.name for e in history.entries] == ["b"]


@pytest.fixture(scope="module")
def small_data():
    return load_mnist().subset(600, seed=0)


def test_a_replaced_run_is_frozen_with_its_history_metrics_and_network(small_data):
    config = TrainConfig(hidden=(16,), epochs=1, batch_size=64, seed=3)
    history = RunHistory()
    first = TrainingRun(config, small_data, TrainingGate(1), 60.0, settings={"data": "MNIST"})
    history.add_live(first)
    first.trainer.run()
    second = TrainingRun(config, small_data, TrainingGate(1), 60.0)
    history.freeze_idle(current=second)
    history.add_live(second)
    entry = history.entries[0]
    assert entry.run is None and entry.status == "finished"
    record = entry.record
    assert record.has_batch_history() and len(record.history["epoch"]) == 1
    assert 0.0 < record.metrics["test_accuracy"] <= 1.0
    x = small_data.x_test[:50]
    np.testing.assert_array_equal(record.model.predict(x), first.trainer.model.predict(x))
    assert history.entries[1].live and history.entries[1].status == "stopped"
