"""Small widgets shared by the pages: live areas, chart clicks, enlarged digit images."""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st

from ui import hosting
from ui import state as keys


def live_area(render, every: float = 0.5) -> None:
    """Render ``render()`` in a fragment that redraws every ``every`` s while a run is active.

    When the run stops, the fragment asks for one full rerun so the page settles and the
    automatic reruns end.
    """
    run = st.session_state.get(keys.RUN)
    was_active = bool(run is not None and run.active)
    was_queued = was_active and run.state == "queued"
    # Slower while only queued, and when many runs are live (ui.hosting.live_every).
    pace = hosting.live_every(every, run) if was_active else None

    @st.fragment(run_every=pace)
    def _area() -> None:
        render()
        now = st.session_state.get(keys.RUN)
        active = now is not None and now.active
        if was_active and (not active or (was_queued and now.state == "running")):
            st.rerun()  # settle, or redraw at a running run's pace

    _area()


def clickable_chart(figure, key: str, memo_key: str, **kwargs) -> None:
    """``st.plotly_chart`` whose clicks ``clicked_point(key, memo_key)`` reports.

    Plotly heatmaps report no selected points, so a clickable figure carries a scatter
    trace with one (invisible) marker per cell; see ``ui.charts``. A click selects that
    marker and Streamlit reruns.
    """
    st.plotly_chart(
        figure,
        key=key,
        on_select=functools.partial(_note_click, key, memo_key),
        selection_mode="points",
        **kwargs,
    )


def _note_click(chart_key: str, memo_key: str) -> None:
    # Runs only when the browser sends a new selection. A changed figure is a new element
    # to Streamlit, with an empty selection: comparing the selection with the last one
    # applied would drop a second click on the same cell after, say, a select box moved away.
    st.session_state[memo_key] = True


def clicked_point(chart_key: str, memo_key: str) -> dict | None:
    """The point just clicked on the chart ``chart_key``, once; otherwise None.

    Parameters
    ----------
    chart_key : str
        The chart's key (drawn with ``clickable_chart(figure, chart_key, memo_key)``).
    memo_key : str
        Session-state key set when the chart reports a new selection and cleared here,
        so the same selection is never applied twice.

    Returns
    -------
    dict or None
        Plotly's point: ``x``, ``y``, ``point_index``, ``curve_number`` and ``customdata``
        (a list). None when nothing new was clicked, or a click cleared the selection.
    """
    if not st.session_state.pop(memo_key, False):
        return None
    event = st.session_state.get(chart_key)
    selection = event.get("selection") if event and hasattr(event, "get") else None
    points = (selection or {}).get("points") or []
    if not points:
        return None
    point = dict(points[0])
    point["customdata"] = _as_list(point.get("customdata"))
    return point


def _as_list(value) -> list:
    """Plotly sends a point's customdata row as a list, or as {"0": a, "1": b, ...}."""
    if isinstance(value, dict):
        return [value[k] for k in sorted(value, key=int)]
    if isinstance(value, list | tuple):
        return list(value)
    return [] if value is None else [value]


def digit_image(image: np.ndarray, factor: int = 4) -> np.ndarray:
    """A (H, W) uint8 image enlarged for ``st.image`` (nearest neighbour)."""
    image = np.asarray(image)
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def changing_choice(widget, label: str, options: list, key: str, default, version, **kwargs):
    """A select box or select slider (``widget``, e.g. ``st.selectbox``) whose options
    change between reruns: the epochs kept while a run trains, the classes other than a
    prediction that changes.

    The browser keeps such a widget's value as a position, so options that change under a
    fixed key would move or blank the user's choice. The widget's key therefore follows
    the options, ``{key}_{version}``, and the choice lives on in ``st.session_state[key]``
    (``default`` when it is no longer offered).
    """
    ss = st.session_state
    widget_key = f"{key}_{version}"
    if widget_key not in ss:
        ss[widget_key] = ss.get(key) if ss.get(key) in options else default
    ss[key] = widget(label, options, key=widget_key, **kwargs)
    return ss[key]
