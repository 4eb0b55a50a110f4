"""How often the Draw page's "not a digit" hint fires on real digits, and on non-digits.

Run from the repository root::

    python benchmarks/drawing_check.py [--digits 1000] [--others 200] [--seed 0]

Real digits are MNIST *test* images re-drawn on a 280x280 canvas with the page's 18-px
round brush (``tests/drawings.py``: the digit's centre line traced at a random size and
place). The thresholds in ``nn_core/drawing_check.py`` were chosen on *training* digits
re-drawn the same way (``--calibrate`` prints their quantiles), from images that are not
among the reference neighbours. Non-digits: dots, flat lines, scribbles and filled blobs.
Also printed: the time to preprocess and check one drawing, with one BLAS thread as in the
app.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nn_core import drawing_check as dc
from nn_core.data import load_mnist
from nn_core.preprocess import preprocess_drawing
from tests import drawings

SCORES = ("extent", "elongation", "angle", "thickness", "pen_width", "ink_length", "knn_distance")


def verdicts(canvases, reference) -> tuple[list[str | None], dict[str, np.ndarray]]:
    """Each canvas's ``check_drawing`` reason and every score, as arrays."""
    reasons, rows = [], []
    for rgba in canvases:
        check = dc.check_drawing(rgba, preprocess_drawing(rgba), reference)
        reasons.append(check.reason)
        rows.append(check.scores)
    return reasons, {k: np.array([r.get(k, np.nan) for r in rows]) for k in SCORES}


def held_out_training_indices(n_train: int, n_reference: int) -> np.ndarray:
    """Training images that are not reference neighbours (the reference's picks)."""
    picked = np.unique(np.linspace(0, n_train - 1, min(n_train, n_reference)).astype(np.int64))
    return np.setdiff1d(np.arange(n_train), picked)


def main() -> None:
    with threadpool_limits(1, "blas"):  # as the app (DIGITLAB_BLAS_THREADS=1)
        measure()


def measure() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=1000)
    parser.add_argument("--others", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibrate", action="store_true", help="also score 2000 training digits")
    parser.add_argument("--save", type=Path, help="write every score to this .npz")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    ds = load_mnist()
    start = time.perf_counter()
    reference = dc.DigitReference.from_images(ds.x_train)
    print(f"reference built in {time.perf_counter() - start:.2f} s")

    sets = {}
    if args.calibrate:
        held = rng.choice(held_out_training_indices(len(ds.x_train), 20_000), 2000, replace=False)
        sets["train digits"] = [drawings.redraw_digit(ds.x_train[i], rng) for i in held]
    picks = rng.choice(len(ds.x_test), args.digits, replace=False)
    sets["test digits"] = [drawings.redraw_digit(ds.x_test[i], rng) for i in picks]
    small = picks[: max(1, args.digits // 5)]
    sets["small test digits (70-100 px)"] = [
        drawings.redraw_digit(ds.x_test[i], rng, sizes=(70, 100)) for i in small
    ]
    for name, make in drawings.NON_DIGITS.items():
        sets[name] = [make(rng) for _ in range(args.others)]

    saved = {}
    for name, canvases in sets.items():
        start = time.perf_counter()
        reasons, scores = verdicts(canvases, reference)
        saved.update({f"{name}/{key}": value for key, value in scores.items()})
        per_check = (time.perf_counter() - start) / len(canvases) * 1000
        flagged = np.mean([r is not None for r in reasons])
        counts = {r: reasons.count(r) for r in sorted({r for r in reasons if r is not None})}
        print(
            f"\n{name}: {len(canvases)} drawings, flagged {flagged:.1%} {counts}"
            f" ({per_check:.1f} ms per preprocess + check)"
        )
        for key in SCORES:
            q = np.nanpercentile(scores[key], [0, 1, 50, 99, 99.9, 100])
            print(f"   {key:13s} min/1/50/99/99.9/max " + " ".join(f"{v:7.3f}" for v in q))
    if args.save:
        np.savez(args.save, **saved)


if __name__ == "__main__":
    main()
