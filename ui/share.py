"""Settings <-> URL query string, so a link restores the same experiment.

Short keys keep links readable: ``?p=fast&h=128-64&a=relu&o=adam&lr=0.001&b=128&e=3``.
Unknown or invalid values are ignored (the widget keeps its default).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from urllib.parse import urlencode

from ui import state as ss_keys
from ui.limits import Limits

SHORT = {
    "a": "cfg_activation",
    "i": "cfg_init",
    "o": "cfg_optimizer",
    "lr": "cfg_lr",
    "m": "cfg_momentum",
    "s": "cfg_schedule",
    "b": "cfg_batch",
    "e": "cfg_epochs",
    "l2": "cfg_l2",
    "d": "cfg_dropout",
    "v": "cfg_val",
    "ve": "cfg_val_every",
    "seed": "cfg_seed",
    "sh": "cfg_shift",
    "rot": "cfg_rotation",
    "n": "cfg_subset",
    "p": "cfg_preset",
}


def to_query(ss: Mapping) -> dict[str, str]:
    """Query parameters for the settings in ``ss`` (session state or a dict)."""
    out = {"h": "-".join(str(h) for h in ss_keys.hidden_from_state(ss)) or "0"}
    for short, key in SHORT.items():
        if key in ss:
            out[short] = f"{ss[key]:g}" if isinstance(ss[key], float) else str(ss[key])
    return out


def query_string(ss: Mapping) -> str:
    return urlencode(to_query(ss))


def _number(text: str, kind, low, high):
    value = kind(float(text)) if kind is int else kind(text)
    if not low <= value <= high:
        raise ValueError(text)
    return value


def from_query(params: Mapping[str, str], limits: Limits) -> dict:
    """Widget-key -> value for the valid settings in ``params``."""
    out: dict = {}
    choices = {
        "a": ss_keys.ACTIVATION_CHOICES,
        "i": ss_keys.INIT_CHOICES,
        "o": ss_keys.OPTIMIZER_CHOICES,
        "s": ss_keys.SCHEDULE_CHOICES,
        "p": tuple(ss_keys.PRESET_LABELS),
    }
    for short, options in choices.items():
        if params.get(short) in options:
            out[SHORT[short]] = params[short]
    parsers = {
        "lr": lambda t: ss_keys.nearest(ss_keys.LR_CHOICES, _number(t, float, 1e-7, 100)),
        "l2": lambda t: ss_keys.nearest(ss_keys.L2_CHOICES, _number(t, float, 0, 1)),
        "b": lambda t: ss_keys.nearest(ss_keys.BATCH_CHOICES, _number(t, int, 0, 100000)),
        "n": lambda t: (
            ss_keys.nearest(ss_keys.SUBSET_CHOICES, _number(t, int, 0, 10**7))
            if int(float(t))
            else 0
        ),
        "m": lambda t: round(_number(t, float, 0, 0.99), 2),
        "e": lambda t: _number(t, int, 1, limits.max_epochs),
        "d": lambda t: round(_number(t, float, 0, 0.8), 2),
        "v": lambda t: round(_number(t, float, 0, 0.5), 2),
        "ve": lambda t: _number(t, int, 1, ss_keys.MAX_VAL_EVERY_UI),
        "seed": lambda t: _number(t, int, 0, 2**31 - 1),
        "sh": lambda t: _number(t, int, 0, ss_keys.MAX_SHIFT_UI),
        "rot": lambda t: float(_number(t, float, 0, ss_keys.MAX_ROTATION_UI)),
    }
    for short, parse in parsers.items():
        if short in params:
            with contextlib.suppress(TypeError, ValueError):
                out[SHORT[short]] = parse(str(params[short]))
    if "h" in params:
        try:
            text = str(params["h"]).strip()
            sizes = [] if text in ("", "0") else [int(s) for s in text.split("-")]
            if len(sizes) <= ss_keys.MAX_LAYERS_UI and all(
                1 <= s <= limits.max_width for s in sizes
            ):
                out["cfg_layers"] = len(sizes)
                for i, size in enumerate(sizes):
                    out[f"cfg_h{i}"] = size
        except ValueError:
            pass
    return out


def restore_once(st) -> bool:
    """On a session's first run, copy settings from the URL into the widgets' state."""
    ss = st.session_state
    if ss.get(ss_keys.RESTORED):
        return False
    ss[ss_keys.RESTORED] = True
    params = {k: st.query_params.get(k) for k in st.query_params}
    if not params:
        return False
    limits = ss_keys.get_limits()
    values = from_query(params, limits)
    preset = ss_keys.PRESETS.get(values.get("cfg_preset"))
    if preset is not None:  # a preset first, then any explicit setting on top
        values = {**ss_keys.widget_values(preset, limits), **values}
    for key, value in values.items():
        ss[key] = value
    if values and "cfg_preset" not in values:
        ss["cfg_preset"] = "custom"
    return bool(values)
