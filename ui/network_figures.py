"""Arrays -> Plotly figures for the Network page (health, hidden space, units). No
Streamlit here, so every figure is unit-testable."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nn_core.health import DivergenceOrigin, HealthRecord, series
from ui.charts import LABEL_PX, TRAIN, VAL

# One colour per layer (layer 1 first) and per class (digits 0-9): Plotly's D3 palette.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
HEALTHY_UPDATE = 1e-3  # the usual rule of thumb for update / weight per step
MISTAKE = "x-thin-open"
HISTOGRAM_KINDS = {
    "weights": "Weights W",
    "activations": "Activations A (probe images)",
    "gradients": "Gradients dL/dW (probe images)",
}


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _layout(fig: go.Figure, title: str, y_title: str, height: int = 320) -> go.Figure:
    fig.update_layout(
        title=title,
        height=height,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        xaxis_title="epoch",
        yaxis_title=y_title,
        legend={"orientation": "h", "y": -0.25},
        font={"size": LABEL_PX - 1},
        uirevision="keep",
    )
    return fig


def _progress(records: Sequence[HealthRecord]) -> np.ndarray:
    return np.array([r.progress for r in records], dtype=np.float64)


def _mode(n: int) -> str:
    return "lines+markers" if n < 60 else "lines"


def per_layer_figure(
    records: Sequence[HealthRecord],
    name: str,
    title: str,
    y_title: str,
    log: bool = True,
    prefix: str = "layer",
) -> go.Figure:
    """One line per layer of the record attribute ``name`` over training."""
    fig = go.Figure()
    values = series(records, name)
    x = _progress(records)
    for i in range(values.shape[1] if values.size else 0):
        y = values[:, i]
        if log:
            y = np.where(y > 0, y, np.nan)  # a log axis cannot show 0
        fig.add_trace(
            go.Scatter(
                x=x, y=y, mode=_mode(len(x)), name=f"{prefix} {i + 1}", line={"color": colour(i)}
            )
        )
    _layout(fig, title, y_title)
    if log:
        fig.update_yaxes(type="log", exponentformat="power", dtick=1)
    return fig


def gradient_figure(records: Sequence[HealthRecord], relative: bool) -> go.Figure:
    """Gradient size per weight layer over training (log scale)."""
    if relative:
        return per_layer_figure(
            records,
            "relative_grad",
            "Gradient relative to the weights, ‖dL/dW‖ / ‖W‖",
            "‖dL/dW‖ / ‖W‖",
        )
    return per_layer_figure(records, "grad_norm", "Gradient norm ‖dL/dW‖", "‖dL/dW‖")


def update_figure(
    records: Sequence[HealthRecord], origin: DivergenceOrigin | None = None
) -> go.Figure:
    """Update / weight ratio per layer, the healthy 0.001 and the "as big as the weights"
    1 marked, and where a divergence started."""
    fig = per_layer_figure(
        records, "update_ratio", "Update size per step, ‖ΔW‖ / ‖W‖", "‖ΔW‖ / ‖W‖"
    )
    for level, text, where in (
        (HEALTHY_UPDATE, "usual ≈ 0.001", "bottom left"),
        (1.0, "as big as the weights", "top left"),
    ):
        fig.add_hline(
            y=level,
            line={"dash": "dot", "color": "#888", "width": 1},
            annotation_text=text,
            annotation_position=where,
        )
    if origin is not None and origin.progress is not None and origin.ratio:
        fig.add_trace(
            go.Scatter(
                x=[origin.progress],
                y=[origin.ratio],
                mode="markers+text",
                marker={"symbol": "star", "size": 16, "color": "#d62728"},
                text=[f"started here: layer {origin.layer}"],
                textposition="bottom right",
                name="divergence started",
            )
        )
    return fig


def units_figure(records: Sequence[HealthRecord], activation: str) -> go.Figure:
    """Share of dead (ReLU) or saturated (sigmoid, tanh) units per hidden layer."""
    dead = activation in ("relu", "leaky_relu")
    name = "dead" if dead else "saturated"
    title = (
        "Dead units: never active on the probe images"
        if dead
        else "Saturated units: on the flat part for 90% of the probe images"
    )
    fig = per_layer_figure(records, name, title, f"share {name}", log=False, prefix="hidden layer")
    fig.add_hline(
        y=0.5,
        line={"dash": "dot", "color": "#888", "width": 1},
        annotation_text="half",
        annotation_position="top left",
    )
    fig.update_yaxes(range=[-0.02, 1.02], tickformat=".0%")
    return fig


def loss_figure(history) -> go.Figure:
    """Training and validation loss per epoch (``history``: epoch, train_loss, val_loss)."""
    fig = go.Figure()
    epochs = np.asarray(history.epoch, float)
    train = np.asarray(history.train_loss, float)
    val = np.asarray(history.val_loss, float)
    fig.add_trace(
        go.Scatter(
            x=epochs, y=train, mode=_mode(len(epochs)), name="training loss", line={"color": TRAIN}
        )
    )
    validated = np.isfinite(val)
    if validated.any():
        fig.add_trace(
            go.Scatter(
                x=epochs[validated],
                y=val[validated],
                mode=_mode(int(validated.sum())),
                name="validation loss",
                line={"color": VAL},
            )
        )
        best = int(np.flatnonzero(validated)[np.argmin(val[validated])])
        fig.add_trace(
            go.Scatter(
                x=[epochs[best]],
                y=[val[best]],
                mode="markers",
                name="lowest validation loss",
                marker={"symbol": "circle-open", "size": 14, "color": VAL, "line": {"width": 2}},
            )
        )
    return _layout(fig, "Cross-entropy per epoch", "cross-entropy")


def histogram_figure(record: HealthRecord, kind: str) -> go.Figure:
    """Small multiples: one histogram per layer of ``kind`` at one record."""
    hists = record.histograms[kind]
    prefix = "hidden layer" if kind == "activations" else "layer"
    fig = make_subplots(
        rows=1,
        cols=max(1, len(hists)),
        subplot_titles=[f"{prefix} {i + 1}" for i in range(len(hists))],
    )
    for i, h in enumerate(hists):
        centres = (h.edges[:-1] + h.edges[1:]) / 2
        fig.add_trace(
            go.Bar(
                x=centres,
                y=h.counts,
                width=np.diff(h.edges),
                marker={"color": colour(i)},
                showlegend=False,
                name=f"{prefix} {i + 1}",
            ),
            row=1,
            col=i + 1,
        )
    fig.update_layout(
        title=f"{HISTOGRAM_KINDS[kind]} at epoch {record.progress:.2f}",
        height=260,
        margin={"l": 40, "r": 20, "t": 70, "b": 30},
        bargap=0,
        font={"size": LABEL_PX - 2},
    )
    fig.update_xaxes(nticks=4, exponentformat="power")
    fig.update_yaxes(showticklabels=False)
    return fig


# --------------------------------------------------------------------- hidden space
def hidden_space_figure(
    coords: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    class_names: Sequence[str],
    title: str,
    ranges: tuple[tuple[float, float], tuple[float, float]] | None = None,
    drawing: np.ndarray | None = None,
    selected: int | None = None,
) -> go.Figure:
    """The sample's points coloured by true class; mistakes drawn as crosses; the drawing
    as a star. Every point's customdata is its position in the sample (for clicks).

    Parameters
    ----------
    coords : ndarray of shape (n, 2)
    labels, predictions : ndarray of shape (n,), int
    ranges : ((x0, x1), (y0, y1)), optional
        Fixed axes, so frames of a replay share them.
    drawing : ndarray of shape (2,), optional
    selected : int, optional
        A sample position to ring.
    """
    fig = go.Figure()
    wrong = predictions != labels
    index = np.arange(len(labels))
    for c, name in enumerate(class_names):
        right, missed = index[(labels == c) & ~wrong], index[(labels == c) & wrong]
        fig.add_trace(_points(coords, right, str(name), c, labels, predictions, class_names))
        fig.add_trace(_points(coords, missed, None, c, labels, predictions, class_names))
    fig.add_trace(  # the legend's entry for every class's crosses
        go.Scatter(
            x=[],
            y=[],
            mode="markers",
            name=f"mistakes ({int(wrong.sum())})",
            marker={"symbol": MISTAKE, "size": 9, "color": "#444", "line": {"width": 1.5}},
        )
    )
    if selected is not None and 0 <= selected < len(labels):
        fig.add_trace(
            go.Scatter(
                x=[coords[selected, 0]],
                y=[coords[selected, 1]],
                mode="markers",
                marker={
                    "symbol": "circle-open",
                    "size": 18,
                    "color": "black",
                    "line": {"width": 2},
                },
                name="selected",
                hoverinfo="skip",
            )
        )
    if drawing is not None:
        fig.add_trace(
            go.Scatter(
                x=[drawing[0]],
                y=[drawing[1]],
                mode="markers+text",
                text=["your drawing"],
                textposition="top center",
                name="your drawing",
                hoverinfo="skip",
                marker={
                    "symbol": "star",
                    "size": 20,
                    "color": "gold",
                    "line": {"width": 1.5, "color": "black"},
                },
            )
        )
    fig.update_layout(
        title=title,
        height=560,
        margin={"l": 20, "r": 20, "t": 50, "b": 20},
        legend={"itemsizing": "constant", "title": {"text": "true class"}},
        clickmode="event+select",
        dragmode="pan",
        hovermode="closest",
        uirevision=title.split(":")[0],
        font={"size": LABEL_PX - 1},
    )
    fig.update_xaxes(showticklabels=False, zeroline=False, range=ranges[0] if ranges else None)
    fig.update_yaxes(showticklabels=False, zeroline=False, range=ranges[1] if ranges else None)
    return fig


def _points(coords, rows, name, c, labels, predictions, class_names) -> go.Scatter:
    """Class ``c``'s points: dots named ``name``, or, with no name, its mistakes as crosses
    in the same legend group (hiding the class hides both)."""
    cross = name is None
    return go.Scatter(
        x=coords[rows, 0],
        y=coords[rows, 1],
        mode="markers",
        name=name or f"{class_names[c]}: mistakes",
        legendgroup=str(c),
        showlegend=not cross,
        marker={
            "color": colour(c),
            "symbol": MISTAKE if cross else "circle",
            "size": 9 if cross else 6,
            "opacity": 0.8,
            "line": {"width": 1.5 if cross else 0},
        },
        customdata=rows[:, None],
        text=[
            f"true {class_names[labels[i]]}, predicted {class_names[predictions[i]]}" for i in rows
        ],
        hovertemplate="%{text}<extra></extra>",
    )


def padded_ranges(frames: Sequence[np.ndarray], pad: float = 0.05):
    """Axis ranges that hold every frame's points, ((x0, x1), (y0, y1))."""
    both = np.concatenate([f for f in frames if f.size])
    low, high = np.nanmin(both, axis=0), np.nanmax(both, axis=0)
    span = np.maximum(high - low, 1e-9)
    low, high = low - pad * span, high + pad * span
    return (float(low[0]), float(high[0])), (float(low[1]), float(high[1]))


# --------------------------------------------------------------------------- units
def mosaic(images: np.ndarray, cols: int, gap: int = 2, fill: int = 60) -> np.ndarray:
    """Images (k, H, W) uint8 in a grid with ``gap``-pixel grey lines, shape (rows*(H+gap)
    - gap, cols*(W+gap) - gap)."""
    k, h, w = images.shape
    rows = -(-k // cols)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), fill, np.uint8)
    for i in range(k):
        r, c = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = images[i]
    return out
