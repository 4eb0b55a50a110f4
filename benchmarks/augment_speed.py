"""Cost of each augmentation over one epoch of MNIST (60,000 images, batches of 128).

Run from the repository root::

    python benchmarks/augment_speed.py

Prints, per augmentation, the wall and CPU seconds (user + system) of one epoch's worth
of batches, and the page faults per batch; then the same for the Best preset's training
steps without augmentation, as the scale the augmentation adds to. CPU time is the
steadier figure on a shared machine; the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nn_core import PRESETS, Trainer
from nn_core.augment import augment_batch
from nn_core.data import load_mnist

BATCH = 128

AUGMENTATIONS = {
    "shift 1 px": {"max_shift": 1},
    "rotation 10 degrees": {"max_degrees": 10.0},
    "elastic alpha 36, sigma 6": {"elastic_alpha": 36.0, "elastic_sigma": 6.0},
    "Best: elastic + shift 1 px": {"elastic_alpha": 36.0, "elastic_sigma": 6.0, "max_shift": 1},
}


def measure(fn, batches: int) -> tuple[float, float, float]:
    """(wall s, CPU s, page faults per call) of ``batches`` calls of ``fn``."""
    for _ in range(5):
        fn()  # warm up (work arrays, caches)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(batches):
        fn()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, (after.ru_minflt - before.ru_minflt) / batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=60_000, help="images in an epoch")
    args = parser.parse_args()
    data = load_mnist()
    images = data.x_train.reshape(-1, 28, 28)
    batches = -(-args.images // BATCH)
    print(f"load average {os.getloadavg()[0]:.2f}; {batches} batches of {BATCH} images")
    print(f"{'':30s} {'wall s':>8s} {'CPU s':>8s} {'faults/batch':>13s}")
    rng = np.random.default_rng(0)
    order = rng.permutation(images.shape[0])
    position = iter(range(10**9))

    def batch() -> np.ndarray:
        start = (next(position) * BATCH) % (images.shape[0] - BATCH)
        return images[order[start : start + BATCH]]

    for name, options in AUGMENTATIONS.items():
        wall, cpu, faults = measure(lambda o=options: augment_batch(batch(), rng, **o), batches)
        print(f"{name:30s} {wall:8.2f} {cpu:8.2f} {faults:13.1f}")
    config = PRESETS["best"].replace(augment_elastic=0.0, augment_shift=0)
    trainer = Trainer(config, data.x_train, data.y_train)
    wall, cpu, faults = measure(trainer.step, batches)
    print(f"{'Best training steps, no augm.':30s} {wall:8.2f} {cpu:8.2f} {faults:13.1f}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
