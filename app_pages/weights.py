"""Weights: the first layer's units as images, live, with an epoch replay; click a unit."""

import numpy as np
import streamlit as st

from ui import charts
from ui import state as keys
from ui.current_model import current_model, model_caption, no_model_message
from ui.units import open_unit_button
from ui.views import clickable_chart, clicked_point, live_area

PAGE = 64  # units per grid: 8 x 8 tiles stay large enough to read

st.header("Weights")
st.caption(
    "Each tile is one first-layer unit's incoming weights, drawn as an image: blue pixels "
    "push the unit up, red ones down. Watch digit strokes appear as the network learns; "
    "click a tile to inspect its unit."
)


def _page_label(n_units: int):
    def label(page: int) -> str:
        return f"units {page * PAGE}–{min(n_units, (page + 1) * PAGE) - 1}"

    return label


def _to_first_unit_of_page() -> None:
    st.session_state["w_unit"] = int(st.session_state["w_page"]) * PAGE


def _controls(n_units: int, epochs: list[int]) -> str:
    """The row of settings above the grid; returns the replay choice ("now" or "epoch N")."""
    ss = st.session_state
    options = [f"epoch {e}" for e in epochs] + ["now"]
    shown = [True, 0 in epochs, n_units > PAGE, len(options) > 1]
    # One row, filled from the left: no gaps where a control does not apply.
    slots = iter(st.columns(4) if sum(shown) > 1 else [st.container()])
    scale, view, page, replay = (next(slots) if on else None for on in shown)
    scale.radio(
        "Colour scale",
        ["shared", "unit"],
        format_func={"shared": "shared", "unit": "per unit"}.get,
        key="w_scale",
        horizontal=True,
        help="Shared: one scale for the whole layer, so strong and weak units compare. "
        "Per unit: each tile scaled by its own largest |w|, so weak units show their shape.",
    )
    if view is not None:
        view.radio(
            "Show",
            ["weights", "change"],
            format_func={"weights": "weights", "change": "change since init"}.get,
            key="w_view",
            horizontal=True,
            help="W minus W at epoch 0. The learned strokes show much earlier in the change "
            "than in the weights themselves, which start as random noise.",
        )
    if page is not None:
        ss["w_page"] = ss["w_unit"] // PAGE  # the page follows the unit typed or clicked
        page.selectbox(
            "Units shown",
            range(-(-n_units // PAGE)),
            format_func=_page_label(n_units),
            key="w_page",
            on_change=_to_first_unit_of_page,
        )
    if ss.get("w_epoch") not in options:
        ss["w_epoch"] = "now"
    if replay is None:
        return "now"
    return replay.select_slider(
        "Replay: weights at the end of", options, key="w_epoch", help="epoch 0 = at init"
    )


def _shown_weights(model, snapshots: dict, choice: str) -> tuple[np.ndarray, str]:
    """The first layer's weights for ``choice`` (a copy), and how the title names them."""
    if choice == "now":
        weights = np.array(model.weights[0], dtype=np.float32)  # a copy: the thread writes
    else:
        weights = snapshots[int(choice.split()[1])].astype(np.float32)
    if 0 in snapshots and st.session_state.get("w_view") == "change":
        # Early on, the random start hides what was learned; the difference shows it.
        return weights - snapshots[0].astype(np.float32), f"{choice}, change since init"
    return weights, choice


def _unit_details(view, weights: np.ndarray, shape, unit: int) -> None:
    model = view.model
    st.number_input(
        "Unit #",
        min_value=0,
        max_value=model.sizes[1] - 1,
        step=1,
        key="w_unit",
        help="Or click a tile in the grid.",
    )
    open_unit_button(0, unit, key="w_open_unit")  # the Network page's units tab
    st.plotly_chart(
        charts.image_figure(
            weights[:, unit].reshape(shape),
            f"Unit {unit}: incoming weights",
            diverging=True,
            height=280,
        ),
        key="unit_in_chart",
        width="stretch",
    )
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
                height=220,
            ),
            key="unit_out_chart",
            width="stretch",
        )
    st.caption(f"Bias of unit {unit}: {float(model.biases[0][unit]):+.4f}")


def _live() -> None:
    view = current_model()
    if view is None:
        no_model_message()
        return
    model_caption(view)
    shape = view.image_shape
    if shape is None:
        st.info("This network's inputs are not square images, so its weights cannot be drawn.")
        return
    ss = st.session_state
    n_units = view.model.sizes[1]
    point = clicked_point("weights_grid", "_w_clicked")
    if point is not None and point["customdata"]:
        ss["w_unit"] = int(point["customdata"][0])
    if not 0 <= ss.get("w_unit", 0) < n_units:
        ss["w_unit"] = 0
    ss.setdefault("w_unit", 0)
    snapshots = view.run.snapshots() if view.run is not None else {}
    choice = _controls(n_units, sorted(snapshots))
    weights, described = _shown_weights(view.model, snapshots, choice)
    unit = int(ss["w_unit"])
    first = unit // PAGE * PAGE
    shown = weights[:, first : first + PAGE]
    span = f"units {first}–{first + shown.shape[1] - 1} of {n_units}" if n_units > PAGE else ""
    title = f"First layer: {span or f'{n_units} units'}, {described}"
    figure = charts.weights_grid_figure(
        shown,
        shape,
        ss.get("w_scale", "shared"),
        title,
        selected=unit,
        first=first,
        limit=float(np.abs(weights).max()),
    )
    left, right = st.columns([3, 2])
    with left:
        if view.run is not None and view.run.active:
            # A clickable chart is a widget, and a widget whose figure changes is a new
            # widget: redrawn twice a second while training, it would never be seen.
            st.plotly_chart(figure, key="weights_grid", width="stretch")
            st.caption("Clicking a tile works once training stops; the Unit # box works now.")
        else:
            clickable_chart(figure, "weights_grid", "_w_clicked", width="stretch")
    with right:
        _unit_details(view, weights, shape, unit)


# Once a second, as the Training page: each redraw costs CPU time a training needs.
live_area(_live, every=1.0)
if st.session_state.get(keys.RUN) is None:
    st.caption("The epoch replay appears once a run has trained at least one epoch.")
