"""Draw: sketch a digit and see what the network sees and thinks, after every stroke.

Layout: the prediction line sits right above the canvas, and a hint for drawings that are
not digits right below it, so both stay in view with the canvas on a phone; what the
network sees and the probabilities come next (beside the canvas on a wide screen).
"""

import numpy as np
import streamlit as st

from nn_core.preprocess import preprocess_drawing
from ui import charts, drawing, my_digits
from ui import state as keys
from ui.current_model import starter_model
from ui.models import upload_model_widget
from ui.views import digit_image

st.header("Draw")
st.caption(
    "Draw one digit, large and centred. The network sees it the way MNIST digits were made: "
    "cropped, scaled to a 20x20 box and centred by mass in 28x28 pixels."
)

ss = st.session_state
choices = {}
run = ss.get(keys.RUN)
if run is not None:
    choices["run"] = "the network trained in this session"
if ss.get(keys.UPLOADED_MODEL) is not None:
    choices["uploaded"] = "the uploaded model"
if starter_model() is not None:
    choices["starter"] = "the starter model shipped with the app"

if not choices:
    st.info("No model yet: train one from the sidebar, or upload a model file below.")
    upload_model_widget("draw_model_upload")
    st.stop()

heading = st.empty()
row = st.container(horizontal=True, wrap=True, gap="medium")
pad, sees, probabilities = (
    row.container(width=drawing.SIZE + 10),
    row.container(width=170),
    row.container(width="stretch", key="draw_probabilities"),
)
# Beside the rest on a wide screen; on a phone the chart takes a line of its own.
st.html("<style>div:has(> .st-key-draw_probabilities) { min-width: min(100%, 20rem); }</style>")
below = st.container()

with below:
    if ss.get("draw_model") not in choices:
        ss["draw_model"] = next(iter(choices))
    which = st.radio(
        "Model", list(choices), format_func=choices.get, key="draw_model", horizontal=True
    )
    with st.expander("Upload a model file to draw against"):
        upload_model_widget("draw_model_upload")

if which == "run":
    model, names = run.model.copy(), list(run.dataset.class_names)
elif which == "uploaded":
    loaded = ss[keys.UPLOADED_MODEL]
    model, names = loaded.model, list(loaded.class_names)
else:
    loaded = starter_model()
    model, names = loaded.model, list(loaded.class_names)
    below.caption(
        "The starter model was trained with the project's command line: see assets/README.md."
    )

if model.sizes[0] != 784:
    heading.warning(
        f"This model takes {model.sizes[0]} inputs, not 28x28 = 784 pixels; it cannot read these."
    )
    st.stop()


def _clear() -> None:
    ss[keys.CANVAS_N] = ss.get(keys.CANVAS_N, 0) + 1


with pad:
    rgba = drawing.canvas(f"draw_canvas_{ss.get(keys.CANVAS_N, 0)}")
    hint = st.empty()
    st.button("Clear", key="draw_clear", on_click=_clear)
image = preprocess_drawing(rgba) if rgba is not None else None
ss["inside_image"] = image  # the Inside page explains this drawing (None when empty)

if image is None:
    heading.markdown("### Prediction: –")
    probs, best = np.zeros(model.sizes[-1]), None
else:
    probs = model.predict_proba(image[None])[0].astype(np.float64)
    best = int(probs.argmax())
    heading.markdown(f"### Prediction: **{names[best]}** :small[:gray[{probs[best]:.1%} sure]]")

with sees:
    st.markdown("**What the network sees** (28x28)")
    st.image(digit_image(np.zeros((28, 28), np.uint8) if image is None else image, 5))
    if image is None:
        st.caption("Draw a digit on the black canvas.")

with probabilities:
    st.plotly_chart(
        charts.probability_figure(probs, names[: len(probs)], height=260),
        key="draw_probs",
        width="stretch",
    )
    my_digits.this_was_widget(image, rgba, best)  # -> My digits

if image is not None:
    check = drawing.drawing_check(rgba, image)
    if not check.looks_like_a_digit:
        hint.container(key="draw_hint").warning(check.message, icon=":material/help:")
