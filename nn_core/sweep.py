"""Sweeps: train every combination of one or two settings' values, with one or more seeds.

Grid syntax (the command line and the app read the same text)::

    lr=1e-3,3e-3,1e-2 hidden=64,128-64

One ``NAME=VALUES`` item per setting, items separated by spaces (or given as separate
command-line arguments), values by commas. ``NAME`` is a training setting's name
(``lr``, ``batch_size``), its command-line flag without the dashes (``batch-size``) or its
share-link key (``b``). A value is written as for the flag: a number, a choice (``relu``),
``true``/``false``; a network's hidden layers are joined by ``-`` (``128-64`` is two layers,
``none`` is no hidden layer), because the comma separates values. Every value is checked
against the setting's range (``nn_core.settings``) and ``TrainConfig``; each bad one gets
its own message. Seeds are not part of the grid: every combination runs once per seed.

Runs stream back as each finishes (``run_sweep`` is a generator), one after another,
in parallel processes (joblib), or on a Dask cluster (``dask_address``).
"""

from __future__ import annotations

import itertools
import math
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nn_core.config import TrainConfig
from nn_core.run_record import RunRecord, failed_record, record_from_trainer
from nn_core.settings import HIDDEN_LAYERS, LAYER_WIDTH, SETTINGS, Setting, parse_hidden
from nn_core.training import Callbacks, Trainer

MAX_SWEEP_SETTINGS = 2
MAX_VALUES_PER_SETTING = 100
DEFAULT_MAX_RUNS = 500
MAX_SEED = 2**31 - 1
DASK_CONNECT_TIMEOUT = 10.0
DASK_ENV = "DIGITLAB_DASK_SCHEDULER"
NOT_SWEPT = ("seed",)  # seeds are their own axis


class GridError(ValueError):
    """A grid or sweep that cannot run: one message per problem, in ``problems``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class SweepError(RuntimeError):
    """A sweep that cannot start (e.g. no Dask scheduler at the address); one message."""


# ---------------------------------------------------------------------- grid
@dataclass(frozen=True)
class Axis:
    """One swept setting and its values, in the order given."""

    name: str
    values: tuple


@dataclass(frozen=True)
class Grid:
    """The settings a sweep varies (one or two axes)."""

    axes: tuple[Axis, ...]

    def __len__(self) -> int:
        return math.prod(len(axis.values) for axis in self.axes)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(axis.name for axis in self.axes)

    def combinations(self) -> list[dict[str, object]]:
        """Every combination, the last axis varying fastest."""
        values = itertools.product(*(axis.values for axis in self.axes))
        return [dict(zip(self.names, combo)) for combo in values]

    def text(self) -> str:
        """The grid in its own syntax (``parse_grid(grid.text())`` gives it back)."""
        return " ".join(
            f"{axis.name}={','.join(format_value(v) for v in axis.values)}" for axis in self.axes
        )


def sweepable() -> dict[str, Setting]:
    """Every name a grid may use (name, flag without dashes, share-link key) -> setting."""
    names: dict[str, Setting] = {}
    for setting in SETTINGS:
        if setting.name in NOT_SWEPT:
            continue
        for alias in (setting.name, setting.flag.lstrip("-"), setting.url):
            if alias:
                names.setdefault(alias.lower(), setting)
    return names


def parse_grid(
    spec: str | Sequence[str],
    *,
    base: TrainConfig | None = None,
    caps: object | None = None,
    max_settings: int = MAX_SWEEP_SETTINGS,
) -> Grid:
    """Read a grid such as ``"lr=1e-3,3e-3 hidden=64,128-64"`` (see the module docstring).

    Parameters
    ----------
    spec : str or sequence of str
        The grid text, or its items (e.g. command-line arguments).
    base : TrainConfig, optional
        The settings each value is tried with (TrainConfig's defaults by default).
    caps : ui.limits.Limits, optional
        A shared server's caps, which lower some settings' upper bounds.
    max_settings : int
        Most settings a sweep may vary.

    Raises
    ------
    GridError
        With one message per problem: an item that is not ``NAME=VALUES``, an unknown or
        repeated setting, too many settings or values, a value that is not of the setting's
        kind or is outside its range.
    """
    items = spec.split() if isinstance(spec, str) else [p for s in spec for p in s.split()]
    base = base or TrainConfig()
    problems: list[str] = []
    axes: list[Axis] = []
    known = sweepable()
    if not items:
        raise GridError([f"The grid is empty: give {_EXAMPLE}."])
    for item in items:
        name, sep, values_text = item.partition("=")
        setting = known.get(name.strip().lower())
        if not sep or not name.strip():
            problems.append(f"{item!r} is not NAME=VALUES; write e.g. {_EXAMPLE}.")
        elif name.strip().lower() == "seed":
            problems.append("Seeds are not part of the grid: give them as the sweep's seeds.")
        elif setting is None:
            problems.append(
                f"{name!r} is not a setting; choose one of {', '.join(_sweep_names())}."
            )
        elif any(axis.name == setting.name for axis in axes):
            problems.append(f"{setting.name} is given twice; list all its values in one item.")
        else:
            values, value_problems = _parse_axis(setting, values_text, base, caps)
            problems += value_problems
            axes.append(Axis(setting.name, values))
    if len(axes) > max_settings:
        problems.append(
            f"A sweep varies at most {max_settings} settings; this grid varies {len(axes)} "
            f"({', '.join(a.name for a in axes)}). Fix the others in the base settings."
        )
    if problems:
        raise GridError(problems)
    return Grid(tuple(axes))


_EXAMPLE = "lr=1e-3,3e-3,1e-2 hidden=64,128-64"


def _sweep_names() -> list[str]:
    return [s.name for s in SETTINGS if s.name not in NOT_SWEPT]


def _parse_axis(
    setting: Setting, text: str, base: TrainConfig, caps: object | None
) -> tuple[tuple, list[str]]:
    """The values of one ``NAME=VALUES`` item, and a message per bad value."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        return (), [f"{setting.name}={text}: a value is missing (values are separated by commas)."]
    if len(parts) > MAX_VALUES_PER_SETTING:
        return (), [
            f"{setting.name} has {len(parts):,} values; a sweep takes at most "
            f"{MAX_VALUES_PER_SETTING} per setting."
        ]
    values: list = []
    problems: list[str] = []
    for part in parts:
        try:
            value = parse_value(setting, part, caps)
            base.replace(**{setting.name: value})
        except ValueError as exc:
            problems.append(f"{setting.name}={part}: {exc}.")
            continue
        if value in values:
            problems.append(f"{setting.name} lists {part} twice; give each value once.")
            continue
        values.append(value)
    return tuple(values), problems


def parse_value(setting: Setting, text: str, caps: object | None = None) -> object:
    """One value of ``setting`` from its text, within the setting's range.

    Raises
    ------
    ValueError
        Saying what the value should be.
    """
    if setting.kind is tuple:
        return _parse_hidden_value(text, caps)
    if setting.kind is str:
        if text not in setting.choices:
            raise ValueError(f"choose one of {', '.join(map(str, setting.choices))}")
        return text
    if setting.kind is bool:
        lowered = text.lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        raise ValueError("write true or false")
    number = _parse_number(text, whole=setting.kind is int)
    _check_bounds(setting, number, caps)
    return number


def _parse_number(text: str, whole: bool) -> int | float:
    try:
        number = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    if whole:
        if number != int(number):
            raise ValueError("not a whole number")
        return int(number)
    return number


def _check_bounds(setting: Setting, number: float, caps: object | None) -> None:
    low, high = setting.bounds(caps)
    if (low is not None and number < low) or (high is not None and number > high):
        if low is not None and high is not None:
            span = f"between {setting.fmt(low)} and {setting.fmt(high)}"
        elif low is not None:
            span = f"at least {setting.fmt(low)}"
        else:
            span = f"at most {setting.fmt(high)}"
        raise ValueError(f"{setting.label.lower()} must be {span}")


def _parse_hidden_value(text: str, caps: object | None) -> tuple[int, ...]:
    try:
        widths = parse_hidden(text.replace("x", "-"))
    except ValueError:
        raise ValueError("write layer widths joined by '-', e.g. 128-64, or none") from None
    most = int(HIDDEN_LAYERS.bounds(caps)[1])
    if len(widths) > most:
        raise ValueError(f"at most {most} hidden layers")
    low, high = LAYER_WIDTH.bounds(caps)
    if any(w < low or w > high for w in widths):
        raise ValueError(f"layer widths must be between {low:g} and {high:g}")
    return widths


def format_value(value: object) -> str:
    """A grid value as the grid syntax writes it: ``0.001``, ``128-64``, ``none``, ``true``."""
    if isinstance(value, tuple):
        return "-".join(map(str, value)) or "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# ---------------------------------------------------------------------- plan
@dataclass(frozen=True)
class SweepRun:
    """One planned run of a sweep: a combination of values and a seed."""

    index: int
    values: tuple[tuple[str, object], ...]
    seed: int
    config: TrainConfig

    @property
    def name(self) -> str:
        """e.g. ``"lr=0.001 hidden=128-64 seed=0"``."""
        parts = [f"{k}={format_value(v)}" for k, v in self.values]
        return " ".join([*parts, f"seed={self.seed}"])

    @property
    def slug(self) -> str:
        """A file-name-safe name, unique within the sweep, e.g. ``"003_lr-0.001_seed-0"``."""
        safe = re.sub(r"[^A-Za-z0-9.]+", "-", self.name.replace(" ", "_").replace("=", "~"))
        return f"{self.index:03d}_{safe.replace('~', '-')}"[:120]


def plan_sweep(
    base: TrainConfig,
    grid: Grid,
    seeds: Sequence[int] | None = None,
    *,
    max_runs: int = DEFAULT_MAX_RUNS,
) -> list[SweepRun]:
    """Every run of the sweep: each combination of ``grid`` once per seed, the rest of the
    settings from ``base``.

    Raises
    ------
    GridError
        For bad seeds, more than ``max_runs`` runs (one message naming the cap), or
        combinations ``TrainConfig`` refuses (one message each).
    """
    seeds = [base.seed] if seeds is None else list(seeds)
    problems = _seed_problems(seeds)
    total = len(grid) * max(len(seeds), 1)
    if total > max_runs:
        sizes = " x ".join(f"{len(a.values)} {a.name} values" for a in grid.axes)
        problems.append(
            f"This sweep would train {total:,} runs ({sizes} x {len(seeds)} seeds); the cap "
            f"is {max_runs:,} runs. Use fewer values or seeds."
        )
    if problems:
        raise GridError(problems)
    runs: list[SweepRun] = []
    for combo in grid.combinations():
        for seed in seeds:
            try:
                config = base.replace(**combo, seed=seed)
            except ValueError as exc:
                problems.append(f"{_combo_text(combo)}: {exc}.")
                continue
            values = tuple(combo.items())
            runs.append(SweepRun(len(runs), values, int(seed), config))
    if problems:
        raise GridError(sorted(set(problems), key=problems.index))
    return runs


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> [0, 1, 2]; ``"0-4"`` -> [0, 1, 2, 3, 4]."""
    text = text.strip()
    low, dash, high = text.partition("-")
    try:
        if dash and low.strip():
            return list(range(int(low), int(high) + 1))
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        problem = f"Seeds are whole numbers like 0,1,2 or a range 0-4, got {text!r}."
        raise GridError([problem]) from None


def _seed_problems(seeds: Sequence[int]) -> list[str]:
    if not seeds:
        return ["Give at least one seed."]
    problems = []
    if any(not isinstance(s, (int, np.integer)) or not 0 <= s <= MAX_SEED for s in seeds):
        problems.append(f"Seeds must be whole numbers from 0 to {MAX_SEED:,}.")
    if len(set(seeds)) != len(seeds):
        problems.append("A seed is listed twice; give each seed once.")
    return problems


def _combo_text(combo: dict[str, object]) -> str:
    return " ".join(f"{k}={format_value(v)}" for k, v in combo.items())


# ---------------------------------------------------------------------- one run
@dataclass(frozen=True)
class SweepResult:
    """A finished (or failed) run of a sweep, and where it ran."""

    run: SweepRun
    record: RunRecord
    worker: str = ""


TrainFn = Callable[..., RunRecord]


def train_run(
    run: SweepRun,
    data: Any,
    *,
    blas_threads: int | None = 1,
    max_seconds: float | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunRecord:
    """Train one run of a sweep on ``data`` (a ``nn_core.data.Dataset``) and score it.

    Parameters
    ----------
    run : SweepRun
    data : Dataset
    blas_threads : int or None
        Threads of the matrix products in this process (None leaves them as they are);
        one per process when several processes share the cores.
    max_seconds : float, optional
        Training time cap; the run then ends as "stopped".
    should_stop : callable, optional
        Checked after every batch; True stops the run (status "stopped").

    Returns
    -------
    RunRecord
        Status "failed", with the error, when training raised instead of ending.
    """
    from threadpoolctl import threadpool_limits

    limit = nullcontext() if blas_threads is None else threadpool_limits(blas_threads, "blas")
    with limit:
        try:
            trainer = Trainer(run.config, data.x_train, data.y_train, n_classes=data.n_classes)
            if should_stop is not None:
                trainer.callbacks = Callbacks(on_batch=(lambda _t, _i: should_stop(),))
            trainer.run(max_seconds=max_seconds)
            if not trainer.finished:
                trainer.stop_reason = _stopped_reason(trainer, max_seconds, should_stop)
            return record_from_trainer(trainer, data, name=run.name, origin="sweep")
        except Exception as exc:  # one run's failure must not end the others
            message = f"{type(exc).__name__}: {_first_line(exc)}"
            return failed_record(run.config, name=run.name, error=message, dataset=data)


def _stopped_reason(trainer: Trainer, max_seconds: float | None, should_stop) -> str:
    if should_stop is not None and should_stop():
        return f"Stopped during epoch {trainer.epochs_done + 1}: the sweep was stopped."
    return f"Stopped at the time cap of {max_seconds:g} s per run."


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# ---------------------------------------------------------------------- running
def run_sweep(
    runs: Sequence[SweepRun],
    data: Any,
    *,
    jobs: int = 1,
    dask_address: str | None = None,
    dask_client: Any = None,
    blas_threads: int | None = 1,
    max_seconds: float | None = None,
    should_stop: Callable[[], bool] | None = None,
    train: TrainFn = train_run,
    connect_timeout: float = DASK_CONNECT_TIMEOUT,
) -> Iterator[SweepResult]:
    """Train every run and yield each result as soon as it is known.

    Parameters
    ----------
    runs : sequence of SweepRun
        From ``plan_sweep``.
    data : nn_core.data.Dataset
        Sent to each process or Dask worker once, not per run.
    jobs : int
        Processes on this machine (1: one run after another in this process).
    dask_address : str, optional
        A Dask scheduler, e.g. ``tcp://10.0.0.5:8786``: the runs go to its workers
        (``jobs`` is then ignored). Needs the ``distributed`` package.
    dask_client : distributed.Client, optional
        An open client to use instead of connecting (it is left open).
    blas_threads : int or None
        Matrix-product threads per process.
    max_seconds : float, optional
        Training time cap per run.
    should_stop : callable, optional
        Checked between results (and, when ``jobs`` is 1, after every batch): True stops
        the sweep. Finished runs are kept; runs not started are not yielded.
    train : callable
        ``train(run, data, blas_threads=..., max_seconds=...)`` -> RunRecord; ``train_run``
        unless a test substitutes its own.
    connect_timeout : float
        Seconds to wait for the Dask scheduler.

    Yields
    ------
    SweepResult
        In the order the runs finish. A run whose process or worker died is yielded as a
        "failed" record with the reason; the others go on.
    """
    if dask_address is not None or dask_client is not None:
        # Connect now, so that an unreachable scheduler is reported before anything starts.
        client = dask_client or connect_dask(dask_address, connect_timeout)
        own_client = dask_client is None
        return _run_dask(
            runs, data, client, own_client, blas_threads, max_seconds, should_stop, train
        )
    if jobs <= 1:
        return _run_serial(runs, data, blas_threads, max_seconds, should_stop, train)
    return _run_processes(runs, data, jobs, blas_threads, max_seconds, should_stop, train)


def _run_serial(runs, data, blas_threads, max_seconds, should_stop, train) -> Iterator[SweepResult]:
    for run in runs:
        if should_stop is not None and should_stop():
            return
        record = train(
            run, data, blas_threads=blas_threads, max_seconds=max_seconds, should_stop=should_stop
        )
        yield SweepResult(run, record, _worker_name())


# -- processes on this machine (joblib)
def _run_processes(
    runs, data, jobs, blas_threads, max_seconds, should_stop, train
) -> Iterator[SweepResult]:
    from joblib import Parallel, delayed, parallel_config
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    folder = Path(tempfile.mkdtemp(prefix="digitlab-sweep-"))
    try:
        shared = _share_dataset(data, folder)
        tasks = (
            delayed(_process_task)(train, run, shared, blas_threads, max_seconds) for run in runs
        )
        with parallel_config(backend="loky", inner_max_num_threads=blas_threads or None):
            results = Parallel(n_jobs=min(jobs, len(runs)), return_as="generator_unordered")(tasks)
            done: set[int] = set()
            try:
                for result in results:
                    done.add(result.run.index)
                    yield result
                    if should_stop is not None and should_stop():
                        return
            except TerminatedWorkerError as exc:
                # A process that dies (killed, out of memory) ends joblib's pool, and the
                # runs it had not finished with it.
                reason = f"a worker process died ({_first_line(exc)[:200]}); run it again"
                for run in runs:
                    if run.index not in done:
                        yield _failed(run, data, reason)
            finally:
                results.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class _SharedDataset:
    """A data set written once to a folder, which each process maps read-only."""

    folder: str
    meta: dict


_DATA_FIELDS = ("x_train", "y_train", "x_test", "y_test")
_process_cache: dict[str, Any] = {}


def _share_dataset(data: Any, folder: Path) -> _SharedDataset:
    for name in _DATA_FIELDS:
        np.save(folder / f"{name}.npy", np.ascontiguousarray(getattr(data, name)))
    meta = {
        "n_classes": int(data.n_classes),
        "class_names": tuple(data.class_names),
        "name": str(data.name),
        "test_source": str(data.test_source),
        "test_is_official": bool(data.test_is_official),
    }
    return _SharedDataset(str(folder), meta)


def _open_shared(shared: _SharedDataset) -> Any:
    """The data set of ``shared``, mapped once per process (the page cache is shared)."""
    from nn_core.data import Dataset

    if shared.folder not in _process_cache:
        _process_cache.clear()  # one sweep at a time per process: drop older maps
        arrays = {
            name: np.load(Path(shared.folder) / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            for name in _DATA_FIELDS
        }
        _process_cache[shared.folder] = Dataset(**arrays, **shared.meta)
    return _process_cache[shared.folder]


def _process_task(train, run, shared, blas_threads, max_seconds) -> SweepResult:
    record = train(run, _open_shared(shared), blas_threads=blas_threads, max_seconds=max_seconds)
    return SweepResult(run, record, _worker_name())


# -- a Dask cluster
def import_distributed() -> Any:
    """The ``distributed`` package, or a SweepError saying how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise SweepError(
            "Running a sweep on a Dask cluster needs the 'distributed' package: "
            "pip install distributed (on this machine and on every worker)."
        ) from exc
    return distributed


def scheduler_from_env(env: dict[str, str] | None = None) -> str | None:
    """The Dask scheduler the app sends sweeps to: ``DIGITLAB_DASK_SCHEDULER``, or None."""
    value = (os.environ if env is None else env).get(DASK_ENV, "").strip()
    return value or None


def connect_dask(address: str, timeout: float = DASK_CONNECT_TIMEOUT) -> Any:
    """A ``distributed.Client`` for the scheduler at ``address``, or one SweepError."""
    distributed = import_distributed()
    if not re.fullmatch(r"(tcp|tls|ws|wss|inproc|ucx)://\S+", address or ""):
        raise SweepError(
            f"{address!r} is not a Dask scheduler address; write it like tcp://HOST:8786."
        )
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SweepError(
            f"No Dask scheduler answered at {address} within {timeout:g} s ({_first_line(exc)}). "
            "Start one with `dask scheduler` and check the address and port."
        ) from exc
    try:
        _wait_for_a_worker(distributed, client, address, timeout)
        check_cluster(client)
    except SweepError:
        client.close()
        raise
    return client


def check_cluster(client: Any) -> None:
    """Refuse a cluster whose scheduler or workers cannot import ``nn_core``: every task
    would fail to unpickle there. One SweepError naming where it is missing."""

    def importable() -> bool:  # pickled by value, so it runs where nn_core is missing
        import importlib.util

        return importlib.util.find_spec("nn_core") is not None

    missing = [] if client.run_on_scheduler(importable) else ["the scheduler"]
    workers = client.run(importable)
    missing += [f"worker {address}" for address, ok in sorted(workers.items()) if not ok]
    if missing:
        raise SweepError(
            f"{', '.join(missing[:3])}{' and others' if len(missing) > 3 else ''} cannot import "
            "digitlab's nn_core: start `dask scheduler` and `dask worker` with the digitlab "
            "folder on PYTHONPATH (and the same Python packages as here)."
        )


def _wait_for_a_worker(distributed: Any, client: Any, address: str, timeout: float) -> None:
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, distributed.TimeoutError, OSError) as exc:
        raise SweepError(
            f"The Dask scheduler at {address} has no workers (none joined within {timeout:g} "
            f"s): start some with `dask worker {address} --nthreads 1`."
        ) from exc


def _run_dask(
    runs, data, client, own_client, blas_threads, max_seconds, should_stop, train
) -> Iterator[SweepResult]:
    distributed = import_distributed()
    tag = uuid.uuid4().hex[:12]
    futures: dict[Any, SweepRun] = {}
    attempts: dict[int, int] = {}

    def run_key(run: SweepRun) -> str:
        return f"digitlab-run-{tag}-{run.index}"

    def submit(run: SweepRun, data_future: Any) -> Any:
        # The Events that tell a lost run from a new one are named by ``key``, whatever the
        # attempt; each attempt is a new task.
        key = run_key(run)
        attempts[run.index] = attempts.get(run.index, 0) + 1
        future = client.submit(
            _dask_task, train, run, data_future, blas_threads, max_seconds, key,
            key=f"{key}-{attempts[run.index]}", pure=False, retries=0,
        )  # fmt: skip
        futures[future] = run
        return future

    try:
        # Every worker gets the data once; each task refers to it by its key.
        [data_future] = client.scatter([data], broadcast=True, hash=False)
        completed = distributed.as_completed(
            [submit(run, data_future) for run in runs], loop=client.loop
        )
        for future in completed:
            run = futures[future]
            result, lost = _dask_result(future, run, data)
            future.release()
            if lost and attempts[run.index] == 1:
                # Cancelled by the cluster, or finished on a worker that died before its
                # result was fetched. When the scattered data died with the only worker that
                # held it, send it again. The second attempt trains the run again, with the
                # same numbers, unless it had started and not finished on the dead worker:
                # then it fails as lost (``_dask_task``).
                if data_future.status != "finished":
                    [data_future] = client.scatter([data], broadcast=True, hash=False)
                completed.add(submit(run, data_future))
                continue
            yield result
            if should_stop is not None and should_stop():
                return
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
        _clear_started_marks(distributed, client, {run_key(r) for r in futures.values()})
        if own_client:
            client.close()


class RunLostError(RuntimeError):
    """A run's worker died while training it; it is reported as failed, not retried."""


def _dask_task(train, run, data, blas_threads, max_seconds, key) -> SweepResult:
    """Train ``run`` on a worker; a worker that dies loses only its own run.

    The scheduler hands a dead worker's tasks to the others. A run that had started there
    and not finished then fails (``RunLostError``) instead of being trained again. A run
    that had finished, but whose result was still on the dead worker, is trained again:
    it gives the same numbers (same seed and settings)."""
    from distributed import Event

    started, done = Event(f"{key}-started"), Event(f"{key}-done")
    if started.is_set() and not done.is_set():
        raise RunLostError("the Dask worker training this run died")
    started.set()
    record = train(run, data, blas_threads=blas_threads, max_seconds=max_seconds)
    done.set()
    return SweepResult(run, record, _worker_name())


def _dask_result(future: Any, run: SweepRun, data: Any) -> tuple[SweepResult, bool]:
    """The run's result, and whether it was lost with a worker or the data (not failed by
    its own training), which is worth another attempt."""
    if future.status == "finished":
        try:
            return future.result(), False
        except Exception as exc:  # lost between finishing and being fetched
            reason = f"its result could not be fetched ({_first_line(exc)})"
            return _failed(run, data, reason), True
    if future.status == "cancelled":
        try:
            future.result()
        except Exception as exc:
            reason = _first_line(exc)
        return _failed(run, data, f"the cluster cancelled this run ({reason})"), True
    exc = future.exception()
    return _failed(run, data, _first_line(exc) or type(exc).__name__), False


def _failed(run: SweepRun, data: Any, reason: str) -> SweepResult:
    record = failed_record(run.config, name=run.name, error=reason, dataset=data)
    return SweepResult(run, record, "")


def _clear_started_marks(distributed: Any, client: Any, keys: Iterable[str]) -> None:
    try:
        for key in keys:
            for mark in ("started", "done"):
                distributed.Event(f"{key}-{mark}", client=client).clear()
    except Exception:  # the scheduler is gone: its marks went with it
        pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
