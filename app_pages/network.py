"""Network: inside the whole network over training, in three tabs.

Health (per-layer panels, warnings and the "Show me" lessons), Hidden space (where a
hidden layer puts 2,000 test images, replayed over epochs) and What units look for. One
page rather than three: a warning links to its panel with an anchor on the same page, the
Weights page opens the units tab directly, and only the open tab is computed.
"""

import streamlit as st

from ui.current_model import current_model, evaluation, model_caption, no_model_message
from ui.health import lesson_section, render_health
from ui.hidden_space import render_hidden_space
from ui.units import TAB, TAB_KEY, render_units
from ui.views import live_area

HEALTH, HIDDEN = "Health", "Hidden space"

st.header("Network")
st.caption(
    "Inside the whole network as it trains: how every layer fares, how a hidden layer "
    "sorts the digits, and what each unit looks for."
)


def _model_and_data():
    """The page's network and the data it is shown with; None (and a message) if none."""
    view = current_model()
    if view is None:
        no_model_message()
        return None
    model_caption(view)
    if view.run is not None:
        return view, view.run.dataset
    dataset, result, message = evaluation(view)
    if result is None:
        st.warning(message)
        return None
    if message:
        st.info(message)
    return view, dataset


def _hidden_space() -> None:
    found = _model_and_data()
    if found is not None:
        render_hidden_space(*found)


def _units() -> None:
    found = _model_and_data()
    if found is not None:
        render_units(*found)


health, hidden, units = st.tabs([HEALTH, HIDDEN, TAB], key=TAB_KEY, on_change="rerun")
if health.open:
    with health:
        lesson_section()
        live_area(render_health, every=1.0)
if hidden.open:
    with hidden:
        if st.session_state.get("hs_method") == "tsne":
            _hidden_space()  # t-SNE runs in this script run: no timer may interrupt it
        else:
            live_area(_hidden_space, every=2.0)
if units.open:
    with units:
        live_area(_units, every=2.0)
