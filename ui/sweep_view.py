"""A small sweep from the Runs page: a grid of one or two settings, trained one run after
another in a background thread that holds one slot of the training gate, results shown as
they arrive, every run added to this session's run history.

The thread never touches Streamlit: it appends results to its own list; the page moves
them into the history on its reruns.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from nn_core.memory import MemoryBudgetError, advice, training_memory
from nn_core.sweep import (
    GridError,
    SweepResult,
    format_value,
    parse_grid,
    parse_seeds,
    plan_sweep,
    run_sweep,
    scheduler_from_env,
)
from ui import data as data_ui
from ui import hosting, runner
from ui import state as keys
from ui.run_history import history_budget, session_history

SWEEP = "sweep_job"
SWEEP_MESSAGE = "sweep_message"
MAX_APP_SWEEP_RUNS = 12  # the app's own cap (the command line allows DEFAULT_MAX_RUNS)
_tokens = itertools.count(1)


class SweepJob:
    """One session's sweep in a background thread (one gate slot for the whole sweep).

    Parameters
    ----------
    runs : list of nn_core.sweep.SweepRun
    data : nn_core.data.Dataset
        The training subset every run uses.
    gate : ui.runner.TrainingGate
    max_seconds : float
        Training time cap per run.
    owner : str
        The session, for the memory ledger.
    settings : dict
        What to record with each run besides its config (data name, training images).
    """

    def __init__(self, runs, data, gate, max_seconds, owner, settings, blas_threads=1):
        self.runs = list(runs)
        self.data = data
        self.gate = gate
        self.max_seconds = float(max_seconds)
        self.owner = owner
        self.settings = dict(settings)
        self.blas_threads = blas_threads
        self.results: list[SweepResult] = []
        self.collected = 0
        self.error: str | None = None
        self.done = False
        self.stopping = False
        self.state = "queued"
        self.end_shown = False
        self.grid = None
        self._token = -(10**6) - next(_tokens)
        self._thread = threading.Thread(target=self._work, name="digitlab-sweep", daemon=True)

    def start(self) -> bool:
        """Join the training queue (False, with ``error`` set, when it is full)."""
        if not self.gate.enqueue(self._token):
            self.error = self.gate.busy_message()
            self.done = True
            return False
        self._thread.start()
        return True

    def stop(self) -> None:
        self.stopping = True

    # What ui.hosting's session watch calls on the runs of a tab that has gone.
    @property
    def id(self) -> str:
        return f"sweep{-self._token}"

    def abandon(self, message: str) -> None:
        """Stop after the run in progress; finished runs are kept."""
        self.error = message
        self.stop()

    def dispose(self) -> int:
        """Stop, and drop the results of a session that cannot come back."""
        self.stop()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self.results, self.data = [], None
        return 0

    @property
    def active(self) -> bool:
        return self._thread.is_alive()

    def _work(self) -> None:
        if not self.gate.acquire(self._token, lambda: self.stopping):
            self.error = "Stopped while waiting in the queue."
            self.done = True
            return
        self.state = "running"
        try:
            for result in run_sweep(
                self.runs, self.data, jobs=1, dask_address=scheduler_from_env(),
                blas_threads=self.blas_threads, max_seconds=self.max_seconds,
                should_stop=lambda: self.stopping,
            ):  # fmt: skip
                self.results.append(result)
        except Exception as exc:  # an unreachable scheduler, ...: said once, runs kept
            self.error = f"The sweep ended early: {exc}"
        finally:
            self.gate.release(self._token)
            hosting.ledger().release(self.owner, "sweep")
            self.state = "idle"
            self.done = True

    def collect(self) -> int:
        """Move results that arrived since the last call into the run history."""
        history = session_history()
        new = self.results[self.collected :]
        for result in new:
            record = result.record
            settings = {**self.settings, **record.config.to_dict()}
            history.add_record(record, settings=settings, name=f"sweep: {result.run.name}")
        self.collected += len(new)
        if new:
            history.enforce_budget(history_budget(keys.get_limits()))
        return len(new)


def plan_from_sidebar(grid_text: str, seeds_text: str):
    """The runs of a sweep over ``grid_text`` with the sidebar's other settings."""
    base = keys.config_from_state()
    limits = keys.get_limits()
    grid = parse_grid(grid_text, base=base, caps=limits)
    seeds = parse_seeds(seeds_text) if seeds_text.strip() else None
    return grid, plan_sweep(base, grid, seeds, max_runs=MAX_APP_SWEEP_RUNS)


def on_start_sweep() -> None:
    ss = st.session_state
    ss[SWEEP_MESSAGE] = None
    job = ss.get(SWEEP)
    if job is not None and job.active:
        return
    try:
        grid, runs = plan_from_sidebar(ss.get("sweep_grid", ""), ss.get("sweep_seeds", ""))
    except (GridError, ValueError) as exc:
        ss[SWEEP_MESSAGE] = str(exc)
        return
    dataset = data_ui.current_dataset()
    if dataset is None:
        ss[SWEEP_MESSAGE] = "Upload a valid data set first, or switch the data to MNIST."
        return
    limits = keys.get_limits()
    config = runs[0].config
    subset = data_ui.training_subset(dataset, int(ss.get("cfg_subset", 0)), config.seed)
    n_inputs = int(np.prod(subset.x_train.shape[1:]))
    largest = max(runs, key=lambda r: sum(r.config.hidden) * r.config.batch_size).config
    estimate = training_memory(largest, len(subset.y_train), n_inputs, subset.n_classes)
    owner = hosting.session_id()
    try:
        hosting.ledger().reserve(
            owner, "sweep", estimate, "This sweep", advice(estimate, largest, n_inputs)
        )
    except MemoryBudgetError as exc:
        ss[SWEEP_MESSAGE] = str(exc)
        return
    settings = {"data": dataset.name, "training images": len(subset.y_train), "preset": "Sweep"}
    job = SweepJob(
        runs, subset, runner.gate(), limits.max_train_seconds, owner, settings,
        blas_threads=limits.blas_threads or None,  # None: the server's policy (one thread)
    )  # fmt: skip
    job.grid = grid
    if not job.start():
        hosting.ledger().release(owner, "sweep")
        ss[SWEEP_MESSAGE] = job.error
        return
    ss[SWEEP] = job
    hosting.watch().track(owner, job)  # a closed tab's sweep stops like its runs


def on_stop_sweep() -> None:
    job = st.session_state.get(SWEEP)
    if job is not None:
        job.stop()


def results_frame(job: SweepJob) -> pd.DataFrame:
    rows = []
    for result in job.results:
        m = result.record.metrics
        val = m.get("best_val_accuracy")
        row = {format_value(k): format_value(v) for k, v in result.run.values}
        row.update(
            seed=result.run.seed,
            status=result.record.status,
            **{"best val acc": None if val is None else round(100 * val, 1)},
        )
        rows.append(row)
    return pd.DataFrame(rows)


def results_figure(job: SweepJob) -> go.Figure | None:
    """A heat map of validation accuracy for two settings, a line with its seed spread for
    one (mean and min-max over seeds)."""
    frame = results_frame(job)
    if frame.empty or frame["best val acc"].isna().all():
        return None
    names = [format_value(a.name) for a in job.grid.axes]
    fig = go.Figure()
    if len(names) == 2:
        table = frame.pivot_table(index=names[0], columns=names[1], values="best val acc")
        fig.add_heatmap(
            z=table.values.tolist(), x=[str(c) for c in table.columns],
            y=[str(i) for i in table.index], colorscale="Viridis", colorbar={"title": "%"},
            text=table.values.round(1).tolist(), texttemplate="%{text}",
        )  # fmt: skip
        fig.update_xaxes(title_text=names[1], type="category")
        fig.update_yaxes(title_text=names[0], type="category")
    else:
        order = [format_value(v) for v in job.grid.axes[0].values]
        stats = frame.groupby(names[0])["best val acc"].agg(["mean", "min", "max"])
        stats = stats.reindex([o for o in order if o in stats.index])
        fig.add_scatter(
            x=list(stats.index), y=stats["mean"].tolist(), mode="lines+markers", name="mean",
            error_y={"type": "data", "symmetric": False,
                     "array": (stats["max"] - stats["mean"]).tolist(),
                     "arrayminus": (stats["mean"] - stats["min"]).tolist()},
        )  # fmt: skip
        fig.update_xaxes(title_text=names[0], type="category")
        fig.update_yaxes(title_text="best validation accuracy (%)")
    fig.update_layout(height=340, margin={"t": 20, "b": 40})
    return fig


def sweep_progress() -> None:
    """Results as they arrive (redrawn every second while the sweep runs)."""
    job: SweepJob | None = st.session_state.get(SWEEP)
    if job is None:
        return
    arrived = job.collect()
    done = len(job.results)
    if job.active:
        where = "waiting in the training queue" if job.state == "queued" else "training"
        st.progress(done / max(len(job.runs), 1), text=f"Sweep {where}: {done} of "
                    f"{len(job.runs)} runs done")  # fmt: skip
    else:
        st.caption(f"Sweep ended: {done} of {len(job.runs)} runs done; each is in the table above.")
    if job.error:
        st.warning(job.error)
    if done:
        fig = results_figure(job)
        if fig is not None:
            st.plotly_chart(fig, key="sweep_chart")
        st.dataframe(results_frame(job), hide_index=True, key="sweep_results")
    ended = not job.active and not job.end_shown
    if ended:
        job.end_shown = True
    if arrived or ended:
        st.rerun()  # the whole page: the runs table shows the new runs, the buttons the state


def sweep_section() -> None:
    ss = st.session_state
    ss.setdefault("sweep_grid", "lr=0.001,0.01,0.1")
    st.text_input(
        "Grid", key="sweep_grid",
        help="One or two settings and their values, e.g. lr=1e-3,1e-2 hidden=32,64-32. The "
        f"rest comes from the sidebar; at most {MAX_APP_SWEEP_RUNS} runs here.",
    )  # fmt: skip
    st.text_input("Seeds", key="sweep_seeds", placeholder="the sidebar's seed; e.g. 0,1,2")
    job: SweepJob | None = ss.get(SWEEP)
    running = job is not None and job.active
    left, right = st.columns(2)
    left.button("Start sweep", key="btn_sweep_start", on_click=on_start_sweep, disabled=running)
    right.button("Stop sweep", key="btn_sweep_stop", on_click=on_stop_sweep, disabled=not running)
    if ss.get(SWEEP_MESSAGE):
        st.error(ss[SWEEP_MESSAGE])
    st.fragment(sweep_progress, run_every=1.0 if running else None)()
