"""Evaluation: the confusion matrix on the test set, its cells' samples, per-class scores."""

import numpy as np
import streamlit as st

from ui import charts
from ui.current_model import evaluated_model_or_stop
from ui.inside import show_in_inside
from ui.views import clickable_chart, clicked_point, digit_image

st.header("Evaluation")

view, dataset, result = evaluated_model_or_stop()

names = list(view.class_names)[: result["confusion"].shape[0]]
n_classes = len(names)
st.metric("Test accuracy", f"{result['accuracy']:.2%}", help=dataset.test_source)
st.caption(f"On {dataset.test_source or 'the test set'}.")

ss = st.session_state
# A click on a cell picks that (true, predicted) pair, before the select boxes exist.
point = clicked_point("confusion_chart", "_cm_clicked")
if point is not None:
    ss["cm_true"], ss["cm_pred"] = (int(v) for v in point["customdata"][:2])
if ss.get("cm_true") not in range(n_classes) or ss.get("cm_pred") not in range(n_classes):
    # Start on the most frequent confusion.
    off = result["confusion"].astype(float) - np.diag(np.diag(result["confusion"]))
    worst = np.unravel_index(int(np.argmax(off)), off.shape)
    ss["cm_true"], ss["cm_pred"] = int(worst[0]), int(worst[1])

left, right = st.columns([3, 2])
with left:
    norm = st.radio(
        "Show",
        ["counts", "rows"],
        format_func={"counts": "counts", "rows": "row-normalised (recall)"}.get,
        key="cm_norm",
        horizontal=True,
    )
    figure = charts.confusion_figure(
        result["confusion"], names, normalise=norm == "rows", selected=(ss.cm_true, ss.cm_pred)
    )
    clickable_chart(figure, "confusion_chart", "_cm_clicked", width="stretch")
with right, st.container(key="cm_samples"):
    st.subheader("Samples in a cell")
    a, b = st.columns(2)
    true = a.selectbox("True class", range(n_classes), format_func=names.__getitem__, key="cm_true")
    pred = b.selectbox(
        "Predicted class", range(n_classes), format_func=names.__getitem__, key="cm_pred"
    )
    idx = np.flatnonzero((dataset.y_test == true) & (result["y_pred"] == pred))
    st.caption(f"{len(idx)} test images of class {names[true]} predicted as {names[pred]}.")
    if len(idx):
        shown = idx[:40]
        st.image(
            [digit_image(dataset.x_test[i], 2) for i in shown],
            caption=[f"#{i} ({result['probs'][i, pred]:.0%})" for i in shown],
        )
        if len(idx) > len(shown):
            st.caption(f"Showing the first {len(shown)}.")
        choices = [int(i) for i in shown]
        if ss.get("cm_inside_index") not in choices:
            ss["cm_inside_index"] = choices[0]
        look, go = st.columns([2, 1], vertical_alignment="bottom")
        index = look.selectbox(
            "Explain one of them",
            choices,
            format_func=lambda i: f"#{i} ({result['probs'][i, pred]:.0%} {names[pred]})",
            key="cm_inside_index",
        )
        if go.button("Look inside", key="cm_inside_go", icon=":material/search:"):
            show_in_inside(
                dataset.x_test[index],
                f"test image #{index}, a {names[true]} predicted as {names[pred]}",
                "Evaluation",
                true_class=int(true),
            )

st.subheader("Per-class precision and recall")
scores = result["scores"]
st.plotly_chart(charts.class_scores_figure(scores, names), key="class_scores_chart")
st.dataframe(
    {
        "class": names,
        "precision": np.round(scores["precision"], 4),
        "recall": np.round(scores["recall"], 4),
        "f1": np.round(scores["f1"], 4),
        "support": scores["support"],
    },
    hide_index=True,
    key="class_scores_table",
)
