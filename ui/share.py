"""Settings <-> URL query string, so a link restores the same experiment.

Short keys keep links readable: ``?p=fast&h=128-64&a=relu&o=adam&lr=0.001&b=128&e=3``
(each setting's key is its ``url`` in ``nn_core.settings``). Every value is parsed
without overflow and kept within what the sidebar offers; a value that could not be used
as given is named in one message. The page's URL follows the settings (``sync_url``), so
a reload keeps what was edited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from nn_core.settings import SETTINGS, TRAIN_SUBSET, Setting, check, check_hidden, general
from ui import state as keys
from ui.limits import Limits

PRESET_URL = "p"
LINKED: tuple[Setting, ...] = tuple(s for s in (*SETTINGS, TRAIN_SUBSET) if s.url)
SHOWN_CHARS = 24  # of a bad value, in the message


@dataclass(frozen=True)
class Replaced:
    """A link's value that was not used as given."""

    url: str  # its key in the link
    raw: str
    problem: str  # e.g. "is not a number"
    keys: tuple[str, ...]  # the widgets it was meant for


@dataclass(frozen=True)
class FromQuery:
    values: dict  # widget key -> value, for the usable settings
    replaced: tuple[Replaced, ...]


def to_query(ss: Mapping) -> dict[str, str]:
    """Query parameters for the settings in ``ss`` (session state or a dict)."""
    out = {}
    if "cfg_preset" in ss:
        out[PRESET_URL] = str(ss["cfg_preset"])
    for setting in LINKED:
        if setting.kind is tuple:
            out[setting.url] = "-".join(str(h) for h in keys.hidden_from_state(ss)) or "0"
        elif setting.key in ss:
            out[setting.url] = general(ss[setting.key])
    return out


def query_string(ss: Mapping) -> str:
    return urlencode(to_query(ss))


def from_query(params: Mapping[str, str], limits: Limits) -> FromQuery:
    """Widget values for the settings in ``params``, and the values not used as given."""
    values: dict = {}
    replaced: list[Replaced] = []
    if PRESET_URL in params:
        preset = str(params[PRESET_URL])
        if preset in keys.PRESET_LABELS:
            values["cfg_preset"] = preset
        else:
            problem = f"is not one of {', '.join(keys.PRESET_LABELS)}"
            replaced.append(Replaced(PRESET_URL, preset, problem, ("cfg_preset",)))
    for setting in LINKED:
        if setting.url not in params:
            continue
        raw = str(params[setting.url])
        if setting.kind is tuple:
            checked = check_hidden(raw, limits)
            if checked.value is not None:
                values[setting.key] = len(checked.value)
                for i, width in enumerate(checked.value):
                    values[keys.LAYER_KEY.format(i)] = width
        else:
            checked = check(setting, raw, limits)
            if checked.value is not None:
                values[setting.key] = checked.value
        if checked.problem:
            replaced.append(Replaced(setting.url, raw, checked.problem, (setting.key,)))
    return FromQuery(values, tuple(replaced))


def replaced_message(replaced: tuple[Replaced, ...], ss: Mapping) -> str | None:
    """One sentence naming each replaced value and what is used instead, or None."""
    if not replaced:
        return None
    parts = []
    for r in replaced:
        shown = r.raw if len(r.raw) <= SHOWN_CHARS else r.raw[:SHOWN_CHARS] + "…"
        parts.append(f"{r.url}={shown} {r.problem}, so {_used(r, ss)} is used")
    return "This link had values that cannot be used as they are: " + "; ".join(parts) + "."


def _used(r: Replaced, ss: Mapping) -> str:
    if r.keys == (keys.HIDDEN_LAYERS.key,):
        return "-".join(str(h) for h in keys.hidden_from_state(ss)) or "no hidden layer"
    return general(ss.get(r.keys[0]))


def restore_once(st) -> bool:
    """On a session's first run, copy settings from the URL into the widgets' state.

    Values that could not be used as given are named in the settings notice.
    """
    ss = st.session_state
    if ss.get(keys.RESTORED):
        return False
    ss[keys.RESTORED] = True
    params = {k: st.query_params.get(k) for k in st.query_params}
    if not params:
        return False
    limits = keys.get_limits()
    found = from_query(params, limits)
    values = found.values
    preset = keys.PRESETS.get(values.get("cfg_preset"))
    if preset is not None:  # a preset first, then any explicit setting on top
        values = {**keys.widget_values(preset, limits), **values}
    for key, value in values.items():
        ss[key] = value
    if values and "cfg_preset" not in values:
        ss["cfg_preset"] = "custom"
    message = replaced_message(found.replaced, ss)
    if message:
        ss[keys.SETTINGS_NOTICE] = (None, message)
    return bool(values)


def sync_url(st) -> None:
    """Keep the page's URL equal to the settings, so a reload (or a new session after a
    server restart) restores what was last chosen, not what the link said."""
    wanted = to_query(st.session_state)
    changed = {k: v for k, v in wanted.items() if st.query_params.get(k) != v}
    if changed:
        st.query_params.update(changed)
