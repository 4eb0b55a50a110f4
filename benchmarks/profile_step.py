"""Where the time of one training step goes, part by part.

Run from the repository root::

    python benchmarks/profile_step.py                      # 784-128-64-10 and 784-256-128-10
    python benchmarks/profile_step.py --hidden 800 800 --dropout 0.3 --shift 2

The step is taken apart with the same calls ``Trainer.step`` and ``MLP.loss_and_gradient``
make, each timed on its own (median over ``--steps`` steps, microseconds), then the real
``Trainer.step`` is timed whole, so that the parts can be checked against the total.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nn_core import TrainConfig, Trainer
from nn_core.activations import ACTIVATIONS
from nn_core.augment import augment_batch
from nn_core.data import load_mnist


class Clock:
    """Accumulates the time of named parts within a step."""

    def __init__(self) -> None:
        self.parts: dict[str, list[float]] = defaultdict(list)
        self._step: dict[str, float] = defaultdict(float)
        self._last = 0.0

    def start(self) -> None:
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self._step[name] += now - self._last
        self._last = now

    def end_step(self) -> None:
        for name, seconds in self._step.items():
            self.parts[name].append(seconds)
        self._step.clear()


def profiled_step(trainer: Trainer, clock: Clock) -> None:
    """One step of ``trainer``, the same work as ``Trainer.step``, with laps between parts."""
    model, c = trainer.model, trainer.config
    batch = trainer.batch_size
    clock.start()
    if trainer._position == 0:
        trainer._order = trainer._epoch_order()
    # the permutation is drawn once per epoch: charge each step its share
    clock.lap("shuffle (once per epoch)")
    idx = trainer._order[trainer._position : trainer._position + batch]
    n = idx.shape[0]
    raw = np.take(trainer.x, idx, axis=0, out=trainer._batch_u8[:n], mode="clip")
    clock.lap("gather uint8 batch")
    if c.augment_shift or c.augment_rotation:
        raw = augment_batch(
            raw.reshape(n, *trainer.image_shape),
            trainer._augment_rng,
            c.augment_shift,
            c.augment_rotation,
        ).reshape(n, -1)
        clock.lap("augmentation")
    x = trainer._batch_x[:n]
    model.scale_inputs(raw, out=x)
    y = trainer.y[idx]
    clock.lap("scale to float32")

    lr = trainer._current_lr()
    buf = model._batch_buffers(n, c.dropout > 0)
    forward, backward = ACTIVATIONS[model.activation]
    keep = 1.0 - c.dropout
    h = x
    last = model.n_layers - 1
    for i, (weight, bias) in enumerate(zip(model.weights, model.biases)):
        z = buf.activations[i][:n]
        np.matmul(h, weight, out=z)
        clock.lap("GEMM forward")
        z += bias
        clock.lap("bias add")
        if i == last:
            break
        forward(z)
        clock.lap("activation forward")
        h = z
        if c.dropout:
            h = buf.dropped[i][:n]
            model._dropout(z, buf.masks[i][:n], h, keep, trainer._dropout_rng)
            clock.lap("dropout masks")
    loss, delta, correct = model._softmax_loss_and_delta(z, y, buf)
    clock.lap("softmax, loss, accuracy, output gradient")
    ones = buf.ones[:n]
    for i in range(last, -1, -1):
        if i == 0:
            inputs = x
        elif c.dropout:
            inputs = buf.dropped[i - 1][:n]
        else:
            inputs = buf.activations[i - 1][:n]
        np.matmul(inputs.T, delta, out=model.weight_grads[i])
        clock.lap("GEMM weight gradients")
        np.matmul(ones, delta, out=model.bias_grads[i])
        clock.lap("bias gradients")
        if i == 0:
            break
        upstream = buf.deltas[i - 1][:n]
        np.matmul(delta, model.weights[i].T, out=upstream)
        clock.lap("GEMM backward to hidden")
        if c.dropout:
            upstream *= buf.masks[i - 1][:n]
            clock.lap("dropout masks")
        backward(buf.activations[i - 1][:n], upstream)
        clock.lap("activation backward")
        delta = upstream
    trainer.optimizer.step(model.params, model.grads, lr)
    clock.lap("optimizer update")
    trainer._epoch_sums += (loss * n, correct, n)
    trainer._position += n
    trainer._record_batch(loss, correct / n, lr, n)
    if trainer._position >= trainer.n_train:
        trainer._position = 0  # (epoch-end evaluation is not part of a step)
    clock.lap("trainer bookkeeping")
    clock.end_step()


def profile(config: TrainConfig, data, steps: int) -> None:
    trainer = Trainer(config, data.x_train, data.y_train)
    clock = Clock()
    for _ in range(20):  # warm up buffers and caches
        profiled_step(trainer, Clock())
    for _ in range(steps):
        profiled_step(trainer, clock)
    # the shuffle happens once per epoch; spread it over the epoch's steps
    shuffle = clock.parts.pop("shuffle (once per epoch)")
    per_epoch = [s for s in shuffle if s > 1e-4]
    rows = {name: statistics.median(v) for name, v in clock.parts.items()}
    perm = statistics.median(per_epoch) if per_epoch else _time_permutation(trainer)
    rows["shuffle (once per epoch)"] = perm / trainer.batches_per_epoch
    total_parts = sum(rows.values())
    whole = Trainer(config, data.x_train, data.y_train)
    whole.run(max_batches=20)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        whole.step()
        times.append(time.perf_counter() - start)
    step_median = statistics.median(times)
    gemm = sum(v for k, v in rows.items() if k.startswith("GEMM"))
    print(
        f"\n{'-'.join(map(str, trainer.model.sizes))}, batch {trainer.batch_size}, "
        f"{config.optimizer}, dropout {config.dropout}, shift {config.augment_shift}, "
        f"rotation {config.augment_rotation}; median of {steps} steps"
    )
    print(f"  {'part':28s} {'us':>8s} {'share':>7s}")
    for name, seconds in sorted(rows.items(), key=lambda kv: -kv[1]):
        print(f"  {name:28s} {seconds * 1e6:8.1f} {seconds / total_parts:7.1%}")
    print(f"  {'sum of parts':28s} {total_parts * 1e6:8.1f}")
    print(f"  {'Trainer.step, whole':28s} {step_median * 1e6:8.1f}")
    print(f"  {'all but the GEMMs':28s} {(total_parts - gemm) * 1e6:8.1f}")
    print(
        f"  epoch estimate: {step_median * trainer.batches_per_epoch:.3f} s "
        f"({trainer.batches_per_epoch} steps)"
    )


def _time_permutation(trainer: Trainer) -> float:
    start = time.perf_counter()
    trainer._shuffle_rng.permutation(trainer.train_idx)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, nargs="*", help="one architecture's hidden sizes")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--shift", type=int, default=0)
    parser.add_argument("--rotation", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    data = load_mnist()
    archs = [tuple(args.hidden)] if args.hidden else [(128, 64), (256, 128)]
    for hidden in archs:
        config = TrainConfig(
            hidden=hidden,
            optimizer="adam",
            batch_size=128,
            val_fraction=0.0,
            epochs=100,
            dropout=args.dropout,
            augment_shift=args.shift,
            augment_rotation=args.rotation,
        )
        profile(config, data, args.steps)


if __name__ == "__main__":
    main()
