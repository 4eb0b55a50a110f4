"""How long teaching a network your digits takes (the My digits page and ``finetune``).

Run from the repository root::

    python benchmarks/finetune_speed.py

The network is the starter model shipped with the app (``assets/starter_model.npz``: the
Fast preset's 784-128-64-10, trained by the command line). The "personal" digits are
``--digits`` MNIST test images drawn with a felt-tip pen (a 5x5 dilation, a style the
network misreads), five per class by default. Timed, as medians over ``--repeats`` runs
with different seeds and one BLAS thread as in the dashboard:

1. ``finetune``: the default settings (150 steps of 32 images, half of them replayed
   MNIST training images, shifts and rotations), on all the digits: the issue's target
   is under 5 s;
2. what the page's Fine-tune button does with the same digits: a per-digit split (30% of
   each digit kept aside), fine-tuned with replay 50% and again with 0% to compare, each
   scored before and after on the held-out digits and the 10,000 MNIST test images;
3. the same with the most digits the page tests by leave-one-out (9: nine fine-tunes plus
   the one kept, twice).

A reference in the same run (one forward pass over the 10,000 test images) puts each
figure in proportion, so a slow spell of the shared machine shows in both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nn_core.data import load_mnist  # noqa: E402
from nn_core.finetune import (  # noqa: E402
    LEAVE_ONE_OUT_BELOW,
    FinetuneSettings,
    finetune,
    teach,
    with_replay,
)
from nn_core.io import load_model  # noqa: E402

TARGET_SECONDS = 5.0


def felt_tip(images: np.ndarray) -> np.ndarray:
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    return np.ascontiguousarray(sliding_window_view(padded, (5, 5), axis=(1, 2)).max(axis=(3, 4)))


def personal_digits(mnist, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` test digits, as evenly spread over the classes as ``n`` allows, felt-tipped."""
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(mnist.y_test == c)) for c in range(10)]
    idx = np.array([per_class[i % 10][i // 10] for i in range(n)])
    return felt_tip(mnist.x_test[idx]), mnist.y_test[idx]


def median(fn, repeats: int) -> tuple[float, object]:
    fn(0)  # warm up (the rotation tables, the buffers)
    times, last = [], None
    for seed in range(1, repeats + 1):
        start = time.perf_counter()
        last = fn(seed)
        times.append(time.perf_counter() - start)
    return statistics.median(times), last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args()
    mnist = load_mnist()
    model = load_model(ROOT / "assets" / "starter_model.npz").model
    replay = (mnist.x_train, mnist.y_train)
    test = (mnist.x_test, mnist.y_test)
    settings = FinetuneSettings()
    print(f"load average {os.getloadavg()[0]:.1f}; {args.blas_threads} BLAS thread(s)")
    with threadpool_limits(args.blas_threads, "blas"):
        reference, _ = median(lambda _: model.predict_proba(mnist.x_test), args.repeats)

        def one(seed):
            x, y = personal_digits(mnist, args.digits, seed)
            return finetune(model, x, y, with_seed(settings, seed), *replay)

        def page(n):
            def run(seed):
                x, y = personal_digits(mnist, n, seed)
                s = with_seed(settings, seed)
                return [
                    teach(model, x, y, with_replay(s, r), replay_set=replay, test_set=test)
                    for r in (0.5, 0.0)
                ]

            return run

        rows = [("reference: predict the 10,000 test images", reference, None)]
        seconds, tuned = median(one, args.repeats)
        rows.append((f"finetune: {args.digits} digits, 150 steps, replay 50%", seconds, tuned))
        seconds, outcomes = median(page(args.digits), args.repeats)
        rows.append((f"Fine-tune button: {args.digits} digits, per-digit split, 50% + 0%",
                     seconds, outcomes))  # fmt: skip
        most = LEAVE_ONE_OUT_BELOW - 1
        seconds, loo = median(page(most), args.repeats)
        rows.append((f"Fine-tune button: {most} digits, leave-one-out, 50% + 0%", seconds, loo))
    print(f"{'what':60} {'seconds':>8} {'x ref':>7}")
    for name, seconds, _ in rows:
        print(f"{name:60} {seconds:8.2f} {seconds / reference:7.1f}")
    first = rows[1][1]
    verdict = "met" if first < TARGET_SECONDS else "NOT met"
    print(f"target: fine-tuning under {TARGET_SECONDS:g} s: {verdict} ({first:.2f} s)")
    for outcome in outcomes:
        print(
            f"  replay {outcome.settings.replay:.0%}: held-out "
            f"{outcome.before.personal_accuracy:.1%} -> {outcome.after.personal_accuracy:.1%}, "
            f"MNIST {outcome.before.test_accuracy:.2%} -> {outcome.after.test_accuracy:.2%}"
        )


def with_seed(settings: FinetuneSettings, seed: int) -> FinetuneSettings:
    return replace(settings, seed=seed)


if __name__ == "__main__":
    main()
