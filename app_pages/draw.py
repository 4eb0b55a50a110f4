"""Draw: sketch a digit and see what the network sees and thinks, after every stroke."""

import numpy as np
import streamlit as st

from nn_core.preprocess import preprocess_drawing
from ui import charts, my_digits
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

if ss.get("draw_model") not in choices:
    ss["draw_model"] = next(iter(choices))
which = st.radio("Model", list(choices), format_func=choices.get, key="draw_model", horizontal=True)
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
    st.caption(
        "The starter model was trained with the project's command line: see assets/README.md."
    )

if model.sizes[0] != 784:
    st.warning(
        f"This model takes {model.sizes[0]} inputs, not 28x28 = 784 pixels; it cannot read these."
    )
    st.stop()

from streamlit_drawable_canvas import st_canvas  # noqa: E402  (needs the Streamlit runtime)

left, middle, right = st.columns([3, 2, 3])
with left:
    st.space("medium")  # room for the canvas's floating toolbar, which sits above it
    canvas = st_canvas(
        stroke_width=18,
        stroke_color="#FFFFFF",
        background_color="#000000",
        height=280,
        width=280,
        drawing_mode="freedraw",
        update_streamlit=True,
        return_image_data=True,
        key=f"draw_canvas_{ss.get(keys.CANVAS_N, 0)}",
    )

    def _clear() -> None:
        ss[keys.CANVAS_N] = ss.get(keys.CANVAS_N, 0) + 1

    st.button("Clear", key="draw_clear", on_click=_clear)

rgba = canvas.image_data if canvas is not None else None
image = preprocess_drawing(np.asarray(rgba, dtype=np.uint8)) if rgba is not None else None
ss["inside_image"] = image  # the Inside page explains this drawing (None when empty)

with middle:
    st.markdown("**What the network sees** (28x28)")
    if image is None:
        st.image(digit_image(np.zeros((28, 28), np.uint8), 5))
        st.caption("Draw a digit on the black canvas.")
    else:
        st.image(digit_image(image, 5))
with right:
    if image is None:
        st.markdown("### Prediction: –")
        probs = np.zeros(model.sizes[-1])
    else:
        probs = model.predict_proba(image[None])[0].astype(np.float64)
        best = int(probs.argmax())
        st.markdown(f"### Prediction: **{names[best]}**")
        st.caption(f"{probs[best]:.1%} sure")
    st.plotly_chart(
        charts.probability_figure(probs, names[: len(probs)], height=260),
        key="draw_probs",
        width="stretch",
    )
    my_digits.this_was_widget(image, rgba, None if image is None else best)  # -> My digits
