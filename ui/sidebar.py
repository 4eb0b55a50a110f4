"""The shared sidebar: data, network and training settings, and the run controls."""

from __future__ import annotations

import streamlit as st

from nn_core.settings import BY_NAME, HIDDEN_LAYERS, LAYER_KEY, LAYER_WIDTH, Setting
from ui import data as data_ui
from ui import runner, share
from ui import state as keys
from ui.limits import Limits
from ui.views import live_area

# --------------------------------------------------------------------- settings
# The layout: which settings of nn_core.settings.SETTINGS go in which expander, in order.
NETWORK = ("hidden", "activation", "init")
TRAINING = (
    "optimizer", "lr", "momentum", "schedule", "batch_size", "epochs", "l2", "dropout",
    "val_fraction", "val_every", "augment_shift", "augment_rotation",
    "augment_elastic", "seed",
)  # fmt: skip
MORE_EPOCHS = Setting(
    "more_epochs",
    "More epochs (Continue)",
    "epochs added when Continue finds the run finished",
    int,
    widget="number",
    key="more_epochs",
    low=1,
    high=100_000,
    step=1,
    cap="max_epochs",
)


def _settings(limits: Limits) -> None:
    ss = st.session_state
    st.selectbox(
        "Preset",
        list(keys.PRESET_LABELS),
        format_func=keys.PRESET_LABELS.get,
        key="cfg_preset",
        on_change=keys.apply_preset,
        help="Sets every network and training setting below.",
    )
    _notice(None)
    with st.expander("Network", expanded=True):
        for name in NETWORK:
            setting_widget(BY_NAME[name], limits)
    with st.expander("Training", expanded=False):
        for name in TRAINING:
            disabled = name == "momentum" and ss.get("cfg_optimizer") != "sgd"
            setting_widget(BY_NAME[name], limits, disabled=disabled)


def setting_widget(setting: Setting, limits: Limits, disabled: bool = False) -> None:
    """The widget the settings table names for ``setting``, and its notice if any."""
    if setting.widget == "layers":
        _layer_boxes(limits)
        return
    options = {
        "key": setting.key,
        "on_change": keys.on_setting_change,
        "args": (setting,),
        "help": _help(setting, limits),
        "disabled": disabled,
    }
    if setting.widget == "select":
        st.selectbox(setting.label, setting.choices, format_func=setting.fmt, **options)
    elif setting.widget == "select_slider":
        st.select_slider(setting.label, setting.choices, format_func=setting.fmt, **options)
    elif setting.widget == "slider":
        low, high = setting.bounds(limits)
        kind = setting.kind
        st.slider(setting.label, kind(low), kind(high), step=kind(setting.step), **options)
    elif setting.widget == "number":
        _number_box(setting, **options)
    _notice(setting.key)


def _number_box(setting: Setting, label: str | None = None, **options) -> None:
    """A number box without min/max: the browser then sends whatever is typed, and the
    on_change callback replaces a value out of bounds, so the box shows what trains."""
    st.number_input(label or setting.label, step=setting.kind(setting.step), **options)


def _layer_boxes(limits: Limits) -> None:
    ss = st.session_state
    count = HIDDEN_LAYERS
    _number_box(
        count,
        key=count.key,
        on_change=keys.on_setting_change,
        args=(count,),
        help=_help(count, limits),
    )
    _notice(count.key)
    width = LAYER_WIDTH
    for i in range(int(ss.get(count.key, 0))):
        key, label = LAYER_KEY.format(i), f"{width.label} {i + 1}"
        _number_box(
            width,
            label,
            key=key,
            on_change=keys.on_setting_change,
            args=(width, key, label),
            help=_help(width, limits),
        )
        _notice(key)


def _help(setting: Setting, limits: Limits) -> str:
    text = setting.help[0].upper() + setting.help[1:] + "."
    if setting.widget == "number":
        low, high = setting.bounds(limits)
        text += f" From {setting.fmt(low)} to {setting.fmt(high)} on this server."
    return text


def _notice(key: str | None) -> None:
    """The message about a replaced value, under the widget it concerns."""
    notice = st.session_state.get(keys.SETTINGS_NOTICE)
    if notice and notice[0] == key:
        st.warning(notice[1], icon=":material/info:")


def _share_box() -> None:
    with st.expander("Share these settings"):
        link = f"{_base_url()}?{share.query_string(st.session_state)}"
        st.code(link, language=None, wrap_lines=True)
        st.caption(
            "Opening this link restores these settings (not the trained model). The page's "
            "address follows the settings too, so a reload keeps them."
        )


def render_sidebar() -> Limits:
    """Draw the whole sidebar; return the caps in force."""
    limits = keys.init_state()
    share.restore_once(st)
    ss = st.session_state
    run = ss.get(keys.RUN)
    active = bool(run is not None and run.active)
    with st.sidebar:
        st.markdown("### Train")
        c1, c2, c3 = st.columns(3)
        c1.button(
            "Start",
            key="btn_start",
            on_click=runner.on_start,
            disabled=active,
            type="primary",
            help="Train a new network from scratch with the settings below.",
        )
        c2.button(
            "Stop",
            key="btn_stop",
            on_click=runner.on_stop,
            disabled=not active,
            help="Stop after the current batch; the model trained so far is kept.",
        )
        c3.button(
            "Step",
            key="btn_step",
            on_click=runner.on_step,
            disabled=active,
            help="Train on one batch.",
        )
        c4, c5 = st.columns([2, 1])
        c4.button(
            "Continue",
            key="btn_continue",
            on_click=runner.on_continue,
            disabled=active,
            help="Resume a stopped run, or train a finished one for more epochs.",
        )
        c5.button("Reset", key="btn_reset", on_click=runner.on_reset, help="Forget the run.")
        _number_box(
            MORE_EPOCHS,
            key=MORE_EPOCHS.key,
            on_change=keys.keep_in_bounds,
            args=(MORE_EPOCHS,),
            help=_help(MORE_EPOCHS, limits),
        )
        _notice(MORE_EPOCHS.key)
        if ss.get(keys.CONTROL_ERROR):
            st.error(ss[keys.CONTROL_ERROR])
        live_area(lambda: runner.live_run_panel(st.session_state.get(keys.RUN)), every=1.0)
        st.divider()
        data_ui.data_section(limits)
        _settings(limits)
        _share_box()
        st.caption(
            f"Server caps: {limits.max_epochs} epochs, {limits.max_width} units per layer, "
            f"{limits.max_train_seconds:g} s per run, {limits.max_concurrent} trainings at "
            f"once, {limits.max_upload_mb:g} MB uploads. Self-hosting? Raise them with the "
            "DIGITLAB_MAX_* environment variables (docs/DEPLOY.md)."
        )
    share.sync_url(st)
    return limits


def _base_url() -> str:
    try:
        url = st.context.url or ""
    except AttributeError:
        url = ""
    return url.split("?")[0] or ""
