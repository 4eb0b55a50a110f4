"""Weights: the first layer's units as 28x28 images, live, with an epoch replay."""

import numpy as np
import streamlit as st

from ui import charts
from ui import state as keys
from ui.current_model import current_model, model_caption, no_model_message
from ui.views import live_area

st.header("Weights")
st.caption(
    "Each tile is one hidden unit of the first layer: its 784 incoming weights drawn as a "
    "28x28 image. Red pixels push the unit down, blue ones up; watch the strokes of digits "
    "appear as the network learns."
)

st.radio(
    "Colour scale",
    ["shared", "unit"],
    format_func={"shared": "shared by all units", "unit": "per unit (own max |w|)"}.get,
    key="w_scale",
    horizontal=True,
)


st.radio(
    "Show",
    ["weights", "change"],
    format_func={"weights": "weights", "change": "change since init (W - W at epoch 0)"}.get,
    key="w_view",
    horizontal=True,
    help="The learned strokes show much earlier in the change than in the weights themselves, "
    "which start as random noise.",
)


def _click_to_unit(cols: int, shape, n_units: int) -> None:
    """Turn a click on the grid into the selected unit (before the number box exists)."""
    event = st.session_state.get("weights_grid")
    points = []
    if event:
        selection = event.get("selection") if hasattr(event, "get") else None
        points = (selection or {}).get("points", []) if selection else []
    if not points:
        return
    point = points[0]
    marker = (point.get("x"), point.get("y"))
    if st.session_state.get("_w_last_click") == marker:
        return
    st.session_state["_w_last_click"] = marker
    unit = charts.unit_at(point.get("x", -1), point.get("y", -1), shape, cols, n_units)
    if unit is not None:
        st.session_state["w_unit"] = unit


def _live() -> None:
    view = current_model()
    if view is None:
        no_model_message()
        return
    model_caption(view)
    shape = view.image_shape
    model = view.model
    if shape is None:
        st.info("This network's inputs are not square images, so its weights cannot be drawn.")
        return
    n_units = model.sizes[1]
    snapshots = view.run.snapshots() if view.run is not None else {}
    options = [f"epoch {e}" for e in sorted(snapshots)] + ["now"]
    if st.session_state.get("w_epoch") not in options:
        st.session_state["w_epoch"] = "now"
    if len(options) > 1:
        choice = st.select_slider(
            "Replay: weights at the end of", options, key="w_epoch", help="epoch 0 = at init"
        )
    else:
        choice = "now"
    if choice == "now":
        weights = np.array(model.weights[0], dtype=np.float32)  # a copy: the thread writes
    else:
        weights = snapshots[int(choice.split()[1])].astype(np.float32)
    if 0 in snapshots and st.session_state.get("w_view") == "change":
        # Early on, the random start hides what was learned; the difference shows it.
        weights = weights - snapshots[0].astype(np.float32)
        choice = f"{choice}, change since init"
    _rows, cols = charts.grid_shape(n_units)
    _click_to_unit(cols, shape, n_units)
    st.session_state.setdefault("w_unit", 0)
    if st.session_state["w_unit"] >= n_units:
        st.session_state["w_unit"] = 0
    unit = int(st.session_state["w_unit"])
    title = f"First layer: {n_units} units, {choice}"
    fig = charts.weights_grid_figure(
        weights, shape, st.session_state.get("w_scale", "shared"), title, selected=unit
    )
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(
            fig,
            key="weights_grid",
            on_select="rerun",
            selection_mode="points",
            width="stretch",
        )
    with right:
        st.number_input(
            "Unit #",
            min_value=0,
            max_value=n_units - 1,
            step=1,
            key="w_unit",
            help="Or click a tile in the grid.",
        )
        st.plotly_chart(
            charts.image_figure(
                weights[:, unit].reshape(shape), f"Unit {unit}: incoming weights", diverging=True
            ),
            key="unit_in_chart",
            width="stretch",
        )
        bias = float(model.biases[0][unit])
        if model.n_layers > 1:
            outgoing = np.array(model.weights[1][unit], dtype=np.float32)
            last = model.n_layers == 2
            labels = list(view.class_names) if last else [str(i) for i in range(len(outgoing))]
            target = "the classes" if last else "layer 2"
            st.plotly_chart(
                charts.bar_figure(
                    outgoing,
                    labels,
                    f"Unit {unit}: outgoing weights to {target}",
                    diverging=True,
                    height=240,
                ),
                key="unit_out_chart",
                width="stretch",
            )
        st.caption(f"Bias of unit {unit}: {bias:+.4f}")


live_area(_live, every=0.5)
if st.session_state.get(keys.RUN) is None:
    st.caption("The epoch replay appears once a run has trained at least one epoch.")
