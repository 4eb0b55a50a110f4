"""The Network page's Health tab: "Show me" lessons, warnings in plain words, and the
per-layer panels they link to.

A lesson is a set of settings: its button writes them into the sidebar's widgets (as a
preset does), chooses MNIST and its number of training images, and starts the run through
``ui.runner.on_start``. Its link is the settings' share link plus ``lesson=<name>``.
"""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from nn_core.health import divergence_origin, warnings
from nn_core.lessons import LESSONS, Lesson
from nn_core.settings import TRAIN_SUBSET
from ui import network_figures as nf
from ui import runner, share
from ui import state as keys

LESSON = "lesson"  # session-state key and query parameter: the lesson being shown
# The panels warnings link to: panel name -> (anchor, heading)
PANELS = {
    "gradients": ("gradients", "Gradient size per layer"),
    "updates": ("updates", "Update size per layer"),
    "units": ("units", "Dead and saturated units"),
    "losses": ("losses", "Training and validation loss"),
    "histograms": ("histograms", "Histograms"),
}


# --------------------------------------------------------------------------- lessons
def lesson_widget_values(lesson: Lesson) -> dict:
    """Widget key -> value that sets the sidebar to ``lesson``."""
    values = keys.widget_values(lesson.config, keys.get_limits())
    values[TRAIN_SUBSET.key] = lesson.train_images
    values["cfg_preset"] = "custom"
    return values


def lesson_query(lesson: Lesson) -> dict[str, str]:
    """The lesson's share link parameters: its settings, then ``lesson=<name>``."""
    return {**share.to_query(lesson_widget_values(lesson)), LESSON: lesson.name}


def start_lesson(name: str) -> None:
    """on_click of a lesson button: set the sidebar to the lesson and start training."""
    ss = st.session_state
    lesson = LESSONS[name]
    for key, value in lesson_widget_values(lesson).items():
        ss[key] = value
    ss["data_source"] = "mnist"
    ss[keys.SETTINGS_NOTICE] = None
    ss[LESSON] = name
    runner.on_start()


def lesson_of(run) -> Lesson | None:
    """The lesson ``run`` is, when it was started as one and still has its settings."""
    lesson = LESSONS.get(st.session_state.get(LESSON) or "")
    if lesson is None or run is None or run.disposed:
        return None
    same = run.config == lesson.config and run.settings.get("training images") == (
        lesson.train_images
    )
    return lesson if same else None


def lesson_buttons() -> None:
    st.markdown(
        "**Show me** a classic failure: one click sets it up, trains it and points at the evidence."
    )
    columns = st.columns(len(LESSONS))
    run = st.session_state.get(keys.RUN)
    busy = bool(run is not None and run.active)
    for column, lesson in zip(columns, LESSONS.values()):
        column.button(
            lesson.button,
            key=f"lesson_{lesson.name}",
            on_click=start_lesson,
            args=(lesson.name,),
            help=lesson.setup,
            disabled=busy,
            width="stretch",
        )


def lesson_card(run) -> None:
    """What the lesson set up and where to look; or, from a link, the offer to run it."""
    lesson = lesson_of(run)
    if lesson is not None:
        if st.query_params.get(LESSON) != lesson.name:
            st.query_params[LESSON] = lesson.name  # the address is the lesson's link
        state = "training…" if run.active else "done"
        st.info(
            f"**Lesson: {lesson.title}** ({state}). {lesson.setup}\n\n**Look at:** "
            f"{lesson.look_at}",
            icon=":material/school:",
        )
        _share_lesson(lesson)
        return
    offered = LESSONS.get(st.query_params.get(LESSON) or "")
    if offered is not None:
        st.info(
            f"**This link opens a lesson: {offered.title}.** {offered.setup}",
            icon=":material/school:",
        )
        st.button(
            f"Run this lesson: {offered.title}",
            key="lesson_offered",
            on_click=start_lesson,
            args=(offered.name,),
            type="primary",
            disabled=bool(run is not None and run.active),
        )


def _share_lesson(lesson: Lesson) -> None:
    with st.expander("Share this lesson"):
        st.code(f"{_base_url()}?{urlencode(lesson_query(lesson))}", language=None, wrap_lines=True)
        st.caption("The link sets these settings and offers to run the lesson.")


def _base_url() -> str:
    try:
        url = st.context.url or ""
    except AttributeError:
        url = ""
    return url.split("?")[0]


# --------------------------------------------------------------------------- panels
def warning_boxes(found) -> None:
    """One box per warning, each with a link to the panel that shows it."""
    for warning in found:
        anchor, heading = PANELS[warning.panel]
        text = f"**{warning.title}.** {warning.text} [See: {heading} ↓](#{anchor})"
        if warning.kind == "diverged":
            st.error(text, icon=":material/error:")
        else:
            st.warning(text, icon=":material/warning:")


def _heading(panel: str) -> None:
    anchor, heading = PANELS[panel]
    st.subheader(heading, anchor=anchor)


def lesson_section() -> None:
    """The lesson buttons and the lesson card (outside any fragment: a click must rerun
    the whole page, so the sidebar and the live areas see the new run)."""
    run = st.session_state.get(keys.RUN)
    lesson_buttons()
    lesson_card(run)


def render_health() -> None:
    """Warnings and panels of this session's run (call inside a live area)."""
    ss = st.session_state
    run = ss.get(keys.RUN)
    watch = getattr(run, "watch", None) if run is not None and not run.disposed else None
    if watch is None:
        st.info(
            "Train a network (**Start** in the sidebar) or run a lesson above: its health is "
            "recorded while it trains."
        )
        return
    records = watch.health.snapshot()
    history = run.history()
    divergence = run.trainer.divergence
    found = warnings(records, history, divergence)
    warning_boxes(found)
    if not records:
        st.caption("The first figures come after the first batch.")
        return
    if not found:
        st.success(
            "No warning: gradients reach every layer, units are alive and the "
            "validation loss has not turned.",
            icon=":material/check_circle:",
        )
    every = watch.health.cadence(run.trainer.batch_size)
    st.caption(
        f"Measured on {watch.health.y_probe.shape[0]} fixed training images (the probe "
        f"batch) at batches 1, 2, 4, … and then every {every}: {len(records)} records so far."
    )
    origin = divergence_origin(records, divergence) if divergence is not None else None
    _panels(records, history, run.model.activation, origin)


def _panels(records, history, activation: str, origin) -> None:
    left, right = st.columns(2)
    with left:
        _heading("gradients")
        relative = (
            st.radio(
                "Gradient",
                ["relative", "raw"],
                key="health_grad_kind",
                horizontal=True,
                format_func={"relative": "relative to the weights", "raw": "norm"}.get,
                label_visibility="collapsed",
            )
            == "relative"
        )
        st.plotly_chart(nf.gradient_figure(records, relative), key="health_gradients")
    with right:
        _heading("updates")
        st.plotly_chart(nf.update_figure(records, origin), key="health_updates")
    left, right = st.columns(2)
    with left:
        _heading("units")
        st.plotly_chart(nf.units_figure(records, activation), key="health_units")
    with right:
        _heading("losses")
        if len(history.epoch):
            st.plotly_chart(nf.loss_figure(history), key="health_losses")
        else:
            st.caption("The losses appear after the first epoch.")
    _histograms(records)


def _histograms(records) -> None:
    _heading("histograms")
    kind_col, time_col = st.columns([1, 2])
    kind = kind_col.radio(
        "Values",
        list(nf.HISTOGRAM_KINDS),
        key="health_hist_kind",
        horizontal=True,
        format_func={
            "weights": "weights",
            "activations": "activations",
            "gradients": "gradients",
        }.get,
    )
    labels = [f"epoch {r.epoch}, batch {r.batch_in_epoch}" for r in records]
    ss = st.session_state
    # Follow the newest record unless a person moved the slider to an older one.
    if ss.get("health_hist_at") not in labels or ss.get("health_hist_at") == ss.get(
        "_health_hist_newest"
    ):
        ss["health_hist_at"] = labels[-1]
    ss["_health_hist_newest"] = labels[-1]
    if len(labels) > 1:
        time_col.select_slider(
            "Time", labels, key="health_hist_at", help="Slide through the records."
        )
    record = records[labels.index(ss["health_hist_at"])]
    st.plotly_chart(nf.histogram_figure(record, kind), key="health_histograms")
