"""How much do trainings slow the server's own Python work? Threads against processes.

    python scripts/contention.py [--rounds 3] [--seconds 4]

A probe thread repeatedly does what a page rerun does (builds and serialises a Plotly
figure of a few thousand points) and times each repetition, while 0, 1 or 2 trainings
run beside it: in threads of this process (they hold the GIL between NumPy calls), in
threads with a shorter GIL switch interval, in threads at a lower
scheduling priority (nice 10), or in separate processes (no shared GIL).
Each setup is measured ``--rounds`` times, interleaved, and reported as the median slow-
down of the probe against no training at all, so a machine busy with other work affects
every setup alike. BLAS uses one thread per training, as on the server.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from nn_core.config import TrainConfig
from nn_core.training import Trainer

CONFIG = TrainConfig(hidden=(128, 64), batch_size=64, epochs=10_000, val_fraction=0.0)


def make_data(n: int = 8000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n) % 10


def train_until(stop, batches=None, nice: int = 0) -> None:
    if nice:  # Linux: a thread is a task with its own nice value
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    x, y = make_data()
    trainer = Trainer(CONFIG, x, y, n_classes=10)
    while not stop.is_set():
        done = trainer.run(max_seconds=0.25)
        if batches is not None:
            with batches.get_lock():
                batches.value += done


def probe_once() -> float:
    """One page-like unit of Python work: a Plotly figure built and serialised."""
    import plotly.graph_objects as go

    t0 = time.perf_counter()
    xs = np.arange(3000)
    figure = go.Figure(go.Scatter(x=xs, y=np.sin(xs / 100.0)))
    figure.add_trace(go.Scatter(x=xs, y=np.cos(xs / 100.0)))
    figure.update_layout(height=300, margin={"l": 0, "r": 0, "t": 0, "b": 0})
    figure.to_json()
    return time.perf_counter() - t0


def measure(setup: str, trainings: int, seconds: float) -> tuple[float, float]:
    """Median probe time (s) and training batches per second with ``trainings`` running."""
    probe_once()  # imports
    batches = mp.Value("l", 0)
    if setup == "processes":
        stop = mp.Event()
        workers = [mp.Process(target=train_until, args=(stop, batches)) for _ in range(trainings)]
    else:
        stop = threading.Event()
        nice = 10 if setup == "threads-nice" else 0
        workers = [
            threading.Thread(target=train_until, args=(stop, batches, nice))
            for _ in range(trainings)
        ]
    old_interval = sys.getswitchinterval()
    if setup == "threads-1ms":
        sys.setswitchinterval(0.001)
    for worker in workers:
        worker.start()
    time.sleep(1.0)  # let them build their data and start
    start_batches = batches.value
    t0 = time.monotonic()
    times = []
    while time.monotonic() - t0 < seconds:
        times.append(probe_once())
    rate = (batches.value - start_batches) / (time.monotonic() - t0)
    stop.set()
    for worker in workers:
        worker.join()
    sys.setswitchinterval(old_interval)
    return statistics.median(times), rate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    setups = [("none", 0)] + [
        (setup, n)
        for n in (1, 2)
        for setup in ("threads", "threads-nice", "threads-1ms", "processes")
    ]
    results: dict[tuple[str, int], list[tuple[float, float]]] = {s: [] for s in setups}
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at the start")
    for _ in range(args.rounds):
        for setup, n in setups:
            results[(setup, n)].append(measure(setup, n, args.seconds))
    base = statistics.median(t for t, _ in results[("none", 0)])
    print(f"probe alone: {base * 1000:.1f} ms (median)")
    for (setup, n), values in results.items():
        if n == 0:
            continue
        slowdown = statistics.median(t for t, _ in values) / base
        rate = statistics.median(r for _, r in values)
        print(
            f"{n} training(s) in {setup:12s}: probe x{slowdown:.2f}, {rate:,.0f} batches/s in all"
        )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
