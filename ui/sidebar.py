"""The shared sidebar: data, network and training settings, and the run controls."""

from __future__ import annotations

import streamlit as st

from ui import data as data_ui
from ui import runner, share
from ui import state as keys
from ui.limits import Limits
from ui.views import live_area


# --------------------------------------------------------------------- settings
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
    with st.expander("Network", expanded=True):
        st.number_input(
            "Hidden layers",
            min_value=0,
            max_value=min(keys.MAX_LAYERS_UI, limits.max_layers),
            step=1,
            key="cfg_layers",
            on_change=keys.mark_custom,
            help="0 is softmax regression; add layers for a deeper network.",
        )
        for i in range(int(ss.get("cfg_layers", 0))):
            st.number_input(
                f"Units in hidden layer {i + 1}",
                min_value=1,
                max_value=limits.max_width,
                step=8,
                key=f"cfg_h{i}",
                on_change=keys.mark_custom,
            )
        st.selectbox(
            "Activation", keys.ACTIVATION_CHOICES, key="cfg_activation", on_change=keys.mark_custom
        )
        st.selectbox(
            "Initialisation", keys.INIT_CHOICES, key="cfg_init", on_change=keys.mark_custom
        )
    with st.expander("Training", expanded=False):
        st.selectbox(
            "Optimizer",
            keys.OPTIMIZER_CHOICES,
            key="cfg_optimizer",
            on_change=keys.mark_custom,
            help="gd: plain gradient descent (the notebook); sgd: with momentum; adam.",
        )
        st.select_slider(
            "Learning rate",
            keys.LR_CHOICES,
            key="cfg_lr",
            format_func=lambda v: f"{v:g}",
            on_change=keys.mark_custom,
        )
        st.slider(
            "Momentum (sgd)",
            0.0,
            0.99,
            step=0.01,
            key="cfg_momentum",
            on_change=keys.mark_custom,
            disabled=ss.get("cfg_optimizer") != "sgd",
        )
        st.selectbox(
            "Schedule", keys.SCHEDULE_CHOICES, key="cfg_schedule", on_change=keys.mark_custom
        )
        st.selectbox(
            "Batch size",
            keys.BATCH_CHOICES,
            key="cfg_batch",
            format_func=lambda b: "full batch" if b == 0 else str(b),
            on_change=keys.mark_custom,
        )
        st.number_input(
            "Epochs",
            min_value=1,
            max_value=limits.max_epochs,
            step=1,
            key="cfg_epochs",
            on_change=keys.mark_custom,
            help=f"Up to {limits.max_epochs} on this server (DIGITLAB_MAX_EPOCHS).",
        )
        st.select_slider(
            "L2",
            keys.L2_CHOICES,
            key="cfg_l2",
            format_func=lambda v: f"{v:g}",
            on_change=keys.mark_custom,
        )
        st.slider("Dropout", 0.0, 0.8, step=0.05, key="cfg_dropout", on_change=keys.mark_custom)
        st.slider(
            "Validation fraction", 0.0, 0.5, step=0.05, key="cfg_val", on_change=keys.mark_custom
        )
        st.number_input(
            "Validate every (epochs)",
            min_value=1,
            max_value=keys.MAX_VAL_EVERY_UI,
            step=1,
            key="cfg_val_every",
            on_change=keys.mark_custom,
            help="The validation set is scored after every n-th epoch and after the last. "
            "With full-batch training an epoch is one step, and scoring each time can cost "
            "as much as the step.",
        )
        st.slider(
            "Augment: random shift (pixels)",
            0,
            keys.MAX_SHIFT_UI,
            step=1,
            key="cfg_shift",
            on_change=keys.mark_custom,
            help="Each training image is moved by up to this many pixels, a new draw per batch.",
        )
        st.slider(
            "Augment: random rotation (degrees)",
            0.0,
            keys.MAX_ROTATION_UI,
            step=1.0,
            key="cfg_rotation",
            on_change=keys.mark_custom,
            help="Each training image is turned by up to this angle, either way.",
        )
        st.number_input(
            "Seed",
            min_value=0,
            max_value=2**31 - 1,
            step=1,
            key="cfg_seed",
            on_change=keys.mark_custom,
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
        st.number_input(
            "More epochs (Continue)",
            min_value=1,
            max_value=limits.max_epochs,
            step=1,
            key="more_epochs",
        )
        if ss.get(keys.CONTROL_ERROR):
            st.error(ss[keys.CONTROL_ERROR])
        live_area(lambda: runner.progress_panel(st.session_state.get(keys.RUN)), every=1.0)
        st.divider()
        data_ui.data_section(limits)
        _settings(limits)
        with st.expander("Share these settings"):
            query = share.query_string(ss)
            base = _base_url()
            st.code(f"{base}?{query}", language=None)
            st.caption("Opening this link restores these settings (not the trained model).")
        st.caption(
            f"Server caps: {limits.max_epochs} epochs, {limits.max_width} units per layer, "
            f"{limits.max_train_seconds:g} s per run, {limits.max_concurrent} trainings at "
            f"once, {limits.max_upload_mb:g} MB uploads. Self-hosting? Raise them with the "
            "DIGITLAB_MAX_* environment variables (docs/DEPLOY.md)."
        )
    return limits


def _base_url() -> str:
    try:
        url = st.context.url or ""
    except AttributeError:
        url = ""
    return url.split("?")[0] or ""
