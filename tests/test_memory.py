"""Memory estimates from shapes: checked against the measured peak of real runs, and the
ledger that refuses work beyond the per-session and server caps."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from nn_core.config import PRESETS, TrainConfig
from nn_core.memory import (
    MB,
    MemoryBudgetError,
    MemoryEstimate,
    MemoryLedger,
    advice,
    model_memory,
    snapshot_bytes,
    training_memory,
)
from nn_core.training import SNAPSHOT_BUDGET_BYTES

ROOT = Path(__file__).resolve().parents[1]
# BLAS packing buffers grow with the largest product seen; a fresh process has seen few.
SLACK = 16 * MB

# The peak resident memory a piece of work adds, measured in a fresh process: the kernel's
# high-water mark is reset (clear_refs 5) once the inputs exist.
MEASURE_HEAD = """
import json, sys
import numpy as np

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

args = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
ones = np.ones((64, 64), np.float32)
ones @ ones
"""
MEASURE_START = """
open("/proc/self/clear_refs", "w").write("5")
base = rss("VmRSS")
"""
MEASURE_END = """
print(rss("VmHWM") - base)
"""

TRAIN_SETUP = """
from nn_core.config import TrainConfig
from nn_core.training import Trainer
config = TrainConfig.from_dict(args["config"])
n, side, n_test = args["n"], args["side"], args["n_test"]
x = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
y = np.arange(n) % 10
x_test = rng.integers(0, 256, (max(n_test, 1), side, side), dtype=np.uint8)
"""
TRAIN_WORK = """
trainer = Trainer(config, x, y, n_classes=10)
trainer.fit()
if n_test:
    probs = trainer.model.copy().predict_proba(x_test).astype(np.float32)
"""
MODEL_SETUP = """
import io
from nn_core.io import load_model, save_model
from nn_core.network import MLP
sizes = args["sizes"]
net = MLP(sizes[0], sizes[1:-1], sizes[-1], dtype=args["dtype"])
buffer = io.BytesIO()
save_model(buffer, net, class_names=[str(i) for i in range(sizes[-1])])
data = buffer.getvalue()
del net, buffer
x = rng.integers(0, 256, (args["n_predict"], sizes[0]), dtype=np.uint8)
"""
MODEL_WORK = """
loaded = load_model(data, max_bytes=2**31)
probs = loaded.model.predict_proba(x).astype(np.float32)
"""


def measured_peak(setup: str, work: str, args: dict) -> int:
    script = MEASURE_HEAD + setup + MEASURE_START + work + MEASURE_END
    env = {"PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=ROOT,
    )
    return int(out.stdout.strip().splitlines()[-1])


TRAINING_CASES = {
    "minibatch adam": {"hidden": [128, 64], "batch_size": 128, "epochs": 2},
    "wide, dropout, shifts": {
        "hidden": [512, 512],
        "batch_size": 128,
        "epochs": 2,
        "dropout": 0.25,
        "augment_shift": 2,
    },
    "notebook-like full batch": {
        "hidden": [10],
        "batch_size": 0,
        "epochs": 3,
        "optimizer": "gd",
        "lr": 0.1,
        "val_fraction": 0.4,
    },
    "full batch float64, early stopping": {
        "hidden": [256],
        "batch_size": 0,
        "epochs": 2,
        "dtype": "float64",
        "early_stopping": 1,
    },
    "elastic distortions": {
        "hidden": [64],
        "batch_size": 512,
        "epochs": 1,
        "augment_elastic": 34,
    },
    "rotations, momentum": {
        "hidden": [64],
        "batch_size": 256,
        "epochs": 2,
        "augment_rotation": 10,
        "optimizer": "sgd",
    },
}


@pytest.mark.parametrize("name", list(TRAINING_CASES))
def test_training_estimate_bounds_the_measured_peak(name):
    settings = TRAINING_CASES[name]
    args = {"config": settings, "n": 10_000, "side": 28, "n_test": 5000}
    measured = measured_peak(TRAIN_SETUP, TRAIN_WORK, args)
    estimate = training_memory(TrainConfig.from_dict(settings), 10_000, 784, 10, n_test=5000)
    print(f"{name}: measured {measured / MB:.1f} MB, estimated {estimate.total / MB:.1f} MB")
    assert measured - SLACK <= estimate.total <= 1.5 * measured + SLACK


@pytest.mark.parametrize(
    ("sizes", "dtype"), [([784, 1024, 1024, 10], "float64"), ([784, 2048, 2048, 10], "float32")]
)
def test_model_estimate_bounds_loading_and_predicting(sizes, dtype):
    args = {"sizes": sizes, "dtype": dtype, "n_predict": 10_000}
    measured = measured_peak(MODEL_SETUP, MODEL_WORK, args)
    estimate = model_memory(sizes, dtype, n_predict=10_000)
    print(f"{sizes} {dtype}: measured {measured / MB:.1f} MB, estimated {estimate.total / MB:.1f}")
    assert measured - SLACK <= estimate.total <= 1.5 * measured + SLACK


def test_estimates_allocate_nothing_in_proportion_to_the_shapes():
    tracemalloc.start()
    try:
        huge = training_memory(TrainConfig(hidden=(4096, 4096)), 10**6, 10**6, 10)
        model_memory([10**6, 4096, 4096, 10], "float64")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert huge.total > 10**11
    assert peak < 1 * MB


# ----------------------------------------------------------- the two reproductions
def test_ten_megapixel_images_with_default_settings_are_refused_before_training():
    """Issue 14: a 32 KB .npz of ten 1000x1000 images took the server from 248 to 1,067 MiB."""
    estimate = training_memory(TrainConfig(), 10, 1000 * 1000, 10, n_test=2)
    assert estimate.total > 800 * MB
    ledger = MemoryLedger(session_cap=300 * MB, server_cap=700 * MB)
    with pytest.raises(MemoryBudgetError) as info:
        ledger.reserve(
            "s1", "run", estimate, "This training", advice(estimate, TrainConfig(), 10**6)
        )
    message = str(info.value)
    assert "DIGITLAB_MAX_SESSION_MB" in message
    assert "300 MB" in message
    assert "smaller images" in message
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence
    assert ledger.held() == 0


def test_a_wide_float64_model_file_is_refused_from_its_declared_sizes():
    """Issue 14: a 784-4096-4096-4096-10 float64 model took the server to 1,243 MiB."""
    estimate = model_memory([784, 4096, 4096, 4096, 10], "float64")
    assert 1000 * MB < estimate.total < 1400 * MB
    ledger = MemoryLedger(session_cap=300 * MB, server_cap=700 * MB)
    with pytest.raises(MemoryBudgetError, match="DIGITLAB_MAX_SESSION_MB"):
        ledger.reserve("s1", "model", estimate, "This model", "save a smaller model")


def test_the_presets_fit_the_default_session_cap_on_mnist():
    for name, config in PRESETS.items():
        estimate = training_memory(config, 60_000, 784, 10, n_test=10_000)
        assert estimate.total < 300 * MB, (name, estimate.parts())


def test_full_batch_makes_no_float_copy_of_the_data():
    # full batch converts a chunk of rows at a time (nn_core.full_batch), never the whole
    # set: it keeps a compact copy of the training rows as stored (uint8), not as float32
    config = TrainConfig(hidden=(10,), batch_size=0, val_fraction=0.0)
    minibatch = training_memory(config.replace(batch_size=128), 36_000, 784, 10)
    full = training_memory(config, 36_000, 784, 10)
    assert 36_000 * 784 <= full.data - minibatch.data < 36_000 * 784 * 2
    big = training_memory(config, 600_000, 784, 10)
    assert advice(big, config, 784).startswith("pick a batch size")


def test_snapshots_stop_growing_at_the_trainers_budget():
    from nn_core.training import Trainer

    config = TrainConfig(hidden=(32,), batch_size=64, epochs=3, val_fraction=0.0)
    trainer = Trainer(config, np.zeros((128, 8, 8), np.uint8), np.arange(128) % 2)
    trainer.fit()
    kept = sum(a.nbytes for a in trainer.snapshots.values())
    assert len(trainer.snapshots) == 4
    assert snapshot_bytes((64, 32, 2), 3) == kept
    one = 784 * 512 * trainer.snapshots[0].itemsize
    assert snapshot_bytes((784, 512, 10), 10_000) <= SNAPSHOT_BUDGET_BYTES + one


def test_estimate_parts_and_breakdown():
    estimate = MemoryEstimate(data=5 * MB, parameters=40 * MB, optimizer=20 * MB)
    assert estimate.total == 65 * MB
    assert estimate.largest_part() == "parameters"
    assert estimate.breakdown() == "weights and gradients 40 MB, optimizer state 20 MB"
    assert (estimate + estimate).total == 130 * MB


# ------------------------------------------------------------------------ the ledger
def est(megabytes: float) -> MemoryEstimate:
    return MemoryEstimate(data=int(megabytes * MB))


def test_ledger_counts_each_session_and_replaces_an_item():
    ledger = MemoryLedger(session_cap=100 * MB, server_cap=250 * MB)
    ledger.reserve("a", "run", est(60), "This training", "lower it")
    ledger.reserve("a", "run", est(90), "This training", "lower it")  # replaces the 60
    assert ledger.held("a") == 90 * MB
    with pytest.raises(MemoryBudgetError, match="per session"):
        ledger.reserve("a", "upload", est(20), "This data set", "upload fewer images")
    ledger.reserve("b", "run", est(90), "This training", "lower it")
    with pytest.raises(MemoryBudgetError, match="DIGITLAB_MAX_SERVER_MB") as info:
        ledger.reserve("c", "run", est(80), "This training", "lower it")
    assert "180 MB" in str(info.value)  # what the others hold
    ledger.set("a", "run", 10 * MB)  # a finished run keeps less
    ledger.reserve("c", "run", est(80), "This training", "lower it")
    ledger.release("b")
    assert ledger.held() == 90 * MB and ledger.owners() == {"a", "c"}
    ledger.release("a", "run")
    assert ledger.held("a") == 0


def test_ledger_never_overcommits_under_concurrent_reservations():
    ledger = MemoryLedger(session_cap=100 * MB, server_cap=300 * MB)
    granted = []

    def reserve(owner: str) -> None:
        try:
            ledger.reserve(owner, "run", est(70), "This training", "lower it")
            granted.append(owner)
        except MemoryBudgetError:
            pass

    threads = [threading.Thread(target=reserve, args=(f"s{i}",)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 4
    assert ledger.held() == 280 * MB


def test_estimate_matches_what_the_trainer_really_allocates_per_part():
    """The parameter part counts params, grads and the rollback copy of a real Trainer."""
    from nn_core.training import Trainer

    config = TrainConfig(hidden=(32,), batch_size=16, epochs=1, optimizer="adam")
    x = np.zeros((200, 8, 8), np.uint8)
    y = np.arange(200) % 3
    trainer = Trainer(config, x, y, n_classes=3)
    estimate = training_memory(config, 200, 64, 3)
    per_copy = trainer.model.params.nbytes
    assert estimate.parameters == 3 * per_copy
    moments = [a for a in trainer.optimizer.state.values() if a.shape == trainer.model.params.shape]
    assert estimate.optimizer == 2 * sum(a.nbytes for a in moments)  # the state and its copy


def test_load_model_asks_before_reading_any_weights(tmp_path):
    """The io hook: the declared sizes reach ``check_memory`` first; a refusal is a
    ModelFileError with the ledger's sentence, and no weight array is read."""
    import io as _io

    from nn_core.io import ModelFileError, load_model, save_model
    from nn_core.network import MLP

    buffer = _io.BytesIO()
    save_model(buffer, MLP(784, (512,), 10, dtype="float64"), class_names=list("0123456789"))
    data = buffer.getvalue()
    ledger = MemoryLedger(session_cap=1 * MB, server_cap=700 * MB)
    seen = []

    def check(sizes, dtype):
        seen.append((list(sizes), dtype))
        estimate = model_memory(sizes, dtype)
        ledger.reserve("s1", "model", estimate, "This model", "save a smaller network")

    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="DIGITLAB_MAX_SESSION_MB") as info:
            load_model(data, check_memory=check)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == [([784, 512, 10], "float64")]
    assert "This model needs about" in str(info.value)
    assert peak < 784 * 512 * 8 / 2  # the first weight matrix alone is 3.2 MB
    assert ledger.held() == 0
    loaded = load_model(data, check_memory=lambda sizes, dtype: None)
    assert loaded.model.sizes == (784, 512, 10)


def test_a_full_batch_of_one_chunk_counts_one_lane_of_buffers():
    """8 images of 1000 x 1000 pixels, full batch: each set of rows fits one chunk, so one
    lane's buffers are counted (the second lane's were 70 MB)."""
    config = TrainConfig(hidden=(), batch_size=0, epochs=1, val_fraction=0.125)
    one_lane = training_memory(config, 8, 1_000_000, 10)
    pixels = 1_000_000 * (1 + 4)  # a uint8 row and its float32 conversion
    compact = 7 * 1_000_000  # the training rows' uint8 copy
    validation = 1_000_000  # the held-out row's copy
    assert one_lane.data - 3 * 8 * 8 == (7 + 1) * pixels + compact + validation
