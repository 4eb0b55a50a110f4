"""Session-state keys, their defaults, and the TrainConfig the sidebar widgets describe.

The settings, their widget keys and bounds are ``nn_core.settings.SETTINGS``; this module
only puts them in ``st.session_state``. Defaults are written once per session, before any
widget is created; widgets are then created without ``value=`` so presets and share links
can set them through callbacks.
"""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st

from nn_core import PRESETS, TrainConfig
from nn_core.settings import (
    HIDDEN_LAYERS,
    LAYER_KEY,
    MAX_HIDDEN_LAYERS,
    NEW_LAYER_WIDTH,
    SETTINGS,
    TRAIN_SUBSET,
    Setting,
    check,
    check_hidden,
)
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
# (widget key, or None for the whole settings section; message): a value that was replaced
SETTINGS_NOTICE = "settings_notice"

PRESET_LABELS = {
    "custom": "Custom",
    "notebook": "Notebook (784-10-10, gradient descent)",
    "fast": "Fast",
    "accurate": "Accurate",
}
SUBSET_CHOICES = TRAIN_SUBSET.choices
WIDGET_SETTINGS = tuple(s for s in SETTINGS if s.widget)
DEFAULT_PRESET = "fast"


def widget_values(config: TrainConfig, limits: Limits) -> dict:
    """Widget-key -> value for a config, within what the sidebar offers and the caps."""
    values = {}
    for setting in WIDGET_SETTINGS:
        if setting.kind is tuple:
            hidden = check_hidden(config.hidden, limits).value
            values[setting.key] = len(hidden)
            for i in range(MAX_HIDDEN_LAYERS):
                values[LAYER_KEY.format(i)] = hidden[i] if i < len(hidden) else NEW_LAYER_WIDTH
        else:
            values[setting.key] = check(setting, getattr(config, setting.name), limits).value
    return values


def init_state() -> Limits:
    """Write the defaults once per session; return the caps in force."""
    limits = get_limits()
    ss = st.session_state
    if "cfg_preset" not in ss:
        ss["cfg_preset"] = DEFAULT_PRESET
        for key, value in widget_values(PRESETS[DEFAULT_PRESET], limits).items():
            ss.setdefault(key, value)
        ss.setdefault(TRAIN_SUBSET.key, 0)
        ss.setdefault("data_source", "mnist")
        ss.setdefault("more_epochs", 2)
    for i in range(MAX_HIDDEN_LAYERS):
        ss.setdefault(LAYER_KEY.format(i), NEW_LAYER_WIDTH)  # dropped layer boxes come back
    for key in (RUN, UPLOADED_DATA, UPLOAD_ERROR, UPLOADED_MODEL, MODEL_ERROR, CONTROL_ERROR):
        ss.setdefault(key, None)
    ss.setdefault(SETTINGS_NOTICE, None)
    ss.setdefault(CANVAS_N, 0)
    return limits


def apply_preset() -> None:
    """on_change of the preset box: set every training widget from the preset."""
    ss = st.session_state
    ss[SETTINGS_NOTICE] = None
    name = ss.get("cfg_preset", "custom")
    if name in PRESETS:
        for key, value in widget_values(PRESETS[name], get_limits()).items():
            ss[key] = value


def mark_custom() -> None:
    """The settings no longer match a preset."""
    st.session_state["cfg_preset"] = "custom"


def on_setting_change(setting: Setting, key: str | None = None, label: str | None = None) -> None:
    """on_change of a training setting's widget: custom settings, a number kept in bounds."""
    mark_custom()
    keep_in_bounds(setting, key, label)


def keep_in_bounds(setting: Setting, key: str | None = None, label: str | None = None) -> None:
    """Replace a typed number outside ``setting``'s bounds (or the server's caps) by the
    nearest allowed one, so the box shows what will train, and say so under the box.

    ``key`` and ``label`` are the widget's when they are not the setting's (the boxes of
    the layer widths).
    """
    ss = st.session_state
    key = key or setting.key
    ss[SETTINGS_NOTICE] = None
    raw = ss.get(key)
    checked = check(setting, raw, get_limits())
    if checked.problem is None:
        return
    value = checked.value if checked.value is not None else setting.bounds(get_limits())[0]
    ss[key] = value
    ss[SETTINGS_NOTICE] = (
        key,
        f"{label or setting.label}: {setting.fmt(raw)} {checked.problem}; it is set to "
        f"{setting.fmt(value)}.",
    )


def hidden_from_state(ss: Mapping | None = None) -> tuple[int, ...]:
    ss = st.session_state if ss is None else ss
    n = int(ss.get(HIDDEN_LAYERS.key, 0))
    return tuple(int(ss.get(LAYER_KEY.format(i), NEW_LAYER_WIDTH)) for i in range(n))


def config_from_state(ss: Mapping | None = None) -> TrainConfig:
    """The TrainConfig the sidebar shows (raises ValueError on an invalid combination)."""
    ss = st.session_state if ss is None else ss
    values = {
        s.name: s.kind(ss[s.key]) for s in WIDGET_SETTINGS if s.kind is not tuple and s.key in ss
    }
    values["hidden"] = hidden_from_state(ss)
    return TrainConfig.from_dict(values)


def architecture_label(sizes) -> str:
    return "-".join(str(int(s)) for s in sizes)
