"""Models: download the trained network and its metrics; upload a model to explore it."""

import streamlit as st

from ui import state as keys
from ui.models import metrics_json, model_bytes, upload_model_widget

st.header("Models")

run = st.session_state.get(keys.RUN)
st.subheader("Download")
if run is None:
    st.info("Train a network first (sidebar **Start**); then download it here.")
else:
    sizes = keys.architecture_label(run.model.sizes)
    st.caption(
        f"The network trained in this session: {sizes}, epoch {run.trainer.progress:.2f}"
        + (" (still training: the file holds the weights of this moment)" if run.active else "")
    )
    c1, c2 = st.columns(2)
    c1.download_button(
        "Download model (.npz)",
        data=model_bytes(run),
        file_name=f"digitlab-{sizes}.npz",
        mime="application/octet-stream",
        key="download_model",
    )
    c2.download_button(
        "Download metrics (.json)",
        data=metrics_json(run),
        file_name=f"digitlab-{sizes}-metrics.json",
        mime="application/json",
        key="download_metrics",
    )
    st.caption(
        "Use the file again here, or from the command line: "
        "`python -m nn_core evaluate --model digitlab-….npz`."
    )

st.subheader("Upload")
st.caption(
    "Explore a saved model without training: the Weights, Evaluation, Mistakes and Draw "
    "pages show it while this session has no training run (press Reset to drop a run)."
)
upload_model_widget("model_upload")
