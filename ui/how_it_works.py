"""The "How it works" panel: the equations of this network, next to its shapes.

The names are those of the comments in ``nn_core/network.py`` (Z, A, dZ, dW, db, M for
the dropout mask), so the panel and the code read alike. The L2 term and the dropout mask
appear when the run (or the sidebar, before a run) has them on, and the input size is the
data's own.

Each formula is one line of TeX: a line break inside a formula ends Streamlit's math there
and shows the rest as red KaTeX source. A displayed formula is a block of its own, its
``$$`` fences on the lines before and after it (``display``).
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

ACTIVATION_TEX = {
    "relu": r"g(z) = \max(0, z)",
    "leaky_relu": r"g(z) = \max(0.01\,z, z)",
    "sigmoid": r"g(z) = \frac{1}{1 + e^{-z}}",
    "tanh": r"g(z) = \tanh z",
}


def _shown(value: float) -> str:
    return f"{value:g}"


def display(tex: str) -> str:
    """A displayed formula as a markdown block; ``tex`` must be a single line."""
    if "\n" in tex:
        raise ValueError("a formula must be one line: a line break stops its rendering")
    return f"$$\n{tex}\n$$"


def equations(
    image_shape: Sequence[int] | None,
    n_inputs: int,
    activation: str = "relu",
    l2: float = 0.0,
    dropout: float = 0.0,
) -> str:
    """The panel's equations as Streamlit markdown: text with inline ``$..$`` and displayed
    formulas (``display``).

    Parameters
    ----------
    image_shape : (H, W), optional
        The images' size, named beside ``n_inputs``.
    n_inputs : int
        Inputs per image (H * W pixels).
    activation : str
        The hidden layers' activation, shown as ``g``.
    l2, dropout : float
        Shown as the L2 term and the dropout mask ``M`` when above 0.
    """
    size = f"{image_shape[0]}x{image_shape[1]} = " if image_shape else ""
    mask = r" \odot M^{[l]}" if dropout else ""
    penalty = r" + \frac{\lambda}{2}\sum_{l} \lVert W^{[l]} \rVert^2" if l2 else ""
    decay = r" + \lambda W^{[l]}" if l2 else ""
    parts = [
        f"**Forward pass**: a batch of $m$ images, each flattened to {size}{n_inputs} pixels "
        r"scaled to 0..1, is the matrix $X$ of shape $(m, " + str(n_inputs) + ")$. For the "
        r"hidden layers $l = 1, \dots, L-1$, with $A^{[0]} = X$ and "
        f"${ACTIVATION_TEX.get(activation, 'g')}$:",
        display(r"Z^{[l]} = A^{[l-1]} W^{[l]} + b^{[l]}, \qquad A^{[l]} = g(Z^{[l]})" + mask),
    ]
    if dropout:
        parts.append(
            f"**Dropout** ($p = {_shown(dropout)}$): the mask $M^{{[l]}}$ holds "
            r"$\frac{1}{1-p}$ for a kept unit and $0$ for a dropped one, drawn anew for "
            "every batch; a trained network is used without it."
        )
    parts += [
        r"The output layer $L$ turns scores into probabilities $\hat{Y}$:",
        display(
            r"Z^{[L]} = A^{[L-1]} W^{[L]} + b^{[L]}, \qquad \hat{Y} = \operatorname{softmax}"
            r"(Z^{[L]}), \qquad \hat{y}_{ik} = \frac{e^{z_{ik}}}{\sum_j e^{z_{ij}}}"
        ),
        "**Loss**: the mean cross-entropy against the one-hot labels $Y$"
        + (f", plus the L2 penalty ($\\lambda = {_shown(l2)}$)" if l2 else "")
        + ":",
        display(
            r"\mathcal{L} = -\frac{1}{m}\sum_{i=1}^{m}\sum_{k} y_{ik}\log \hat{y}_{ik}" + penalty
        ),
        "**Backward pass**: softmax and cross-entropy together give a simple error at the "
        "output, which flows back layer by layer:",
        display(
            r"dZ^{[L]} = \frac{1}{m}(\hat{Y} - Y), \qquad dW^{[l]} = {A^{[l-1]}}^{\top} dZ^{[l]}"
            + decay
            + r", \qquad db^{[l]} = \sum_{i} dZ^{[l]}_{i}"
        ),
        display(
            r"dZ^{[l-1]} = dZ^{[l]} {W^{[l]}}^{\top}"
            + (r" \odot M^{[l-1]}" if dropout else "")
            + r" \odot g'(Z^{[l-1]})"
        ),
        r"**Update** (gradient descent, learning rate $\alpha$):",
        display(
            r"W^{[l]} \leftarrow W^{[l]} - \alpha\, dW^{[l]}, \qquad b^{[l]} \leftarrow b^{[l]}"
            r" - \alpha\, db^{[l]}"
        ),
        "SGD with momentum and Adam keep running averages of these gradients.",
    ]
    return "\n\n".join(parts)


def shapes_rows(sizes: Sequence[int], batch: int | None = None) -> list[dict]:
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


def how_it_works(
    model=None,
    batch: int | None = None,
    *,
    config=None,
    image_shape: Sequence[int] | None = None,
) -> None:
    """The expander: equations for ``config`` (L2, dropout, activation) and inputs of
    ``image_shape``; the shapes table when there is a ``model``."""
    with st.expander("How it works: the equations and this network's shapes"):
        if image_shape is not None:
            n_inputs = int(image_shape[0]) * int(image_shape[1])
        else:
            n_inputs = model.sizes[0] if model is not None else 784
        st.markdown(
            equations(
                image_shape,
                n_inputs,
                activation=getattr(config, "activation", "relu"),
                l2=getattr(config, "l2", 0.0),
                dropout=getattr(config, "dropout", 0.0),
            )
        )
        if model is not None:
            st.markdown(
                f"**This network**: {'-'.join(str(s) for s in model.sizes)}, activation "
                f"`{model.activation}`, {model.n_params:,} parameters."
            )
            st.table(shapes_rows(model.sizes, batch))
        else:
            st.caption("Start a run to see the live shapes of its matrices here.")
