"""Small widgets shared by the pages: live areas, chart clicks, enlarged digit images."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui import state as keys


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


def clicked_point(chart_key: str, memo_key: str) -> dict | None:
    """The point just clicked on the chart ``chart_key``, or None.

    A selection stays in ``st.session_state`` across reruns; ``memo_key`` remembers the last
    one handled, so each click is applied once.
    """
    event = st.session_state.get(chart_key)
    selection = event.get("selection") if event and hasattr(event, "get") else None
    points = (selection or {}).get("points") or []
    if not points:
        return None
    point = points[0]
    marker = (point.get("x"), point.get("y"), point.get("curve_number"), point.get("point_index"))
    if st.session_state.get(memo_key) == marker:
        return None
    st.session_state[memo_key] = marker
    return point


def digit_image(image: np.ndarray, factor: int = 4) -> np.ndarray:
    """A (H, W) uint8 image enlarged for ``st.image`` (nearest neighbour)."""
    image = np.asarray(image)
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
