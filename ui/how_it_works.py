"""The "how it works" panel: the notebook's equations next to this network's shapes."""

from __future__ import annotations

import streamlit as st

EQUATIONS = r"""
**Forward pass** (one batch of $m$ images, each flattened to 784 pixels scaled to 0..1):

$$Z^{[1]} = X W^{[1]} + b^{[1]}, \qquad A^{[1]} = g(Z^{[1]})$$

$$Z^{[L]} = A^{[L-1]} W^{[L]} + b^{[L]}, \qquad \hat{Y} = \operatorname{softmax}(Z^{[L]}),\quad
\hat{y}_{ik} = \frac{e^{z_{ik}}}{\sum_j e^{z_{ij}}}$$

**Loss**: the mean cross-entropy against the one-hot labels $Y$ (plus $\tfrac{\lambda}{2}\sum
\lVert W\rVert^2$ with L2):

$$\mathcal{L} = -\frac{1}{m}\sum_{i=1}^{m}\sum_{k} y_{ik}\log \hat{y}_{ik}$$

**Backward pass**: softmax and cross-entropy together give a simple error at the output,
which flows back layer by layer:

$$dZ^{[L]} = \frac{1}{m}(\hat{Y} - Y), \qquad dW^{[l]} = {A^{[l-1]}}^{\top} dZ^{[l]},
\qquad db^{[l]} = \textstyle\sum_i dZ^{[l]}_{i\cdot}$$

$$dZ^{[l-1]} = dZ^{[l]} {W^{[l]}}^{\top} \odot g'(Z^{[l-1]})$$

**Update** (gradient descent): $W \leftarrow W - \alpha\, dW$, $b \leftarrow b - \alpha\, db$;
SGD with momentum and Adam keep running averages of these gradients.
"""


def shapes_rows(sizes, batch: int | None = None) -> list[dict]:
    """One row per layer: the matrices and their shapes for a network of ``sizes``."""
    m = "m" if not batch else str(batch)
    rows = [{"layer": "input X", "shape": f"({m}, {sizes[0]})", "parameters": 0}]
    for i in range(1, len(sizes)):
        last = i == len(sizes) - 1
        rows.append(
            {
                "layer": f"W[{i}], b[{i}]" + (" → softmax" if last else " → activation"),
                "shape": f"W ({sizes[i - 1]}, {sizes[i]}), b ({sizes[i]},); Z, A ({m}, {sizes[i]})",
                "parameters": sizes[i - 1] * sizes[i] + sizes[i],
            }
        )
    return rows


def how_it_works(model=None, batch: int | None = None) -> None:
    with st.expander("How it works: the equations and this network's shapes"):
        st.markdown(EQUATIONS)
        if model is not None:
            rows = shapes_rows(model.sizes, batch)
            st.markdown(
                f"**This network**: {'-'.join(str(s) for s in model.sizes)}, activation "
                f"`{model.activation}`, {model.n_params:,} parameters."
            )
            st.table(rows)
        else:
            st.caption("Start a run to see the live shapes of its matrices here.")
