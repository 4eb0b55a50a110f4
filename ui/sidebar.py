"""The shared sidebar: data, network and training settings, and the run controls."""

from __future__ import annotations

import streamlit as st

from nn_core.data import DataError
from ui import data as data_ui
from ui import share
from ui import state as keys
from ui.limits import Limits
from ui.runner import TrainingRun, get_gate, limit_blas_threads


# --------------------------------------------------------------------- datasets
def current_dataset():
    """The dataset chosen in the sidebar (MNIST, or this session's upload), or None."""
    ss = st.session_state
    if ss.get("data_source") == "upload":
        return ss.get(keys.UPLOADED_DATA)
    return data_ui.mnist()


def _on_upload() -> None:
    ss = st.session_state
    files = ss.get("data_upload") or []
    if not files:
        ss[keys.UPLOAD_ERROR] = None
        return
    try:
        dataset = data_ui.load_upload(files, keys.get_limits().max_upload_bytes)
    except (DataError, ValueError) as exc:
        ss[keys.UPLOAD_ERROR] = str(exc)
        return
    except Exception as exc:  # last line of defence: an unforeseen file must not break the page
        names = ", ".join(getattr(f, "name", "?") for f in files)
        ss[keys.UPLOAD_ERROR] = (
            f"{names} could not be read ({type(exc).__name__}: {exc}). Upload a Kaggle CSV "
            "(label, pixel0, ...), an .npz with x_train and y_train, or MNIST IDX files."
        )
        return
    ss[keys.UPLOADED_DATA] = dataset
    ss[keys.UPLOAD_ERROR] = None


# --------------------------------------------------------------------- controls
def _new_run() -> TrainingRun | None:
    ss = st.session_state
    ss[keys.CONTROL_ERROR] = None
    limits = keys.get_limits()
    try:
        config = keys.config_from_state()
    except ValueError as exc:
        ss[keys.CONTROL_ERROR] = f"These settings cannot train: {exc}"
        return None
    dataset = current_dataset()
    if dataset is None:
        ss[keys.CONTROL_ERROR] = "Upload a valid data set first, or switch the data to MNIST."
        return None
    limit_blas_threads(limits.blas_threads)
    subset = data_ui.training_subset(dataset, int(ss.get("cfg_subset", 0)), config.seed)
    settings = {
        "data": dataset.name,
        "training images": len(subset.y_train),
        "preset": keys.PRESET_LABELS.get(ss.get("cfg_preset"), "Custom"),
        **config.to_dict(),
    }
    try:
        run = TrainingRun(
            config,
            subset,
            get_gate(limits.max_concurrent),
            limits.max_train_seconds,
            settings=settings,
        )
    except ValueError as exc:
        ss[keys.CONTROL_ERROR] = f"Cannot train on this data: {exc}"
        return None
    old = ss.get(keys.RUN)
    if old is not None:
        old.stop()
    ss[keys.RUN] = run
    return run


def on_start() -> None:
    run = _new_run()
    if run is not None:
        run.start()


def on_stop() -> None:
    run = st.session_state.get(keys.RUN)
    if run is not None:
        run.stop(wait=1.0)


def on_step() -> None:
    ss = st.session_state
    run = ss.get(keys.RUN)
    if run is None:
        run = _new_run()
    if run is not None and not run.active:
        run.step()


def on_continue() -> None:
    ss = st.session_state
    run = ss.get(keys.RUN)
    if run is None:
        on_start()
        return
    if run.active:
        return
    ss[keys.CONTROL_ERROR] = None
    if run.finished:
        limits = keys.get_limits()
        room = limits.max_epochs - run.trainer.epochs_done
        more = min(int(ss.get("more_epochs", 1)), room)
        if more < 1:
            ss[keys.CONTROL_ERROR] = (
                f"This run has reached the cap of {limits.max_epochs} epochs on this server "
                "(DIGITLAB_MAX_EPOCHS)."
            )
            return
        run.extend(more)
    run.start()


def on_reset() -> None:
    ss = st.session_state
    run = ss.get(keys.RUN)
    if run is not None:
        run.stop(wait=1.0)
    ss[keys.RUN] = None
    ss[keys.CONTROL_ERROR] = None


# --------------------------------------------------------------------- progress
def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def progress_panel(run: TrainingRun | None) -> None:
    """Status, epoch / batch, throughput and time left (call inside a fragment)."""
    if run is None:
        st.caption("No training yet. Press **Start** (or **Step** for one batch).")
        return
    p = run.progress()
    if run.state == "queued":
        ahead = run.queue_position
        st.info(f"Queued: {ahead} training{'s' if ahead != 1 else ''} ahead. It starts by itself.")
    status = (
        "training"
        if run.state == "running"
        else "queued"
        if run.state == "queued"
        else "finished"
        if run.finished
        else "stopped"
        if p["batches_done"]
        else "ready"
    )
    st.progress(
        p["fraction"], text=f"{status}: epoch {p['epoch_fraction']:.2f} / {p['target_epochs']}"
    )
    epoch = p["epochs_done"] if run.finished else min(p["epochs_done"] + 1, p["target_epochs"])
    rate = p["samples_per_second"]
    left = _fmt_seconds(p["seconds_left"]) if run.active else "–"
    line = (
        f"**Epoch** {epoch}/{p['target_epochs']} · **batch** {p['batch']}/{p['batches_per_epoch']}"
    )
    if rate:
        line += f"  \n**{rate:,.0f}** images/s · **{left}** left"
    st.markdown(line)
    if run.message:
        st.warning(run.message)
    if run.error:
        st.error(run.error)


def live_area(render, every: float = 0.5) -> None:
    """Render ``render()`` in a fragment that redraws every ``every`` s while a run is active.

    When the run stops, the fragment asks for one full rerun so the page settles and the
    automatic reruns end.
    """
    run = st.session_state.get(keys.RUN)
    was_active = bool(run is not None and run.active)

    @st.fragment(run_every=every if was_active else None)
    def _area() -> None:
        render()
        now = st.session_state.get(keys.RUN)
        if was_active and not (now is not None and now.active):
            st.rerun()

    _area()


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


def _data_section(limits: Limits) -> None:
    ss = st.session_state
    st.radio(
        "Data",
        ["mnist", "upload"],
        format_func={"mnist": "MNIST (built in)", "upload": "Upload a file"}.get,
        key="data_source",
        horizontal=True,
    )
    if ss.get("data_source") == "upload":
        st.file_uploader(
            "Data set: Kaggle CSV, .npz, or IDX files",
            accept_multiple_files=True,
            key="data_upload",
            on_change=_on_upload,
            help=(
                "A Kaggle-style CSV (label, pixel0..pixel783), an .npz with x_train/y_train "
                "(and x_test/y_test), or the MNIST IDX files (train-images-idx3-ubyte[.gz] "
                f"with its labels). Up to {limits.max_upload_mb:g} MB."
            ),
        )
        if ss.get(keys.UPLOAD_ERROR):
            st.error(ss[keys.UPLOAD_ERROR])
        dataset = ss.get(keys.UPLOADED_DATA)
        if dataset is not None:
            st.caption(
                f"Using **{dataset.name}**: {len(dataset.y_train):,} training and "
                f"{len(dataset.y_test):,} test images, {dataset.n_classes} classes."
            )
    st.selectbox(
        "Training images",
        keys.SUBSET_CHOICES,
        key="cfg_subset",
        format_func=data_ui.subset_label,
        help="A stratified subset for quick experiments; 'all' uses the whole training set.",
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
            on_click=on_start,
            disabled=active,
            type="primary",
            help="Train a new network from scratch with the settings below.",
        )
        c2.button(
            "Stop",
            key="btn_stop",
            on_click=on_stop,
            disabled=not active,
            help="Stop after the current batch; the model trained so far is kept.",
        )
        c3.button(
            "Step", key="btn_step", on_click=on_step, disabled=active, help="Train on one batch."
        )
        c4, c5 = st.columns([2, 1])
        c4.button(
            "Continue",
            key="btn_continue",
            on_click=on_continue,
            disabled=active,
            help="Resume a stopped run, or train a finished one for more epochs.",
        )
        c5.button("Reset", key="btn_reset", on_click=on_reset, help="Forget the run.")
        st.number_input(
            "More epochs (Continue)",
            min_value=1,
            max_value=limits.max_epochs,
            step=1,
            key="more_epochs",
        )
        if ss.get(keys.CONTROL_ERROR):
            st.error(ss[keys.CONTROL_ERROR])
        live_area(lambda: progress_panel(st.session_state.get(keys.RUN)), every=1.0)
        st.divider()
        _data_section(limits)
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
