"""What watching the inside of a network costs: the health recorder's share of training
time, and how long each panel of the Network page takes to redraw.

1. Training with and without ``nn_core.health.watch_training`` (health records and
   per-epoch weight snapshots), in this process, on the Accurate preset by default: the
   two runs advance one step each in turn and every step is timed (wall and CPU), so
   both share the machine's moments. A pair of unwatched runs first gives the noise.
   Prints the ratios (the issue allows 1.05) and the recorder's own seconds over the
   training's.
2. Every panel's numbers and Plotly figures (serialised to JSON as Streamlit sends them)
   for the network that run trained, against the 300 ms target: Health (warnings and five
   figures), Hidden space (a frame of 2,000 test images: forward, PCA, alignment; a replay
   frame from the cache; the whole replay cold), Units (the layer's responses to the test
   set, the top 16, the synthesised input). t-SNE, computed on request, is timed too.

    python benchmarks/health_speed.py                  # Accurate preset, 2 rounds
    python benchmarks/health_speed.py --epochs 3       # shorter runs
    python benchmarks/health_speed.py --preset fast --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import plotly.io as pio
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nn_core import PRESETS, Trainer
from nn_core import hidden_space as hs
from nn_core.data import load_mnist
from nn_core.health import warnings, watch_training
from nn_core.unit_views import layer_responses, maximise_unit, top_images
from ui import network_figures as nf
from ui.hidden_space import compute_frame
from ui.units import BLUR, L2, STEPS

TARGET_MS = 300.0


def interleaved(config, data, watched: bool) -> tuple[dict, dict, object, object]:
    """Train two copies of the same run side by side, one step of each in turn (the order
    swapped every step), the second with the watch when ``watched``; every step timed
    with the wall clock and with this thread's CPU clock (one BLAS thread computes in the
    calling thread), its callbacks, validation and snapshots included."""
    first = Trainer(config, data.x_train, data.y_train, n_classes=data.n_classes)
    second = Trainer(config, data.x_train, data.y_train, n_classes=data.n_classes)
    watch = watch_training(second) if watched else None
    wall = {"first": 0.0, "second": 0.0}
    cpu = dict(wall)
    turn = 0
    while not (first.finished and second.finished):
        pair = [("first", first), ("second", second)]
        for name, run in pair if turn % 2 == 0 else pair[::-1]:
            start, start_cpu = time.perf_counter(), time.thread_time()
            run.step()
            wall[name] += time.perf_counter() - start
            cpu[name] += time.thread_time() - start_cpu
        turn += 1
    return wall, cpu, second, watch


def cost(config, data, rounds: int, control: bool) -> tuple[Trainer, object]:
    """Print the watched run's time over the plain run's, per round; with ``control``, an
    unwatched pair first (its ratio is the noise of the measurement). Returns the last
    watched run."""
    if control:
        wall, cpu, _, _ = interleaved(config, data, watched=False)
        print(
            f"  control, both plain: ratio {wall['second'] / wall['first']:.3f} wall, "
            f"{cpu['second'] / cpu['first']:.3f} CPU (the measurement's noise)"
        )
    walls, cpus, shares = [], [], []
    trainer = watch = None
    for r in range(rounds):
        wall, cpu, trainer, watch = interleaved(config, data, watched=True)
        walls.append(wall["second"] / wall["first"])
        cpus.append(cpu["second"] / cpu["first"])
        shares.append(watch.health.seconds / wall["second"])
        print(
            f"  round {r + 1}: plain {wall['first']:6.1f} s (CPU {cpu['first']:5.1f}), watched "
            f"{wall['second']:6.1f} s (CPU {cpu['second']:5.1f}): ratio {walls[-1]:.3f} wall, "
            f"{cpus[-1]:.3f} CPU; the recorder's own {watch.health.seconds:.2f} s in "
            f"{len(watch.health.records)} records = {shares[-1]:.1%}; snapshots: "
            f"{len(watch.snapshots.epochs())} epochs, {watch.snapshots.nbytes / 2**20:.1f} MB"
        )
    print(
        f"recorder cost (target < 1.05): ratio {statistics.median(walls):.3f} wall, "
        f"{statistics.median(cpus):.3f} CPU (medians of {rounds}); the recorder's own time "
        f"{statistics.median(shares):.1%} of training"
    )
    return trainer, watch


def timed(label: str, work, repeat: int = 3) -> object:
    """Run ``work`` ``repeat`` times; print the median wall and CPU milliseconds."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        result = work()
        walls.append((time.perf_counter() - start) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    flag = "ok" if cpu < TARGET_MS else "OVER"
    print(f"  {label:<58} {wall:8.1f} ms (CPU {cpu:7.1f})  {flag}")
    return result


def as_json(*figures) -> int:
    return sum(len(pio.to_json(f, validate=False)) for f in figures)


def panels(trainer: Trainer, watch, data) -> None:
    model = trainer.model
    records = watch.health.snapshot()
    history = trainer.history
    print(
        f"panels for {'-'.join(map(str, model.sizes))} ({len(records)} records), target "
        f"{TARGET_MS:g} ms each (judged on CPU time: the wall clock of a shared machine "
        "counts the other processes' turns)"
    )

    def health():
        found = warnings(records, history, trainer.divergence)
        return found, as_json(
            nf.gradient_figure(records, relative=True),
            nf.update_figure(records),
            nf.units_figure(records, model.activation),
            nf.loss_figure(history),
            nf.histogram_figure(records[-1], "weights"),
        )

    timed("Health: warnings + 5 figures as JSON", health)

    rows = hs.sample_rows(data.y_test)
    images, labels = data.x_test[rows], data.y_test[rows]
    snapshots = watch.snapshots

    def chain():
        frames, previous = {}, None
        for epoch in snapshots.epochs():
            frames[epoch] = previous = compute_frame(
                snapshots.model_at(epoch, model), images, 0, previous
            )
        return frames

    frames = timed(f"Hidden space: whole replay cold ({len(snapshots.epochs())} frames)", chain, 1)
    last = frames[max(frames)]

    def now_frame():
        frame = compute_frame(model, images, 0, last)
        coords = frame.projection.coords
        ranges = nf.padded_ranges([f.projection.coords for f in frames.values()])
        return as_json(
            nf.hidden_space_figure(
                coords, labels, frame.predictions, data.class_names, "now", ranges
            )
        )

    timed("Hidden space: frame now (forward, PCA, align) + figure", now_frame)

    def cached_frame():
        frame = frames[min(frames)]
        return as_json(
            nf.hidden_space_figure(
                frame.projection.coords, labels, frame.predictions, data.class_names, "epoch"
            )
        )

    timed("Hidden space: a replay frame from the cache + figure", cached_frame)
    hidden = hs.hidden_representation(model, images, 0)
    timed("Hidden space: t-SNE of 2,000 points (on request)", lambda: hs.tsne_embedding(hidden), 1)

    responses = timed(
        "Units: layer 1's responses to 10,000 test images (cold)",
        lambda: layer_responses(model, data.x_test, 0),
        1,
    )
    timed(
        "Units: top 16 images + mosaic (warm)",
        lambda: nf.mosaic(data.x_test[top_images(responses[:, 5:6], 16)[0][:, 0]], 8),
    )
    timed(
        "Units: synthesised input (cold, cached per unit)",
        lambda: maximise_unit(model, 0, 5, steps=STEPS, l2=L2, blur=BLUR),
        1,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="accurate", choices=sorted(PRESETS))
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--no-control", action="store_true", help="skip the unwatched pair (the noise floor)"
    )
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (the app's default)")
    args = parser.parse_args(argv)
    config = PRESETS[args.preset]
    if args.epochs:
        config = config.replace(epochs=args.epochs)
    data = load_mnist()
    print(
        f"preset {args.preset}, {config.epochs} epochs, {args.threads} BLAS thread(s), load "
        f"average {os.getloadavg()[0]:.1f}"
    )
    with threadpool_limits(args.threads):
        trainer, watch = cost(config, data, args.rounds, not args.no_control)
        panels(trainer, watch, data)


if __name__ == "__main__":
    main()
