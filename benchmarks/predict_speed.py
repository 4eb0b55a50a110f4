"""Prediction latency: one drawn digit (preprocessing included) and the whole test set.

Run from the repository root::

    python benchmarks/predict_speed.py

The drawing is a 280x280 RGBA canvas (white stroke on black, the Draw page's size) made by
enlarging MNIST test images tenfold; it goes through ``preprocess_drawing`` (bounding box,
scale to 20 px, centre of mass) and then ``MLP.predict_proba``. Timings are medians; the
networks are untrained (prediction costs the same whatever the weights).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nn_core import MLP, PRESETS
from nn_core.data import load_mnist
from nn_core.preprocess import preprocess_drawing

CANVAS = 280


def canvas_of(image: np.ndarray) -> np.ndarray:
    """A (280, 280, 4) opaque RGBA canvas showing ``image`` (28x28) enlarged tenfold."""
    big = np.kron(image, np.ones((CANVAS // 28, CANVAS // 28), np.uint8))
    rgba = np.empty((CANVAS, CANVAS, 4), np.uint8)
    rgba[..., :3] = big[..., None]
    rgba[..., 3] = 255
    return rgba


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    data = load_mnist()
    canvases = [canvas_of(img) for img in data.x_test[:50]]
    print(
        f"{'network':24s} {'drawing -> class, ms':>22s} {'of which preprocess':>20s} "
        f"{'10,000 test images, ms':>24s}"
    )
    for name in ("fast", "accurate", "best"):
        config = PRESETS[name]
        model = MLP(784, config.hidden, 10, seed=0)
        state = {"i": 0}

        def one_drawing(model=model, state=state) -> int:
            canvas = canvases[state["i"] % len(canvases)]
            state["i"] += 1
            image = preprocess_drawing(canvas)
            return int(model.predict_proba(image[None])[0].argmax())

        def preprocess_only(state=state) -> None:
            canvas = canvases[state["i"] % len(canvases)]
            state["i"] += 1
            preprocess_drawing(canvas)

        single = median_seconds(one_drawing, args.repeats)
        prep = median_seconds(preprocess_only, args.repeats)
        test_set = median_seconds(lambda model=model: model.predict(data.x_test), 15)
        arch = "-".join(map(str, model.sizes))
        print(
            f"{name + ' ' + arch:24s} {single * 1e3:22.2f} {prep * 1e3:20.2f} "
            f"{test_set * 1e3:24.1f}"
        )


if __name__ == "__main__":
    main()
