"""Mistakes: misclassified test images, the most confident first, with their probabilities."""

import numpy as np
import streamlit as st

from nn_core import misclassified
from ui import charts
from ui.current_model import evaluated_model_or_stop
from ui.inside import show_in_inside
from ui.views import digit_image

PER_PAGE = 12
COLUMNS = 4

st.header("Mistakes")

view, dataset, result = evaluated_model_or_stop()

names = list(view.class_names)[: result["probs"].shape[1]]
probs = result["probs"]
order = misclassified(dataset.y_test, probs)
ANY = -1
choices = [ANY, *range(len(names))]


def label(c: int) -> str:
    return "any" if c == ANY else names[c]


a, b, c = st.columns(3)
true = a.selectbox("True class", choices, format_func=label, key="mk_true")
pred = b.selectbox("Predicted class", choices, format_func=label, key="mk_pred")
y_pred = result["y_pred"]
keep = np.ones(len(order), dtype=bool)
if true != ANY:
    keep &= dataset.y_test[order] == true
if pred != ANY:
    keep &= y_pred[order] == pred
order = order[keep]
pages = max(1, -(-len(order) // PER_PAGE))
page = c.number_input("Page", min_value=1, max_value=pages, step=1, key="mk_page")
st.caption(
    f"{len(order)} mistakes (of {result['n']:,} test images), the most confident first. "
    f"Page {page} of {pages}."
)
if not len(order):
    st.success("No mistakes with these filters.")
    st.stop()

shown = order[(page - 1) * PER_PAGE : page * PER_PAGE]
for row_start in range(0, len(shown), COLUMNS):
    cols = st.columns(COLUMNS)
    for slot, i in enumerate(shown[row_start : row_start + COLUMNS]):
        t, p = int(dataset.y_test[i]), int(y_pred[i])
        with cols[slot], st.container(border=True):
            st.image(digit_image(dataset.x_test[i], 3))
            st.markdown(f"true **{names[t]}** → predicted **{names[p]}** ({probs[i, p]:.0%})")
            st.plotly_chart(
                charts.probability_figure(
                    probs[i], names, true=t, height=22 * len(names) + 10, horizontal=True
                ),
                key=f"mistake_probs_{row_start + slot}",
                width="stretch",
            )
            if st.button("Look inside", key=f"mistake_inside_{i}", icon=":material/search:"):
                show_in_inside(
                    dataset.x_test[i],
                    f"test image #{i}, a {names[t]} predicted as {names[p]}",
                    "Mistakes",
                    true_class=t,
                )
