"""Training: live loss and accuracy curves, the final test accuracy, the run's settings."""

import numpy as np
import streamlit as st

from ui import charts
from ui import data as data_ui
from ui import state as keys
from ui.how_it_works import how_it_works
from ui.views import live_area

st.header("Training")


def _learning_rate_metric(column, history, config) -> None:
    """The learning rate of the last step. A cosine schedule ends near 0 (1e-10 after a
    few thousand steps): shown as "≈ 0" rather than a figure that reads like a setting."""
    lr = float(history.learning_rate[-1])
    shown = f"{lr:.3g}" if lr >= config.lr * 1e-3 else "≈ 0"
    note = (
        f"The rate used for the last step; the {config.schedule} schedule starts at "
        f"{config.lr:g}"
        + (f" and has come down to {lr:.2g}." if config.schedule != "constant" else ".")
    )
    column.metric("Learning rate (last step)", shown, help=note)


def _result(run) -> None:
    """How the run ended: diverged (with the fix), or its test accuracy."""
    divergence = run.trainer.divergence
    if divergence is not None:
        st.error(divergence.message, icon=":material/trending_up:")
        return
    if run.finished and not run.active:
        result = run.evaluation()
        source = run.dataset.test_source or "the test set"
        st.success(f"Test accuracy: **{result['accuracy']:.2%}** on {source}.")


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
        _learning_rate_metric(c[3], history, run.config)
    _result(run)


# Once a second: a redraw costs the browser and the server CPU time that a training on the
# same machine needs (Chromium's renderer: 69% of a core at twice a second, 41% at once,
# beside a Fast training).
live_area(_live, every=1.0)

run = st.session_state.get(keys.RUN)
if run is not None:
    with st.expander("This run's settings"):
        st.json(run.settings, expanded=True)
    how_it_works(
        run.model, run.trainer.batch_size, config=run.config, image_shape=run.dataset.image_shape
    )
else:
    try:
        sidebar_config = keys.config_from_state()
    except ValueError:  # the sidebar says what is wrong; the panel shows the defaults
        sidebar_config = None
    dataset = data_ui.current_dataset()
    how_it_works(
        config=sidebar_config, image_shape=dataset.image_shape if dataset is not None else None
    )
