"""The Network page's Units tab: what one hidden or output unit looks for.

The test images that excite it most (the whole test set's responses of the layer are
computed once per model version and layer) and an input synthesised to excite it
(``nn_core.unit_views.maximise_unit``, cached per unit). ``open_unit_button`` lets another
page (Weights) open this view for a unit.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from nn_core.unit_views import layer_responses, maximise_unit, top_images
from ui import network_figures as nf
from ui.current_model import ModelView
from ui.views import digit_image

TOP_K = 16
CACHE = "_units_cache"
PAGE = "app_pages/network.py"
TAB_KEY = "net_tab"
TAB = "What units look for"
LAYER_KEY = "units_layer"
UNIT_KEY = "units_unit"
# Activation maximisation: a penalty on bright pixels, and blur for a smooth, readable image
STEPS, L2, BLUR = 200, 0.05, 0.8


def model_version(view: ModelView) -> tuple:
    """Changes when the network's weights have changed: after each batch of a run that
    is not training, after each epoch of one that is (recomputing the synthesised input
    after every batch would take the training's time)."""
    run = view.run
    if run is not None:
        trainer = run.trainer
        step = trainer.epochs_done if run.active else len(trainer.history.batch_loss)
        return ("run", run.id, run.active, step)
    return ("model", id(view.model))


def _cached(name: str, key: tuple, compute):
    store = st.session_state.setdefault(CACHE, {})
    slot = store.get(name)
    if slot is None or slot[0] != key:
        slot = store[name] = (key, compute())
    return slot[1]


def layer_label(model, layer: int) -> str:
    if layer == model.n_layers - 1:
        return f"output ({model.sizes[-1]} classes)"
    return f"hidden layer {layer + 1} ({model.sizes[layer + 1]} units)"


def unit_label(view: ModelView, layer: int, unit: int) -> str:
    if layer == view.model.n_layers - 1 and unit < len(view.class_names):
        return f"output unit {unit} (class {view.class_names[unit]})"
    return f"unit {unit} of hidden layer {layer + 1}"


def render_units(view: ModelView, dataset) -> None:
    """The tab: pick a unit; its synthesised input and its top test images."""
    model, ss = view.model, st.session_state
    if view.image_shape is None:
        st.info("This network's inputs are not square images, so they cannot be drawn.")
        return
    layer_col, unit_col = st.columns(2)
    if not 0 <= ss.get(LAYER_KEY, 0) < model.n_layers:
        ss[LAYER_KEY] = 0
    layer = layer_col.selectbox(
        "Layer",
        range(model.n_layers),
        key=LAYER_KEY,
        format_func=lambda i: layer_label(model, i),
    )
    width = model.sizes[layer + 1]
    if not 0 <= ss.get(UNIT_KEY, 0) < width:
        ss[UNIT_KEY] = 0
    unit = int(
        unit_col.number_input(
            "Unit",
            min_value=0,
            max_value=width - 1,
            step=1,
            key=UNIT_KEY,
            help=f"0 to {width - 1}. Or click **What does this unit look for?** on the "
            "Weights page.",
        )
    )
    version = model_version(view)
    frozen = model.copy() if view.run is not None else model  # the thread may be training
    responses = _cached(
        "responses", (version, layer), lambda: layer_responses(frozen, dataset.x_test, layer)
    )
    best = _cached(
        "maximum",
        (version, layer, unit),
        lambda: maximise_unit(
            frozen, layer, unit, steps=STEPS, l2=L2, blur=BLUR, image_shape=view.image_shape
        ),
    )
    idx, values = top_images(responses[:, unit : unit + 1], TOP_K)
    left, right = st.columns([1, 2])
    with left:
        st.markdown("**The input it likes best** (synthesised)")
        image = np.round(best.image.reshape(view.image_shape) * 255).astype(np.uint8)
        st.image(digit_image(image, 8))
        st.caption(
            f"Gradient ascent from a dim grey image, pixels kept in 0..1: its response "
            f"rose from {best.start:.2f} to **{best.response:.2f}**."
        )
    with right:
        st.markdown(f"**The {len(idx)} test images that excite it most**")
        grid = nf.mosaic(dataset.x_test[idx[:, 0]], cols=8)
        st.image(digit_image(grid, 3))
        st.caption(
            f"Responses {values[0, 0]:.2f} (first) to {values[-1, 0]:.2f}; over all "
            f"{responses.shape[0]:,} test images the mean is {responses[:, unit].mean():.2f}."
        )
    st.caption(
        f"{unit_label(view, layer, unit).capitalize()}. Its response is its input before "
        "the activation (for an output unit, the class's score before the softmax)."
    )


# --------------------------------------------------------------------- from other pages
def _open_unit(layer: int, unit: int) -> None:
    ss = st.session_state
    ss[LAYER_KEY] = int(layer)
    ss[UNIT_KEY] = int(unit)
    ss[TAB_KEY] = TAB
    ss["_units_open"] = True


def open_unit_button(layer: int, unit: int, key: str) -> None:
    """A button that opens the Network page's Units tab on ``unit`` of ``layer``."""
    st.button(
        "What does this unit look for?",
        key=key,
        on_click=_open_unit,
        args=(layer, unit),
        icon=":material/center_focus_strong:",
        help="Its favourite test images and the input that excites it most (Network page).",
    )
    if st.session_state.pop("_units_open", False):
        st.switch_page(PAGE)
