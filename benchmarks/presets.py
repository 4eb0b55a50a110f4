"""Train the named presets on the full MNIST and report test accuracy, time and seed.

Run from the repository root::

    python benchmarks/presets.py                       # notebook, accurate, best
    python benchmarks/presets.py accurate --seed 1 2 3
    python benchmarks/presets.py best --set epochs=2 augment_elastic=0   # a variant

Each preset trains on MNIST's 60,000 training images (less the preset's validation
share) exactly as the app and the CLI would, through ``Trainer``, and is scored on the
official 10,000 test images. "training s" is the time of the training steps
(``History.seconds_per_epoch``); "wall s" adds the per-epoch validation and bookkeeping.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nn_core import PRESETS, Callbacks, TrainConfig, Trainer
from nn_core.data import load_mnist
from nn_core.settings import parse_hidden


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("presets", nargs="*", default=["notebook", "accurate", "best"])
    parser.add_argument("--seed", type=int, nargs="*", help="default: the preset's own seed")
    parser.add_argument(
        "--verbose", action="store_true", help="print every epoch, with its test accuracy"
    )
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="FIELD=VALUE",
        help="change TrainConfig fields of every preset run, e.g. epochs=60 hidden=800,800",
    )
    args = parser.parse_args()
    changes = dict(_parse_change(text) for text in args.set)
    data = load_mnist()
    rows = []
    for name in args.presets:
        base = PRESETS[name]
        for seed in args.seed or [base.seed]:
            config = base.replace(seed=seed, **changes)
            printer = _printer(name, data.x_test, data.y_test)
            callbacks = Callbacks(on_epoch=[printer] if args.verbose else [])
            trainer = Trainer(config, data.x_train, data.y_train, callbacks=callbacks)
            start = time.perf_counter()
            trainer.fit()
            wall = time.perf_counter() - start
            _, test_accuracy = trainer.evaluate(data.x_test, data.y_test)
            train_seconds = sum(trainer.history.seconds_per_epoch)
            rows.append((name, seed, trainer, test_accuracy, train_seconds, wall))
            print(
                f"{name}: seed {seed}, {trainer.epochs_done} epochs on {trainer.n_train} "
                f"images, test accuracy {test_accuracy:.2%}, training {train_seconds:.1f} s, "
                f"wall {wall:.1f} s",
                flush=True,
            )
    print()
    print(
        f"{'preset':10s} {'seed':>4s} {'network':>16s} {'epochs':>6s} {'train n':>7s} "
        f"{'test acc':>8s} {'training s':>10s} {'wall s':>7s}"
    )
    for name, seed, trainer, acc, seconds, wall in rows:
        arch = "-".join(map(str, trainer.model.sizes))
        print(
            f"{name:10s} {seed:4d} {arch:>16s} {trainer.epochs_done:6d} {trainer.n_train:7d} "
            f"{acc:8.2%} {seconds:10.1f} {wall:7.1f}"
        )
    for name in dict.fromkeys(args.presets):
        print(f"{name}: {PRESETS[name].replace(**changes)}")


def _parse_change(text: str) -> tuple[str, object]:
    """``"epochs=60"`` -> ("epochs", 60), typed like the field's default."""
    name, _, value = text.partition("=")
    default = getattr(TrainConfig(), name, None)
    if default is None or not value:
        raise SystemExit(f"--set takes FIELD=VALUE with a TrainConfig field, got {text!r}")
    if isinstance(default, tuple):
        return name, parse_hidden(value)
    if isinstance(default, bool):
        return name, value.lower() in ("1", "true", "yes")
    return name, type(default)(value)


def _printer(name: str, x_test, y_test):
    def on_epoch(trainer: Trainer, info: dict) -> None:
        _, test_accuracy = trainer.evaluate(x_test, y_test)
        print(
            f"  {name} epoch {info['epoch']}: train loss {info['train_loss']:.4f}, "
            f"val acc {info['val_accuracy']:.4f}, test acc {test_accuracy:.4f}, "
            f"{info['seconds']:.2f} s",
            flush=True,
        )

    return on_epoch


if __name__ == "__main__":
    main()
