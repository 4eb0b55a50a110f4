"""Session-state keys, their defaults, and the TrainConfig the sidebar widgets describe.

Every widget has a stable key (also handy for browser tests). Defaults are written into
``st.session_state`` once per session, before any widget is created; widgets are then
created without ``value=`` so presets and share links can set them through callbacks.
"""

from __future__ import annotations

import streamlit as st

from nn_core import PRESETS, TrainConfig
from nn_core.activations import ACTIVATIONS
from nn_core.init import INITS
from nn_core.optimizers import OPTIMIZERS, SCHEDULES
from ui.limits import Limits, get_limits

# Non-widget keys
RUN = "run"  # ui.runner.TrainingRun or None
UPLOADED_DATA = "uploaded_dataset"  # nn_core.data.Dataset or None
UPLOAD_ERROR = "upload_error"
UPLOADED_MODEL = "uploaded_model"  # nn_core.io.LoadedModel or None
MODEL_ERROR = "model_error"
CONTROL_ERROR = "control_error"
CANVAS_N = "canvas_n"  # bumping it clears the drawing canvas
RESTORED = "_share_restored"

PRESET_LABELS = {
    "custom": "Custom",
    "notebook": "Notebook (784-10-10, gradient descent)",
    "fast": "Fast",
    "accurate": "Accurate",
}
LR_CHOICES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 0.5, 1.0, 3.0)
L2_CHOICES = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
BATCH_CHOICES = (0, 16, 32, 64, 128, 256, 512, 1024)
SUBSET_CHOICES = (2000, 5000, 20000, 0)
ACTIVATION_CHOICES = tuple(ACTIVATIONS)
INIT_CHOICES = tuple(INITS)
OPTIMIZER_CHOICES = tuple(OPTIMIZERS)
SCHEDULE_CHOICES = tuple(SCHEDULES)
MAX_LAYERS_UI = 4
MAX_SHIFT_UI = 4  # pixels
MAX_ROTATION_UI = 20.0  # degrees
MAX_VAL_EVERY_UI = 100  # epochs

# Widget keys -> TrainConfig fields (hidden sizes live in cfg_layers + cfg_h0..cfg_h3)
FIELD_KEYS = {
    "activation": "cfg_activation",
    "init": "cfg_init",
    "optimizer": "cfg_optimizer",
    "lr": "cfg_lr",
    "momentum": "cfg_momentum",
    "schedule": "cfg_schedule",
    "batch_size": "cfg_batch",
    "epochs": "cfg_epochs",
    "l2": "cfg_l2",
    "dropout": "cfg_dropout",
    "val_fraction": "cfg_val",
    "val_every": "cfg_val_every",
    "seed": "cfg_seed",
    "augment_shift": "cfg_shift",
    "augment_rotation": "cfg_rotation",
}
DEFAULT_PRESET = "fast"


def nearest(choices, value):
    """The choice closest to ``value`` (for select sliders fed by presets or links)."""
    return min(choices, key=lambda c: abs(float(c) - float(value)))


def widget_values(config: TrainConfig, limits: Limits) -> dict:
    """Widget-key -> value for a config, clamped to the server's caps."""
    hidden = [min(int(h), limits.max_width) for h in config.hidden][:MAX_LAYERS_UI]
    values = {
        "cfg_layers": len(hidden),
        "cfg_activation": config.activation,
        "cfg_init": config.init,
        "cfg_optimizer": config.optimizer,
        "cfg_lr": nearest(LR_CHOICES, config.lr),
        "cfg_momentum": round(float(config.momentum), 2),
        "cfg_schedule": config.schedule,
        "cfg_batch": nearest(BATCH_CHOICES, config.batch_size),
        "cfg_epochs": max(1, min(int(config.epochs), limits.max_epochs)),
        "cfg_l2": nearest(L2_CHOICES, config.l2),
        "cfg_dropout": round(min(float(config.dropout), 0.8), 2),
        "cfg_val": round(min(float(config.val_fraction), 0.5), 2),
        "cfg_val_every": max(1, min(int(config.val_every), MAX_VAL_EVERY_UI)),
        "cfg_seed": int(config.seed),
        "cfg_shift": min(int(config.augment_shift), MAX_SHIFT_UI),
        "cfg_rotation": float(min(config.augment_rotation, MAX_ROTATION_UI)),
    }
    for i in range(MAX_LAYERS_UI):
        values[f"cfg_h{i}"] = hidden[i] if i < len(hidden) else 32
    return values


def init_state() -> Limits:
    """Write the defaults once per session; return the caps in force."""
    limits = get_limits()
    ss = st.session_state
    if "cfg_preset" not in ss:
        ss["cfg_preset"] = DEFAULT_PRESET
        for key, value in widget_values(PRESETS[DEFAULT_PRESET], limits).items():
            ss.setdefault(key, value)
        ss.setdefault("cfg_subset", 0)
        ss.setdefault("data_source", "mnist")
        ss.setdefault("more_epochs", 2)
    for i in range(MAX_LAYERS_UI):
        ss.setdefault(f"cfg_h{i}", 32)  # layer inputs dropped while hidden come back
    for key in (RUN, UPLOADED_DATA, UPLOAD_ERROR, UPLOADED_MODEL, MODEL_ERROR, CONTROL_ERROR):
        ss.setdefault(key, None)
    ss.setdefault(CANVAS_N, 0)
    return limits


def apply_preset() -> None:
    """on_change of the preset box: set every training widget from the preset."""
    name = st.session_state.get("cfg_preset", "custom")
    if name in PRESETS:
        for key, value in widget_values(PRESETS[name], get_limits()).items():
            st.session_state[key] = value


def mark_custom() -> None:
    """on_change of a training widget: the settings no longer match a preset."""
    st.session_state["cfg_preset"] = "custom"


def hidden_from_state(ss=None) -> tuple[int, ...]:
    ss = st.session_state if ss is None else ss
    n = int(ss.get("cfg_layers", 0))
    return tuple(int(ss.get(f"cfg_h{i}", 32)) for i in range(n))


def config_from_state(ss=None) -> TrainConfig:
    """The TrainConfig the sidebar shows (raises ValueError on an invalid combination)."""
    ss = st.session_state if ss is None else ss
    values = {field: ss[key] for field, key in FIELD_KEYS.items() if key in ss}
    values["hidden"] = hidden_from_state(ss)
    for name in ("batch_size", "epochs", "seed", "augment_shift", "val_every"):
        if name in values:
            values[name] = int(values[name])
    for name in ("lr", "momentum", "l2", "dropout", "val_fraction", "augment_rotation"):
        values[name] = float(values[name])
    return TrainConfig.from_dict(values)


def architecture_label(sizes) -> str:
    return "-".join(str(int(s)) for s in sizes)
