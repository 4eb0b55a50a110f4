"""Command line for experiments: ``python -m nn_core sweep`` and ``python -m nn_core lr-find``.

``nn_core.cli.build_parser`` registers both (``add_experiment_commands``); they take the
same data and settings flags as ``train``, and report errors the same way (one line each,
exit status 2 for bad arguments, 1 for files or runs that failed, 130 when interrupted).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

from nn_core.config import TrainConfig

SWEEP_EXAMPLE = (
    "python -m nn_core sweep lr=1e-3,3e-3,1e-2 hidden=64,128-64 --preset fast --seeds 0,1 "
    "--out-dir sweep"
)
RESULTS_CSV = "results.csv"
CSV_FIGURES = (
    "status", "epochs", "seconds", "best_val_accuracy", "final_val_accuracy", "test_accuracy",
    "test_loss", "final_train_loss", "n_params",
)  # fmt: skip
INTERRUPTED = 130


def add_experiment_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``sweep`` and ``lr-find`` to the command line's subcommands."""
    _add_sweep(sub)
    _add_lr_find(sub)


def _add_base_settings(p: argparse.ArgumentParser) -> None:
    """The data and training-settings flags of ``train``."""
    from nn_core.cli import add_training_flags

    add_training_flags(p)


def _add_sweep(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="train every combination of one or two settings' values, in parallel",
        description=(
            "Train each combination of the grid's values once per seed, the other settings "
            "from --preset and the flags. Grid: NAME=V1,V2,... per setting (one or two "
            "settings), e.g. lr=1e-3,3e-3 hidden=64,128-64 (hidden layers joined by '-'). "
            "Runs go to parallel processes on this machine, or to a Dask cluster with --dask. "
            f"Writes {RESULTS_CSV} (one row per run, as each finishes) and each run's "
            "model.npz and metrics.json under runs/ in --out-dir; the app imports those as "
            f"runs. Example: {SWEEP_EXAMPLE}"
        ),
    )
    p.add_argument("grid", nargs="+", metavar="NAME=VALUES", help="the settings to vary")
    _add_base_settings(p)
    p.add_argument(
        "--seeds",
        default=None,
        metavar="S",
        help="seeds per combination: 0,1,2 or 0-4 (default: --seed)",
    )
    p.add_argument("--out-dir", type=Path, default=Path("sweep"), help="where results go")
    p.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
        help="training processes on this machine (default: one per core)",
    )  # fmt: skip
    p.add_argument(
        "--blas-threads", type=int, default=None, metavar="N",
        help="matrix-product threads per process (default: cores / jobs, at least 1)",
    )  # fmt: skip
    p.add_argument(
        "--dask", metavar="ADDRESS", default=None,
        help="run on the Dask scheduler at ADDRESS, e.g. tcp://HOST:8786 (needs 'distributed')",
    )  # fmt: skip
    p.add_argument(
        "--dask-timeout", type=float, default=10.0, metavar="S",
        help="seconds to wait for the Dask scheduler (default 10)",
    )  # fmt: skip
    p.add_argument("--max-runs", type=int, default=None, metavar="N", help="cap on runs (500)")
    p.add_argument("--max-seconds", type=float, default=None, help="training time cap per run")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out-dir")
    p.set_defaults(func=cmd_sweep)


def _add_lr_find(sub) -> None:
    p = sub.add_parser(
        "lr-find",
        help="learning-rate range test: loss against a growing rate, and a suggested rate",
        description=(
            "Train a few hundred batches with the learning rate growing exponentially from "
            "--start-lr to --end-lr, with every other setting from --preset and the flags, "
            "and suggest a rate: where the smoothed loss falls fastest. Nothing is saved "
            "but the curve (--csv)."
        ),
    )
    _add_base_settings(p)
    p.add_argument("--batches", type=int, default=200, help="batches in the test (default 200)")
    p.add_argument("--start-lr", type=float, default=1e-6, help="first rate (default 1e-6)")
    p.add_argument("--end-lr", type=float, default=10.0, help="last rate (default 10)")
    p.add_argument("--csv", type=Path, metavar="FILE", help="write lr, loss, smoothed loss")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--blas-threads", type=int, default=1, metavar="N", help="matrix-product threads (1)"
    )
    p.set_defaults(func=cmd_lr_find)


# ------------------------------------------------------------------------- shared
def _base_config(args: argparse.Namespace) -> TrainConfig:
    """The preset with every explicit flag applied, and the subset size checked."""
    from nn_core.cli import UsageError, resolve_config

    config = resolve_config(args)
    if args.train_subset == 0:  # the settings table's "0 = all"
        args.train_subset = None
    if args.train_subset is not None and args.train_subset < 2:
        raise UsageError(f"--train-subset must be 0 (all) or at least 2, got {args.train_subset}")
    return config


def _load(args: argparse.Namespace, config: TrainConfig):
    from nn_core.cli import _load_dataset

    dataset = _load_dataset(args.data, args.test_fraction)
    if args.train_subset is not None:
        dataset = dataset.subset(args.train_subset, seed=config.seed)
    return dataset


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.2f}%"


# ------------------------------------------------------------------------- sweep
def cmd_sweep(args: argparse.Namespace) -> int:
    """Plan the sweep (every problem at once), then train and write each run as it ends."""
    from nn_core.cli import UsageError
    from nn_core.sweep import (
        DEFAULT_MAX_RUNS,
        GridError,
        SweepError,
        parse_grid,
        parse_seeds,
        plan_sweep,
        run_sweep,
    )

    config = _base_config(args)
    _check_sweep_numbers(args, UsageError)
    try:
        grid = parse_grid(args.grid, base=config)
        seeds = None if args.seeds is None else parse_seeds(args.seeds)
        runs = plan_sweep(config, grid, seeds, max_runs=args.max_runs or DEFAULT_MAX_RUNS)
    except GridError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    _prepare_out_dir(args.out_dir, args.force)
    dataset = _load(args, config)
    jobs = max(1, min(args.jobs, len(runs)))
    blas = args.blas_threads or (1 if args.dask else max(1, (os.cpu_count() or 1) // jobs))
    try:
        results = run_sweep(
            runs, dataset, jobs=jobs, dask_address=args.dask, blas_threads=blas,
            max_seconds=args.max_seconds, connect_timeout=args.dask_timeout,
        )  # fmt: skip
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.dask:
        where = f"on the Dask cluster at {args.dask}"
    else:
        where = f"{jobs} processes on this machine" if jobs > 1 else "one after another"
    seeds_text = ",".join(str(s) for s in sorted({r.seed for r in runs}))
    print(
        f"Sweep of {len(runs)} runs ({grid.text()}; seeds {seeds_text}) on {dataset.name}: "
        f"{where}, {blas} BLAS thread(s) per run; results in {args.out_dir}/",
        flush=True,
    )
    return _collect(results, runs, grid, args.out_dir)


def _check_sweep_numbers(args: argparse.Namespace, usage_error: type[Exception]) -> None:
    if args.jobs < 1:
        raise usage_error(f"--jobs must be at least 1, got {args.jobs}")
    if args.blas_threads is not None and args.blas_threads < 1:
        raise usage_error(f"--blas-threads must be at least 1, got {args.blas_threads}")
    if args.max_runs is not None and args.max_runs < 1:
        raise usage_error(f"--max-runs must be at least 1, got {args.max_runs}")
    if args.max_seconds is not None and not args.max_seconds > 0:
        raise usage_error(f"--max-seconds must be positive, got {args.max_seconds}")
    if not args.dask_timeout > 0:
        raise usage_error(f"--dask-timeout must be positive, got {args.dask_timeout}")


def _prepare_out_dir(folder: Path, force: bool) -> None:
    from nn_core.cli import InputFileError

    if folder.exists() and not folder.is_dir():
        raise InputFileError(f"--out-dir {folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise InputFileError(
            f"--out-dir {folder} is not empty, so it was left alone: choose another folder, "
            "or add --force to write into it"
        )
    try:
        (folder / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(f"cannot create {folder}: {exc.strerror or exc}") from exc


def _collect(results, runs, grid, folder: Path) -> int:
    """Write each result as it arrives; the table is rewritten in run order at the end."""
    columns = ["index", "name", *grid.names, "seed", *CSV_FIGURES, "worker", "model", "note"]
    rows: list[dict] = []
    failed = 0
    started = time.perf_counter()
    table = folder / RESULTS_CSV
    try:
        with open(table, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for result in results:
                row = _write_run(result, folder)
                rows.append(row)
                writer.writerow(row)
                f.flush()
                failed += row["status"] == "failed"
                print(_progress_line(len(rows), len(runs), result), flush=True)
    except KeyboardInterrupt:
        print(
            f"error: interrupted; the {len(rows)} runs that finished are in {table}",
            file=sys.stderr,
        )
        _write_table(table, columns, rows)
        return INTERRUPTED
    _write_table(table, columns, rows)
    _print_best(rows, time.perf_counter() - started)
    if failed:
        print(f"error: {failed} of {len(runs)} runs failed (see {table})", file=sys.stderr)
        return 1
    return 0


def _write_run(result, folder: Path) -> dict:
    from nn_core.io import jsonable
    from nn_core.run_record import metrics_document, model_bytes
    from nn_core.sweep import format_value

    record, run = result.record, result.run
    run_dir = folder / "runs" / run.slug
    run_dir.mkdir(parents=True, exist_ok=True)
    document = jsonable({**metrics_document(record), "worker": result.worker})
    (run_dir / "metrics.json").write_text(json.dumps(document, indent=1) + "\n", "utf-8")
    model_path = ""
    if record.model is not None:
        (run_dir / "model.npz").write_bytes(model_bytes(record))
        model_path = str(Path("runs") / run.slug / "model.npz")
    figures = {key: record.metrics.get(key) for key in CSV_FIGURES if key != "status"}

    return {
        "index": run.index,
        "name": run.name,
        **{name: format_value(value) for name, value in run.values},
        "seed": run.seed,
        "status": record.status,
        **{k: "" if v is None else v for k, v in figures.items()},
        "worker": result.worker,
        "model": model_path,
        "note": record.error or record.metrics.get("stop_reason") or "",
    }


def _write_table(path: Path, columns: list[str], rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["index"]))
    os.replace(tmp, path)


def _progress_line(done: int, total: int, result) -> str:
    record = result.record
    if record.status == "failed":
        return f"[{done}/{total}] {result.run.name}: FAILED: {record.error}"
    m = record.metrics
    return (
        f"[{done}/{total}] {result.run.name}: {record.status}, val "
        f"{_pct(m.get('final_val_accuracy'))}, test {_pct(m.get('test_accuracy'))}, "
        f"{m.get('seconds') or 0:.1f} s ({result.worker})"
    )


def _print_best(rows: list[dict], seconds: float) -> None:
    def score(row: dict) -> float:
        value = row.get("best_val_accuracy")
        if value in ("", None):
            value = row.get("test_accuracy")
        return -1.0 if value in ("", None) else float(value)

    finished = [r for r in rows if r["status"] != "failed"]
    print(f"{len(rows)} runs in {seconds:.1f} s.")
    if finished:
        best = max(finished, key=score)
        print(
            f"Best by validation accuracy: {best['name']} (val {_pct(score(best))}, test "
            f"{_pct(float(best['test_accuracy']) if best['test_accuracy'] != '' else None)})"
        )


# ------------------------------------------------------------------------- lr-find
def cmd_lr_find(args: argparse.Namespace) -> int:
    """Run the range test and print the curve (a few rows) and the suggested rate."""
    from threadpoolctl import threadpool_limits

    from nn_core.cli import InputFileError, UsageError, architecture
    from nn_core.lr_finder import find_learning_rate

    config = _base_config(args)
    if args.blas_threads < 1:
        raise UsageError(f"--blas-threads must be at least 1, got {args.blas_threads}")
    if args.csv is not None and not args.csv.resolve().parent.is_dir():
        raise InputFileError(
            f"cannot write {args.csv}: the folder {args.csv.parent} does not exist"
        )
    dataset = _load(args, config)
    if not args.json:
        print(
            f"Range test on {dataset.name}: up to {args.batches} batches of "
            f"{config.batch_size or 'all'} images, learning rate {args.start_lr:g} -> "
            f"{args.end_lr:g} "
            f"({config.optimizer}, hidden {architecture(config.hidden) or 'none'}).",
            flush=True,
        )
    try:
        with threadpool_limits(args.blas_threads, "blas"):
            result = find_learning_rate(
                config, dataset.x_train, dataset.y_train, n_classes=dataset.n_classes,
                start_lr=args.start_lr, end_lr=args.end_lr, n_batches=args.batches,
            )  # fmt: skip
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.csv is not None:
        _write_curve(args.csv, result)
    if args.json:
        from nn_core.io import jsonable

        print(json.dumps(jsonable(result.to_dict())))
        return 0
    _print_curve(result)
    _print_suggestion(result, args.csv)
    return 0


def _write_curve(path: Path, result) -> None:
    from nn_core.cli import InputFileError

    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["lr", "loss", "smoothed_loss"])
            writer.writerows(zip(result.lrs, result.losses, result.smoothed))
    except OSError as exc:
        raise InputFileError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _print_curve(result, rows: int = 12, width: int = 40) -> None:
    """A few rows of the smoothed curve as text bars (longer bar: higher loss)."""
    finite = [v for v in result.smoothed if math.isfinite(v)]
    if not finite:
        return
    top = min(max(finite), 1.5 * finite[0])  # a blown-up end would flatten the rest
    step = max(1, len(result.lrs) // rows)
    print(f"{'lr':>10}  {'loss':>8}")
    for i in range(0, len(result.lrs), step):
        value = result.smoothed[i]
        bar = "#" * round(width * min(value / top, 1.0)) if math.isfinite(value) and top > 0 else ""
        suggested = result.suggested_index
        mark = "  <- suggested" if suggested is not None and i <= suggested < i + step else ""
        print(f"{result.lrs[i]:>10.3g}  {value:>8.4f}  {bar}{mark}")


def _print_suggestion(result, csv_path: Path | None) -> None:
    print(f"Ended: {result.stop_reason} ({result.seconds:.1f} s).")
    if result.suggested_lr is None:
        print(
            "No rate suggested: the loss did not fall over this range. Widen it "
            "(--start-lr, --end-lr) or use more --batches."
        )
    else:
        print(f"Suggested learning rate: {result.suggested_lr:.3g} ({result.method}).")
        print(
            f"The loss was lowest at {result.min_loss_lr:.3g}; a tenth of that, "
            f"{result.min_loss_lr / 10:.3g}, is another common choice."
        )
        print(f"Train with it: python -m nn_core train --lr {result.suggested_lr:.3g} ...")
    if csv_path is not None:
        print(f"Curve written to {csv_path}")
