"""The Runs page's pieces: the table, overlaid curves, the settings diff, the actions on
chosen runs, import, and the learning-rate finder.

Everything here reads and changes ``ui.run_history`` (this session's runs); the page file
only lays the pieces out.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import re
import time
import zipfile
from collections.abc import Iterator

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from nn_core.io import LoadedModel
from nn_core.lr_finder import LRFinderResult, find_learning_rate
from nn_core.memory import MemoryBudgetError, advice, mb, training_memory
from nn_core.run_record import RunFileError, RunRecord, export_run, import_run_files
from nn_core.safe_read import InputFileError
from nn_core.settings import SETTINGS, check
from ui import charts, hosting, runner
from ui import data as data_ui
from ui import state as keys
from ui.run_history import RunEntry, RunHistory, history_budget, session_history
from ui.sweep_view import sweep_section

X_AXES = ("epoch", "images seen", "seconds")
SELECTED = "runs_selected"  # ids of the runs ticked in the table
MESSAGE = "runs_message"  # (kind, text) of the last action
LR_RESULT = "lr_finder_result"
IMPORT_N = "run_import_n"  # bumped after an import: a new, empty uploader
LR_MESSAGE = "lr_finder_message"
LR_SETTING = next(s for s in SETTINGS if s.name == "lr")
_slot_tokens = itertools.count(1)


# ------------------------------------------------------------------ table
def _percent(value) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{100 * value:.1f}%"


def _architecture(entry: RunEntry) -> str:
    if entry.run is not None:
        return keys.architecture_label(entry.run.model.sizes)
    record = entry.record
    return keys.architecture_label(record.architecture) if record is not None else "–"


def _figures(entry: RunEntry) -> dict:
    """Epochs, seconds, best validation and test accuracy (test only once frozen)."""
    if entry.run is not None:
        t = entry.run.trainer
        val = [v for v in t.history.val_accuracy if np.isfinite(v)]
        return {
            "epochs": t.epochs_done,
            "seconds": entry.run.seconds_trained,
            "best_val_accuracy": max(val) if val else None,
            "test_accuracy": _live_test_accuracy(entry.run),
        }
    return entry.record.metrics if entry.record is not None else {}


def _live_test_accuracy(run) -> float | None:
    """The current run's test accuracy once it has trained and is idle (cached per epoch)."""
    if run.active or run.disposed or not run.trainer.history.batch_loss:
        return None
    return float(run.evaluation()["accuracy"])


def table_rows(history: RunHistory) -> pd.DataFrame:
    """One row per run, newest last."""
    rows = []
    for entry in history.entries:
        s, f = entry.settings, _figures(entry)
        rows.append(
            {
                "#": entry.id,
                "name": entry.name,
                "when": entry.created.replace("T", " ")[5:16],
                "data": f"{s.get('data', '?')}, {s.get('training images', '?')}",
                "architecture": _architecture(entry),
                "settings": key_settings(s),
                "epochs": f.get("epochs"),
                "time (s)": round(float(f.get("seconds") or 0.0), 1),
                "best val acc": _percent(f.get("best_val_accuracy")),
                "test acc": _percent(f.get("test_accuracy")),
                "status": entry.status + (" (per-batch curves dropped)" if entry.dropped else ""),
            }
        )
    return pd.DataFrame(rows)


def key_settings(settings: dict) -> str:
    """The settings people change most, in a few words ("adam, lr 0.1, batch 128, relu")."""
    parts = [
        settings.get("optimizer"),
        f"lr {settings['lr']:g}" if "lr" in settings else None,
        f"batch {settings['batch_size']}" if "batch_size" in settings else None,
        settings.get("activation"),
    ]
    return ", ".join(str(p) for p in parts if p is not None)


def label(history: RunHistory, entry_id: int) -> str:
    entry = history.get(entry_id)
    return f"#{entry_id} {entry.name}" if entry is not None else f"#{entry_id}"


def runs_table(history: RunHistory) -> list[RunEntry]:
    """The table of runs and the choice of runs to compare (the two newest at first)."""
    st.dataframe(table_rows(history), hide_index=True, width="stretch", key="runs_table")
    n, budget = len(history.entries), history_budget(keys.get_limits())
    st.caption(
        f"{n} run{'s' if n != 1 else ''} kept, {mb(history.nbytes())} of the "
        f"{mb(budget)} this session may keep (the current run is counted with training)."
    )
    ids = [e.id for e in history.entries]
    ss = st.session_state
    if SELECTED not in ss:
        ss[SELECTED] = ids[-2:]
    ss[SELECTED] = [i for i in ss[SELECTED] if i in ids]
    chosen = st.multiselect(
        "Runs to compare", ids, key=SELECTED, format_func=lambda i: label(history, i),
        placeholder="Choose runs",
    )  # fmt: skip
    return [e for e in (history.get(i) for i in chosen) if e is not None]


def on_rename(entry_id: int) -> None:
    entry = session_history().get(entry_id)
    name = str(st.session_state.get(f"run_name_{entry_id}", "")).strip()[:80]
    if entry is not None and name:
        entry.name = name


# ------------------------------------------------------------------ curves
def curves(entry: RunEntry) -> dict[str, np.ndarray]:
    """A run's history as arrays (live runs are read consistently while they train)."""
    if entry.run is not None:
        view = runner.history_view(entry.run.trainer.history)
        seconds = np.asarray(entry.run.trainer.history.seconds_per_epoch, dtype=np.float64)
        n_train = entry.run.trainer.n_train
        arrays = {k: getattr(view, k) for k in view.__dataclass_fields__}
    else:
        h = entry.record.history
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in h.items()}
        seconds = arrays.get("seconds_per_epoch", np.zeros(0))
        n_train = entry.record.metrics.get("n_train") or 0
    arrays["n_train"] = float(n_train)
    arrays["epoch_seconds"] = np.cumsum(seconds[: len(arrays.get("epoch", []))])
    return arrays


def x_values(arrays: dict, progress: np.ndarray, axis: str) -> np.ndarray:
    """Epochs done (fractional) as ``axis``: epochs, images seen, or training seconds."""
    if axis == "images seen":
        return progress * arrays["n_train"]
    if axis == "seconds":
        done = np.arange(len(arrays["epoch_seconds"]) + 1, dtype=np.float64)
        return np.interp(progress, done, np.concatenate([[0.0], arrays["epoch_seconds"]]))
    return progress


def overlay_figure(entries: list[RunEntry], axis: str) -> go.Figure:
    """Loss (per batch when kept, else per epoch) and validation accuracy of each run."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Training loss", "Validation accuracy"))
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
    for i, entry in enumerate(entries):
        a, colour = curves(entry), palette[i % len(palette)]
        if len(a.get("batch_loss", [])):
            progress, loss = charts.merge_short_batches(a["batch_progress"], a["batch_loss"])
        else:
            progress, loss = a.get("epoch", np.zeros(0)), a.get("train_loss", np.zeros(0))
        fig.add_scatter(
            x=x_values(a, progress, axis).tolist(), y=np.asarray(loss).tolist(),
            name=entry.name, legendgroup=entry.name,
            line={"color": colour, "width": 1.5}, row=1, col=1,
        )  # fmt: skip
        epochs = a.get("epoch", np.zeros(0))
        fig.add_scatter(
            x=x_values(a, epochs, axis).tolist(),
            y=(100 * np.asarray(a.get("val_accuracy", np.zeros(0)))).tolist(),
            name=entry.name, legendgroup=entry.name, showlegend=False, mode="lines+markers",
            line={"color": colour}, row=1, col=2,
        )  # fmt: skip
    fig.update_xaxes(title_text=axis)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="%", row=1, col=2)
    fig.update_layout(height=380, margin={"t": 40, "b": 40}, legend={"orientation": "h"})
    return fig


# ------------------------------------------------------------------ settings diff
def settings_diff(entries: list[RunEntry]) -> pd.DataFrame:
    """Rows for the settings whose values differ between ``entries`` (columns: run names)."""
    names = list(dict.fromkeys(k for e in entries for k in e.settings))
    rows = {}
    for name in names:
        values = [e.settings.get(name, "–") for e in entries]
        if len({repr(v) for v in values}) > 1:
            rows[name] = [str(v) for v in values]
    columns = [f"{e.name} (#{e.id})" for e in entries]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns)


# ------------------------------------------------------------------ actions
def _say(kind: str, text: str) -> None:
    st.session_state[MESSAGE] = (kind, text)


def on_make_current(entry_id: int) -> None:
    """Make a run the model the other pages show."""
    ss, history = st.session_state, session_history()
    entry = history.get(entry_id)
    if entry is None:
        return
    if entry.run is not None:
        ss[keys.RUN] = entry.run
        _say("success", f"{entry.name} is the current model.")
        return
    current = ss.get(keys.RUN)
    if current is not None and current.active:
        _say("warning", "Stop the training first: the current run is still training.")
        return
    if entry.record is None or entry.record.model is None:
        _say("warning", f"{entry.name} has no trained network to show.")
        return
    history.freeze_idle(current=None)
    ss[keys.RUN] = None
    hosting.ledger().release(hosting.session_id(), "run")
    ss[keys.UPLOADED_MODEL] = loaded_from_record(entry.record)
    _say("success", f"{entry.name} is the current model: the other pages show its network.")


def loaded_from_record(record: RunRecord) -> LoadedModel:
    """A run's network as the other pages take an uploaded model."""
    shape = record.data.get("image_shape")
    return LoadedModel(
        record.model.copy(),
        tuple(record.class_names) or tuple(str(i) for i in range(record.model.sizes[-1])),
        tuple(shape) if shape else None,
        training={**record.metrics, "config": record.config.to_dict()},
    )


def settings_into_sidebar(entry: RunEntry) -> None:
    """Set the sidebar's widgets to the run's settings (training images too)."""
    ss = st.session_state
    config = entry.record.config if entry.record is not None else entry.run.config
    ss.update(keys.widget_values(config, keys.get_limits()))
    images = entry.settings.get("training images")
    ss["cfg_subset"] = images if images in keys.SUBSET_CHOICES else 0
    ss["cfg_preset"] = "custom"


def on_rerun(entry_id: int) -> None:
    """Train again with a run's settings and seed (same data, so the same numbers)."""
    entry = session_history().get(entry_id)
    if entry is None:
        return
    data = data_ui.current_dataset()
    if data is not None and entry.settings.get("data") not in (None, data.name):
        _say(
            "warning",
            f"{entry.name} trained on {entry.settings.get('data')}, but the sidebar's data is "
            f"{data.name}: choose that data first.",
        )
        return
    settings_into_sidebar(entry)
    runner.on_start()
    error = st.session_state.get(keys.CONTROL_ERROR)
    if error:
        _say("error", error)
    else:
        _say("success", f"Training again with the settings and seed of {entry.name}.")


def on_delete(entry_ids: list[int]) -> None:
    ss, history = st.session_state, session_history()
    current = ss.get(keys.RUN)
    ids = [i for i in entry_ids if (e := history.get(i)) is not None and e.run is not current]
    removed = history.delete(ids)
    skipped = len(entry_ids) - removed
    text = f"Deleted {removed} run{'s' if removed != 1 else ''}."
    if skipped:
        text += " The current run stays (press Reset in the sidebar to clear it)."
    ss[SELECTED] = []
    _say("success", text)


def file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"


def run_file(entry: RunEntry) -> bytes:
    return export_run(entry.snapshot())


def all_runs_file(history: RunHistory) -> bytes:
    """A zip of every run's run file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for entry in history.entries:
            archive.writestr(f"{entry.id:03d}-{file_stem(entry.name)}.zip", run_file(entry))
    return buffer.getvalue()


def import_files(files) -> None:
    """Import one run from uploaded files (a run file; metrics JSON and model; a model);
    after an import the uploader is emptied, so the next file is judged alone."""
    kind, text = import_into(session_history(), files, history_budget(keys.get_limits()))
    _say(kind, text)
    if kind == "success":
        ss = st.session_state
        ss[IMPORT_N] = ss.get(IMPORT_N, 0) + 1


def import_into(history: RunHistory, files, budget: int) -> tuple[str, str]:
    """Add the run in ``files`` (objects with ``name`` and ``getvalue()``) to ``history``;
    the message to show as ``(kind, text)``."""
    if not files:
        return "warning", "Choose a run file first."
    try:
        record = import_run_files([(f.name, f.getvalue()) for f in files])
    except (RunFileError, InputFileError) as exc:
        return "error", str(exc)
    except Exception as exc:  # a damaged file must never take the page down
        return "error", f"This file cannot be imported as a run ({type(exc).__name__})."
    entry = history.add_record(record)
    history.enforce_budget(budget)
    return "success", f"Imported {entry.name}."


def show_message() -> None:
    message = st.session_state.pop(MESSAGE, None)
    if message:
        getattr(st, message[0])(message[1])
    for notice in session_history().notices:
        st.info(notice)


def account(history: RunHistory) -> None:
    """Tell the server's memory ledger what this session's kept runs hold."""
    hosting.ledger().set(hosting.session_id(), "history", history.nbytes())


# ------------------------------------------------------------------ learning-rate finder
def on_find_lr() -> None:
    """Run a range test from the sidebar's settings on its data, through the training gate."""
    ss = st.session_state
    ss[LR_MESSAGE] = None
    try:
        config = keys.config_from_state()
    except ValueError as exc:
        ss[LR_MESSAGE] = ("error", f"These settings cannot train: {exc}")
        return
    dataset = data_ui.current_dataset()
    if dataset is None:
        ss[LR_MESSAGE] = ("error", "Upload a valid data set first, or switch the data to MNIST.")
        return
    limits = keys.get_limits()
    subset = data_ui.training_subset(dataset, int(ss.get("cfg_subset", 0)), config.seed)
    try:
        ss[LR_RESULT] = gated_range_test(config, subset, limits)
    except (RuntimeError, MemoryBudgetError, ValueError) as exc:
        ss[LR_MESSAGE] = ("error", str(exc))


class ServerBusyError(RuntimeError):
    """No training slot for a page's short job: the message says why and what to do."""


@contextlib.contextmanager
def training_slot(wait_seconds: float = 30.0) -> Iterator[None]:
    """Hold one of the training gate's slots for a short job of the page (the
    learning-rate finder, a fine-tune), so that it counts against the server's trainings.

    Raises ServerBusyError, with the sentence to show, when the line is full or no slot
    frees up within ``wait_seconds``.
    """
    gate = runner.gate()
    token = -next(_slot_tokens)  # never equal to a run's token (those are positive)
    if not gate.enqueue(token):
        raise ServerBusyError(gate.busy_message())
    deadline = time.monotonic() + wait_seconds
    if not gate.acquire(token, lambda: time.monotonic() > deadline):
        raise ServerBusyError(
            f"The server stayed busy for {wait_seconds:g} s (other trainings hold every slot). "
            "Try again when a training has finished."
        )
    try:
        yield
    finally:
        gate.release(token)


def gated_range_test(config, subset, limits, wait_seconds: float = 30.0) -> LRFinderResult:
    """``find_learning_rate`` once the training gate lets it in; its memory reserved."""
    with training_slot(wait_seconds):
        owner = hosting.session_id()
        try:
            n_inputs = int(np.prod(subset.x_train.shape[1:]))
            estimate = training_memory(config, len(subset.y_train), n_inputs, subset.n_classes)
            hosting.ledger().reserve(
                owner, "lr_finder", estimate, "The learning-rate finder",
                advice(estimate, config, n_inputs),
            )  # fmt: skip
            return find_learning_rate(
                config, subset.x_train, subset.y_train, n_classes=subset.n_classes
            )
        finally:
            hosting.ledger().release(owner, "lr_finder")


def lr_figure(result: LRFinderResult) -> go.Figure:
    """Loss against learning rate (log axis), the suggestion marked."""
    fig = go.Figure()
    fig.add_scatter(
        x=result.lrs.tolist(), y=result.losses.tolist(), name="loss per batch", mode="lines",
        line={"color": "rgba(31,119,180,0.3)"},
    )  # fmt: skip
    fig.add_scatter(
        x=result.lrs.tolist(),
        y=result.smoothed.tolist(),
        name="smoothed",
        line={"color": "#1f77b4"},
    )
    if result.suggested_lr is not None:
        fig.add_vline(x=result.suggested_lr, line={"color": "#d62728", "dash": "dash"})
        fig.add_scatter(
            x=[result.suggested_lr], y=[result.smoothed[result.suggested_index]],
            mode="markers", marker={"color": "#d62728", "size": 11},
            name=f"suggested {result.suggested_lr:.3g}",
        )  # fmt: skip
    top = np.nanpercentile(result.smoothed, 95) if len(result.smoothed) else 1.0
    fig.update_xaxes(type="log", title_text="learning rate")
    fig.update_yaxes(title_text="training loss", range=[0, float(top) * 1.2])
    fig.update_layout(height=360, margin={"t": 20, "b": 40}, legend={"orientation": "h"})
    return fig


def on_use_rate(rate: float) -> None:
    """Set the sidebar's learning rate to ``rate`` (the nearest offered choice)."""
    ss = st.session_state
    checked = check(LR_SETTING, rate, keys.get_limits())
    if checked.value is None:
        ss[LR_MESSAGE] = ("error", f"The rate {rate:.3g} cannot be used: {checked.problem}.")
        return
    ss[LR_SETTING.key] = checked.value
    keys.mark_custom()
    if checked.value != rate:
        text = (
            f"The sidebar offers no {rate:.3g}: its learning rate is set to the nearest "
            f"choice, {LR_SETTING.fmt(checked.value)}."
        )
    else:
        text = f"The sidebar's learning rate is set to {LR_SETTING.fmt(checked.value)}."
    ss[LR_MESSAGE] = ("success", text)


def lr_finder_panel() -> None:
    """The button, the plot, how the rate was chosen, and Use this rate."""
    ss = st.session_state
    st.button(
        "Find a learning rate", key="btn_find_lr", on_click=on_find_lr,
        icon=":material/search:",
        help="A range test: a few hundred batches with the rate growing exponentially, "
        "from the sidebar's settings on its data. Your runs are not changed.",
    )  # fmt: skip
    message = ss.get(LR_MESSAGE)
    result: LRFinderResult | None = ss.get(LR_RESULT)
    if result is not None:
        st.plotly_chart(lr_figure(result), key="lr_finder_chart")
        st.caption(
            f"**How it was chosen:** {result.method.rstrip('.')}. **Why the test ended:** "
            f"{result.stop_reason} ({result.seconds:.1f} s)."
        )
        if result.suggested_lr is None:
            st.warning("The loss did not fall anywhere in the range: no rate to suggest.")
        else:
            st.button(
                f"Use this rate ({result.suggested_lr:.3g})", key="btn_use_lr",
                on_click=on_use_rate, args=(float(result.suggested_lr),), type="primary",
            )  # fmt: skip
    if message:
        getattr(st, message[0])(message[1])


# ------------------------------------------------------------------ the page
def compare_section(history: RunHistory) -> None:
    """Table, choice of runs, overlaid curves and the settings diff (redrawn while a run
    trains)."""
    chosen = runs_table(history)
    if not chosen:
        st.caption("Choose runs above to overlay their curves and see how their settings differ.")
        return
    axis = st.radio("x-axis", X_AXES, horizontal=True, key="runs_x_axis")
    st.plotly_chart(overlay_figure(chosen, axis), key="runs_overlay")
    if len(chosen) > 1:
        diff = settings_diff(chosen)
        st.markdown("**Settings that differ**")
        if diff.empty:
            st.caption("These runs have the same settings.")
        else:
            with st.container(key="runs_diff"):
                st.table(diff)


def actions_section(history: RunHistory) -> None:
    """What can be done with one run, with the chosen runs, and with all of them."""
    ids = [e.id for e in history.entries]
    entry_id = st.selectbox(
        "Run", ids, index=len(ids) - 1, key="run_pick", format_func=lambda i: label(history, i)
    )
    entry = history.get(entry_id)
    if entry is None:
        return
    st.text_input(
        "Name", value=entry.name, key=f"run_name_{entry.id}", on_change=on_rename,
        args=(entry.id,), max_chars=80,
    )  # fmt: skip
    left, mid, right = st.columns(3)
    left.button("Make current", key="btn_run_current", on_click=on_make_current, args=(entry.id,),
                help="The other pages then show this run's network.")  # fmt: skip
    mid.button(
        "Train again", key="btn_run_again", on_click=on_rerun, args=(entry.id,),
        help="The same settings and seed on the same data: the same numbers.",
    )  # fmt: skip
    right.download_button(
        "Download run", data=lambda: run_file(entry), file_name=f"{file_stem(entry.name)}.zip",
        mime="application/zip", key="btn_run_download", on_click="ignore",
    )  # fmt: skip
    chosen = st.session_state.get(SELECTED, [])
    left, right = st.columns(2)
    left.button(
        f"Delete the {len(chosen)} chosen run{'s' if len(chosen) != 1 else ''}",
        key="btn_runs_delete", on_click=on_delete, args=(list(chosen),), disabled=not chosen,
    )  # fmt: skip
    right.download_button(
        "Download all runs", data=lambda: all_runs_file(history), file_name="digitlab-runs.zip",
        mime="application/zip", key="btn_runs_download_all", on_click="ignore",
    )  # fmt: skip


def import_section() -> None:
    st.subheader("Import a run")
    with st.container(key="run_import_box"):
        files = st.file_uploader(
            "A run file (.zip from this page), or a command-line run: its --metrics-json file "
            "with its --out model (.npz)",
            type=["zip", "json", "npz"], accept_multiple_files=True,
            key=f"run_import_{st.session_state.get(IMPORT_N, 0)}",
        )  # fmt: skip
        st.button("Import", key="btn_run_import", on_click=lambda: import_files(files))


def runs_page() -> None:
    """The whole Runs page."""
    history = session_history()
    account(history)
    show_message()
    if not history.entries:
        st.info("No runs yet: press **Start** in the sidebar. Every run is kept here.")
    else:
        live = any(e.run is not None and e.run.active for e in history.entries)
        st.fragment(compare_section, run_every=2.0 if live else None)(history)
        actions_section(history)
    import_section()
    st.subheader("Find a learning rate")
    lr_finder_panel()
    st.subheader("Sweep")
    sweep_section()
