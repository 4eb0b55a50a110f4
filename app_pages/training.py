"""Training: live loss and accuracy curves, the final test accuracy, the run's settings."""

import numpy as np
import streamlit as st

from ui import charts
from ui import state as keys
from ui.how_it_works import how_it_works
from ui.views import live_area

st.header("Training")


def _live() -> None:
    run = st.session_state.get(keys.RUN)
    if run is None:
        st.info(
            "Pick a preset or your own settings in the sidebar and press **Start**. The loss "
            "and accuracy curves appear here and update while the network learns; you can "
            "switch pages meanwhile."
        )
        return
    history = run.history()
    left, right = st.columns(2)
    with left:
        st.plotly_chart(charts.curve_figure(history, "loss"), key="loss_chart", width="stretch")
    with right:
        st.plotly_chart(
            charts.curve_figure(history, "accuracy"), key="accuracy_chart", width="stretch"
        )
    if len(history.epoch):
        c = st.columns(4)
        c[0].metric("Train accuracy (last epoch)", f"{history.train_accuracy[-1]:.2%}")
        validated = history.val_accuracy[np.isfinite(history.val_accuracy)]
        val = f"{validated[-1]:.2%}" if len(validated) else "–"
        c[1].metric("Validation accuracy", val)
        c[2].metric("Train loss", f"{history.train_loss[-1]:.4f}")
        c[3].metric("Learning rate", f"{history.learning_rate[-1]:.3g}")
    if run.finished and not run.active:
        result = run.evaluation()
        source = run.dataset.test_source or "the test set"
        st.success(f"Test accuracy: **{result['accuracy']:.2%}** on {source}.")


live_area(_live, every=0.5)

run = st.session_state.get(keys.RUN)
if run is not None:
    with st.expander("This run's settings"):
        st.json(run.settings, expanded=True)

how_it_works(
    run.model if run is not None else None, run.trainer.batch_size if run is not None else None
)
