"""Training speed of nn_core against scikit-learn's MLPClassifier and PyTorch on the CPU.

Run from the repository root::

    python benchmarks/train_speed.py            # 5 rounds, 3 epochs per mini-batch run
    python benchmarks/train_speed.py --quick    # 1 round, 1 epoch: a smoke test

Every implementation trains the same architecture on the same data (the 60,000 MNIST
training images scaled to 0..1, float32), with the same batch size, optimizer, learning
rate and number of epochs, and is scored on the official 10,000 test images. Each
measurement runs in its own child process, so that peak memory (``ru_maxrss``) is that of
one implementation alone and no library's threads linger into another's timing. The
implementations alternate within each round (nn_core, PyTorch, scikit-learn, GEMMs, ...),
and the report gives medians over rounds. Beside each ratio it prints the range of the
per-round ratios (each taken between runs minutes apart), which shows how far the noise
of a shared machine moves it.

"GEMM bound": the time of only the matrix multiplications of one epoch at the network's
shapes (forward products, weight gradients, and the backward products that carry the
gradient to the hidden layers; none for the input), written into preallocated buffers
with transposes as views; for full-batch training in chunks of rows dealt to two threads
with single-threaded BLAS, as nn_core does.
An implementation that computes exact gradients with these products cannot take less
time (a different library's kernels can); nn_core's epoch is reported as a multiple of it.

PyTorch is optional (``pip install torch`` CPU build); it runs with 2 intra-op threads.
It is never a dependency of digitlab.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH = 128
LR = 1e-3
FULL_BATCH_LR = 0.1
SEED = 0
TORCH_THREADS = 2

# name -> (hidden sizes, mode); "minibatch" = Adam, batch 128; "fullbatch" = plain GD.
ARCHITECTURES = {
    "784-10-10": ((10,), "fullbatch"),
    "784-128-64-10": ((128, 64), "minibatch"),
    "784-256-128-10": ((256, 128), "minibatch"),
}
IMPLEMENTATIONS = ("nn_core", "torch", "sklearn_fit", "sklearn_partial_fit", "gemm")


# --------------------------------------------------------------------------- data
def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST as uint8 images (n, 28, 28) and int64 labels."""
    from nn_core.data import load_mnist

    data = load_mnist()
    return data.x_train, data.y_train, data.x_test, data.y_test


def scaled(x: np.ndarray) -> np.ndarray:
    """Flattened float32 pixels in 0..1, what scikit-learn and PyTorch are given."""
    out = x.reshape(x.shape[0], -1).astype(np.float32)
    out *= np.float32(1 / 255)
    return out


def epoch_orders(n: int, epochs: int) -> list[np.ndarray]:
    """The batch order nn_core's Trainer draws (seed 0, no validation split), reproduced
    so that PyTorch sees the same batches in the same order."""
    shuffle_seed = np.random.SeedSequence(SEED).spawn(4)[1]
    rng = np.random.default_rng(shuffle_seed)
    idx = np.arange(n, dtype=np.int64)
    return [rng.permutation(idx) for _ in range(epochs)]


# --------------------------------------------------------------------------- children
class EpochClock:
    """Wall and CPU seconds (every thread of the process) of each timed epoch. CPU time
    moves less than wall time when other work shares the cores."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self, epochs: int = 1) -> None:
        wall = time.perf_counter() - self._wall
        cpu = time.process_time() - self._cpu
        self.wall += [wall / epochs] * epochs
        self.cpu += [cpu / epochs] * epochs

    def result(self, accuracy: float) -> dict:
        return {"epoch_seconds": self.wall, "epoch_cpu_seconds": self.cpu, "accuracy": accuracy}


def run_nn_core(hidden, mode, epochs, data) -> dict:
    from nn_core import TrainConfig, Trainer

    x_train, y_train, x_test, y_test = data
    if mode == "fullbatch":
        config = TrainConfig(
            hidden=hidden, optimizer="gd", lr=FULL_BATCH_LR, batch_size=0, epochs=epochs
        )
    else:
        config = TrainConfig(
            hidden=hidden, optimizer="adam", lr=LR, batch_size=BATCH, epochs=epochs
        )
    config = config.replace(val_fraction=0.0, seed=SEED)
    trainer = Trainer(config, x_train, y_train)
    clock = EpochClock()
    for _ in range(epochs):
        clock.start()
        trainer.run(max_batches=trainer.batches_per_epoch)
        clock.stop()
    accuracy = float(np.mean(trainer.model.predict(x_test) == y_test))
    return clock.result(accuracy)


def run_torch(hidden, mode, epochs, data) -> dict:
    import torch

    torch.set_num_threads(TORCH_THREADS)
    torch.manual_seed(SEED)
    x_train, y_train, x_test, y_test = data
    x = torch.from_numpy(scaled(x_train))
    y = torch.from_numpy(np.array(y_train))  # a writable copy
    sizes = (x.shape[1], *hidden, 10)
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    loss_fn = torch.nn.CrossEntropyLoss()
    if mode == "fullbatch":
        optimizer = torch.optim.SGD(model.parameters(), lr=FULL_BATCH_LR)
        orders = [None] * epochs
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        orders = [torch.from_numpy(o) for o in epoch_orders(x.shape[0], epochs)]
    clock = EpochClock()
    for order in orders:
        clock.start()
        if order is None:
            batches = [(x, y)]
        else:
            batches = (
                (x[order[i : i + BATCH]], y[order[i : i + BATCH]])
                for i in range(0, x.shape[0], BATCH)
            )
        for xb, yb in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
        clock.stop()
    with torch.no_grad():
        pred = model(torch.from_numpy(scaled(x_test))).argmax(dim=1).numpy()
    return clock.result(float(np.mean(pred == y_test)))


def _sklearn_model(hidden, mode, epochs):
    from sklearn.neural_network import MLPClassifier

    common = dict(
        hidden_layer_sizes=hidden,
        activation="relu",
        alpha=0.0,  # no L2: nn_core and PyTorch use none either
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=10**9,
        random_state=SEED,
    )
    if mode == "fullbatch":
        return MLPClassifier(
            solver="sgd",
            batch_size=60_000,
            learning_rate_init=FULL_BATCH_LR,
            momentum=0.0,
            nesterovs_momentum=False,
            shuffle=False,
            **common,
        )
    return MLPClassifier(solver="adam", batch_size=BATCH, learning_rate_init=LR, **common)


def run_sklearn(hidden, mode, epochs, data, partial: bool) -> dict:
    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)
    x_train, y_train, x_test, y_test = data
    x, x_te = scaled(x_train), scaled(x_test)
    model = _sklearn_model(hidden, mode, epochs)
    clock = EpochClock()
    if partial:
        for _ in range(epochs):
            clock.start()
            model.partial_fit(x, y_train, classes=np.arange(10))
            clock.stop()
    else:
        clock.start()
        model.fit(x, y_train)
        clock.stop(epochs)
        if model.n_iter_ != epochs:
            raise RuntimeError(f"scikit-learn ran {model.n_iter_} epochs, not {epochs}")
    return clock.result(float(np.mean(model.predict(x_te) == y_test)))


def run_gemm(hidden, mode, epochs, data) -> dict:
    """Only the matrix products of training epochs, at nn_core's shapes and layout."""
    if mode == "fullbatch":
        return run_gemm_full_batch(hidden, epochs, data)
    from nn_core.network import GRADIENT_CHUNK

    x_train = data[0]
    n = x_train.shape[0]
    # full batch: nn_core takes the products GRADIENT_CHUNK rows at a time, so do the same
    batch = GRADIENT_CHUNK if mode == "fullbatch" else BATCH
    x = scaled(x_train[:batch])  # the same rows every step: fine for timing products
    sizes = (x.shape[1], *hidden, 10)
    rng = np.random.default_rng(SEED)
    pairs = itertools.pairwise(sizes)
    weights = [rng.standard_normal(pair, np.float32) * 0.05 for pair in pairs]
    grads = [np.empty_like(w) for w in weights]
    acts = [np.empty((batch, b), np.float32) for b in sizes[1:]]
    deltas = [rng.standard_normal((batch, b), np.float32) for b in sizes[1:]]
    batch_sizes = [batch] * (n // batch) + ([n % batch] if n % batch else [])

    def one_step(rows: int) -> None:
        h = x[:rows]
        for w, a in zip(weights, acts):
            np.matmul(h, w, out=a[:rows])
            h = a[:rows]
        for i in range(len(weights) - 1, -1, -1):
            inputs = x[:rows] if i == 0 else acts[i - 1][:rows]
            np.matmul(inputs.T, deltas[i][:rows], out=grads[i])
            if i:
                np.matmul(deltas[i][:rows], weights[i].T, out=deltas[i - 1][:rows])

    clock = EpochClock()
    for _ in range(epochs):
        clock.start()
        for rows in batch_sizes:
            one_step(rows)
        clock.stop()
    return clock.result(float("nan"))


def run_gemm_full_batch(hidden, epochs, data) -> dict:
    """The products of full-batch iterations as nn_core takes them (nn_core.full_batch):
    chunks of GRADIENT_CHUNK rows dealt to two lanes, one thread each, with single-threaded
    BLAS; all 784 inputs (nn_core drops those that are zero in every image, so it can beat
    this bound)."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    from nn_core.full_batch import LANES
    from nn_core.network import GRADIENT_CHUNK

    x = scaled(data[0])
    n, chunk = x.shape[0], GRADIENT_CHUNK
    sizes = (x.shape[1], *hidden, 10)
    rng = np.random.default_rng(SEED)
    weights = [rng.standard_normal(pair, np.float32) * 0.05 for pair in itertools.pairwise(sizes)]

    def lane(first: int) -> None:
        acts = [np.empty((chunk, b), np.float32) for b in sizes[1:]]
        deltas = [np.ones((chunk, b), np.float32) for b in sizes[1:]]
        grads = [np.empty_like(w) for w in weights]
        for start in range(first * chunk, n, LANES * chunk):
            rows = min(chunk, n - start)
            h = x[start : start + rows]
            for w, a in zip(weights, acts):
                np.matmul(h, w, out=a[:rows])
                h = a[:rows]
            for i in range(len(weights) - 1, -1, -1):
                inputs = x[start : start + rows] if i == 0 else acts[i - 1][:rows]
                np.matmul(inputs.T, deltas[i][:rows], out=grads[i])
                if i:
                    np.matmul(deltas[i][:rows], weights[i].T, out=deltas[i - 1][:rows])

    clock = EpochClock()
    with ThreadPoolExecutor(LANES) as pool, threadpool_limits(1, "blas"):
        for _ in range(epochs):
            clock.start()
            list(pool.map(lane, range(LANES)))
            clock.stop()
    return clock.result(float("nan"))


def child_main(impl: str, arch: str, epochs: int) -> None:
    hidden, mode = ARCHITECTURES[arch]
    data = load_data()
    if impl == "nn_core":
        result = run_nn_core(hidden, mode, epochs, data)
    elif impl == "torch":
        result = run_torch(hidden, mode, epochs, data)
    elif impl == "sklearn_fit":
        result = run_sklearn(hidden, mode, epochs, data, partial=False)
    elif impl == "sklearn_partial_fit":
        result = run_sklearn(hidden, mode, epochs, data, partial=True)
    else:
        result = run_gemm(hidden, mode, epochs, data)
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


# --------------------------------------------------------------------------- parent
def torch_available() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def run_child(impl: str, arch: str, epochs: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", impl, arch, str(epochs)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{impl} on {arch} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def blas_note() -> str:
    from threadpoolctl import threadpool_info

    parts = []
    for lib in threadpool_info():
        if lib.get("user_api") == "blas" and "numpy" in lib.get("filepath", ""):
            parts.append(
                f"numpy BLAS: {lib['internal_api']} {lib.get('version')}, kernel "
                f"{lib.get('architecture')}, {lib['num_threads']} threads"
            )
    env = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_"))}
    parts.append(f"BLAS/OpenMP environment: {env or 'none set'}")
    return "; ".join(parts)


def load_text() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per mini-batch run")
    parser.add_argument("--iterations", type=int, default=50, help="full-batch GD iterations")
    parser.add_argument("--arch", nargs="*", default=list(ARCHITECTURES), choices=ARCHITECTURES)
    parser.add_argument("--skip", nargs="*", default=[], choices=IMPLEMENTATIONS)
    parser.add_argument("--quick", action="store_true", help="1 round, 1 epoch, 10 iterations")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child[0], args.child[1], int(args.child[2]))
        return
    if args.quick:
        args.rounds, args.epochs, args.iterations = 1, 1, 10

    impls = [i for i in IMPLEMENTATIONS if i not in args.skip]
    notes = []
    if "torch" in impls and not torch_available():
        impls.remove("torch")
        notes.append("PyTorch is not installed: its column is skipped (pip install torch, CPU).")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    print(blas_note())
    load_at_start = load_text()
    print(f"load average (1, 5, 15 min): {load_at_start}; other work on the machine skews timings")
    for note in notes:
        print(note)

    results: dict[str, dict[str, list[dict]]] = {}
    for arch in args.arch:
        mode = ARCHITECTURES[arch][1]
        epochs = args.iterations if mode == "fullbatch" else args.epochs
        results[arch] = {impl: [] for impl in impls}
        for r in range(args.rounds):
            # rotate the starting implementation so that none always runs first
            order = impls[r % len(impls) :] + impls[: r % len(impls)]
            for impl in order:
                res = run_child(impl, arch, epochs)
                results[arch][impl].append(res)
                print(
                    f"  {arch} round {r + 1} {impl:20s} "
                    f"{statistics.median(res['epoch_seconds']):.4f} s/epoch "
                    f"acc {fmt(res['accuracy'], 4)} peak {res['peak_mib']:.0f} MiB",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    report(results, args)
    print(f"load average at start {load_at_start}, at the end {load_text()}")


def report(results: dict, args: argparse.Namespace) -> None:
    print()
    unit = {"minibatch": "s/epoch", "fullbatch": "s/iteration"}
    for arch, by_impl in results.items():
        mode = ARCHITECTURES[arch][1]
        n = args.iterations if mode == "fullbatch" else args.epochs
        what = (
            f"full-batch GD lr {FULL_BATCH_LR}, {n} iterations"
            if mode == "fullbatch"
            else f"Adam lr {LR}, batch {BATCH}, {n} epochs"
        )
        print(
            f"{arch} ({what}), medians of {args.rounds} rounds, {unit[mode]} "
            "(wall; CPU: of every thread)"
        )
        med, per_round, cpu = {}, {}, {}
        for impl, runs in by_impl.items():
            per_round[impl] = [statistics.median(r["epoch_seconds"]) for r in runs]
            cpu[impl] = [statistics.median(r["epoch_cpu_seconds"]) for r in runs]
            seconds = statistics.median(per_round[impl])
            acc = statistics.median(r["accuracy"] for r in runs)
            peak = statistics.median(r["peak_mib"] for r in runs)
            med[impl] = seconds
            peak_text = "" if impl == "gemm" else f"peak {peak:5.0f} MiB"
            print(
                f"  {impl:20s} {seconds:8.4f}   CPU {statistics.median(cpu[impl]):8.4f}   "
                f"test acc {fmt(acc, 4):>6s}   {peak_text}"
            )
        ours = med.get("nn_core")
        if ours:
            for other, label in (
                ("torch", "PyTorch"),
                ("sklearn_fit", "scikit-learn fit"),
                ("sklearn_partial_fit", "scikit-learn partial_fit"),
            ):
                if other in med:
                    spread = round_ratios(per_round["nn_core"], per_round[other])
                    cpu_ratio = statistics.median(cpu["nn_core"]) / statistics.median(cpu[other])
                    print(
                        f"  nn_core / {label}: {ours / med[other]:.2f}{spread}; "
                        f"CPU seconds {cpu_ratio:.2f}{round_ratios(cpu['nn_core'], cpu[other])}"
                    )
            if "gemm" in med:
                spread = round_ratios(per_round["nn_core"], per_round["gemm"])
                print(f"  nn_core / GEMM bound: {ours / med['gemm']:.2f}x{spread}")
        print()


def round_ratios(ours: list[float], theirs: list[float]) -> str:
    """The range of the per-round ratios, as text (empty for a single round)."""
    ratios = [a / b for a, b in zip(ours, theirs)]
    if len(ratios) < 2:
        return ""
    return f"   (per round {min(ratios):.2f} to {max(ratios):.2f})"


if __name__ == "__main__":
    main()
