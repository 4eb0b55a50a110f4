"""Parallel efficiency of sweeps, and the time of the learning-rate range test.

Run from the repository root::

    python benchmarks/sweep_speed.py            # 8 Fast-preset runs; the LR finder 3 times
    python benchmarks/sweep_speed.py --quick    # 4 runs on 5,000 images: a smoke test

Sweep: the same 8 Fast-preset runs (seeds 0-7, full MNIST, each scored on the 10,000 test
images) one after another in this process, then on 2 processes on this machine (joblib,
one BLAS thread each, ``nn_core.sweep.run_sweep(jobs=2)``). One after another is timed
with one BLAS thread (``--serial-threads 1,2`` adds two, all cores), and the ratio is
taken against the fastest. Wall times include starting the processes and sharing the data with them.

LR finder: ``find_learning_rate`` with the Fast preset's settings on the full MNIST
training images (200 batches unless the loss blows up first), one BLAS thread, as the
command line and the app run it; the time includes building the range test's trainer.

The machine's load (``os.getloadavg``) is printed before and after each measurement: on a
shared machine the figures mean little without it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from threadpoolctl import threadpool_limits  # noqa: E402

from nn_core.config import PRESETS  # noqa: E402
from nn_core.data import load_mnist  # noqa: E402
from nn_core.lr_finder import find_learning_rate  # noqa: E402
from nn_core.sweep import parse_grid, plan_sweep, run_sweep  # noqa: E402


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (5 min {five:.2f})"


def timed_sweep(runs, data, jobs: int, blas_threads: int) -> tuple[float, list]:
    start = time.perf_counter()
    results = list(run_sweep(runs, data, jobs=jobs, blas_threads=blas_threads))
    seconds = time.perf_counter() - start
    failed = [r.run.name for r in results if r.record.status != "finished"]
    if failed or len(results) != len(runs):
        raise SystemExit(f"runs did not finish: {failed}")
    return seconds, results


def sweep_efficiency(n_runs: int, subset: int | None, serial_threads: list[int]) -> None:
    data = load_mnist() if subset is None else load_mnist().subset(subset, seed=0)
    base = PRESETS["fast"]
    runs = plan_sweep(base, parse_grid(f"lr={base.lr:g}"), seeds=list(range(n_runs)))
    print(
        f"Sweep: {n_runs} Fast-preset runs ({base.epochs} epochs of {len(data.y_train):,} "
        f"images, hidden {'-'.join(map(str, base.hidden))}) on {os.cpu_count()} cores"
    )
    timings = {}
    serial = [(f"one after another, {n} BLAS thread(s)", 1, n) for n in serial_threads]
    for label, jobs, blas in [*serial, ("2 processes, 1 BLAS thread each", 2, 1)]:
        before = load()
        seconds, results = timed_sweep(runs, data, jobs, blas)
        timings[label] = (seconds, results)
        accuracy = statistics.mean(r.record.metrics["test_accuracy"] for r in results)
        training = sum(r.record.metrics["seconds"] for r in results)
        print(
            f"  {label:36s} {seconds:7.1f} s wall, {training:6.1f} s of training summed over "
            f"runs (mean test accuracy {100 * accuracy:.2f}%; {before} -> {load()})"
        )
    fastest_serial = min(timings[k][0] for k in timings if k.startswith("one after"))
    parallel = timings["2 processes, 1 BLAS thread each"][0]
    ratio = parallel / fastest_serial
    print(f"  ratio 2 processes / one after another (the fastest): {ratio:.2f}")
    same = all(
        a.record.model.params.tobytes() == b.record.model.params.tobytes()
        for a, b in zip(
            sorted(timings[serial[0][0]][1], key=lambda r: r.run.index),
            sorted(timings["2 processes, 1 BLAS thread each"][1], key=lambda r: r.run.index),
        )
    )
    print(f"  same weights one after another and in processes: {same}")


def lr_finder_time(repeats: int, subset: int | None) -> None:
    data = load_mnist() if subset is None else load_mnist().subset(subset, seed=0)
    config = PRESETS["fast"]
    print(
        f"LR finder: Fast preset's settings, {len(data.y_train):,} training images, 1 BLAS thread"
    )
    for _ in range(repeats):
        before = load()
        with threadpool_limits(1, "blas"):
            start = time.perf_counter()
            result = find_learning_rate(config, data.x_train, data.y_train, n_classes=10)
            seconds = time.perf_counter() - start
        print(
            f"  {seconds:5.2f} s for {result.losses.size} batches; suggested lr "
            f"{result.suggested_lr:.3g}; {result.stop_reason} ({before} -> {load()})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 runs on 5,000 images")
    parser.add_argument("--runs", type=int, default=8, help="runs in the sweep (default 8)")
    parser.add_argument(
        "--serial-threads",
        default="1",
        help="BLAS threads of the one-after-another runs, e.g. 1,2 (default 1: on a busy "
        "machine two threads per process stall, see BENCHMARKS.md)",
    )
    args = parser.parse_args()
    subset = 5000 if args.quick else None
    print(f"Machine: {os.cpu_count()} cores, {load()}")
    lr_finder_time(1 if args.quick else 3, subset)
    threads = [int(t) for t in args.serial_threads.split(",")]
    sweep_efficiency(4 if args.quick else args.runs, subset, threads)


if __name__ == "__main__":
    main()
