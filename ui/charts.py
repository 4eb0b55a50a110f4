"""Arrays -> Plotly figures. No Streamlit here, so every figure is unit-testable."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

TRAIN = "#1f77b4"
VAL = "#ff7f0e"
BATCH = "rgba(31, 119, 180, 0.35)"
GAP = 1  # pixels between tiles of the weight grid
MAX_POINTS = 1500


def downsample(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS):
    """Bucket means so a long per-batch curve stays light to draw (x, y of equal length)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n <= max_points:
        return x, y
    edges = np.linspace(0, n, max_points + 1).astype(int)
    counts = np.diff(edges)
    xs = np.add.reduceat(x, edges[:-1]) / counts
    ys = np.add.reduceat(y, edges[:-1]) / counts
    return xs, ys


def _layout(fig: go.Figure, title: str, y_title: str, height: int = 340) -> go.Figure:
    fig.update_layout(
        title=title,
        height=height,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        xaxis_title="epoch",
        yaxis_title=y_title,
        legend={"orientation": "h", "y": -0.2},
        uirevision="keep",
    )
    return fig


def curve_figure(history, metric: str) -> go.Figure:
    """Per-batch and per-epoch curves of ``loss`` or ``accuracy`` (train and validation).

    ``history`` has arrays batch_progress, batch_<metric>, epoch, train_<metric>,
    val_<metric> (``ui.runner.HistoryView``).
    """
    fig = go.Figure()
    bx, by = downsample(history.batch_progress, getattr(history, f"batch_{metric}"))
    fig.add_trace(
        go.Scatter(
            x=bx, y=by, mode="lines", name=f"train {metric} (per batch)", line={"color": BATCH}
        )
    )
    epochs = np.asarray(history.epoch, float)
    train = np.asarray(getattr(history, f"train_{metric}"), float)
    val = np.asarray(getattr(history, f"val_{metric}"), float)
    mode = "lines+markers" if len(epochs) < 60 else "lines"
    if len(epochs):
        fig.add_trace(
            go.Scatter(
                x=epochs, y=train, mode=mode, name=f"train {metric} (epoch)", line={"color": TRAIN}
            )
        )
        validated = np.isfinite(val)  # NaN: no validation split, or an epoch val_every skips
        if validated.any():
            fig.add_trace(
                go.Scatter(
                    x=epochs[validated],
                    y=val[validated],
                    mode="lines+markers" if validated.sum() < 60 else "lines",
                    name=f"validation {metric}",
                    line={"color": VAL},
                )
            )
    title = "Loss (cross-entropy)" if metric == "loss" else "Accuracy"
    fig = _layout(fig, title, metric)
    if metric == "accuracy":
        fig.update_yaxes(range=[0, 1.01] if not len(by) or np.nanmin(by) < 0.8 else None)
    return fig


# ---------------------------------------------------------------------- weights
def grid_shape(n_units: int) -> tuple[int, int]:
    """(rows, cols) of a near-square grid holding ``n_units`` tiles."""
    cols = max(1, math.ceil(math.sqrt(n_units)))
    return math.ceil(n_units / cols), cols


def weight_tiles(
    weights: np.ndarray, image_shape: Sequence[int], scaling: str = "shared"
) -> tuple[np.ndarray, float, int]:
    """Tile each unit's incoming weights into one 2-D array.

    Parameters
    ----------
    weights : ndarray of shape (H * W, n_units)
    image_shape : (H, W)
    scaling : {"shared", "unit"}
        "shared": one colour scale for every unit; "unit": each tile divided by its own
        largest absolute weight (values in -1..1).

    Returns
    -------
    grid : ndarray of shape (rows * (H + GAP) - GAP, cols * (W + GAP) - GAP), float32
        Gaps are 0 (the centre of the diverging scale).
    limit : float
        The largest absolute value in ``grid`` (the colour scale's half range).
    cols : int
    """
    h, w = int(image_shape[0]), int(image_shape[1])
    weights = np.asarray(weights, dtype=np.float32)
    n = weights.shape[1]
    tiles = weights.T.reshape(n, h, w)
    if scaling == "unit":
        peak = np.abs(tiles).reshape(n, -1).max(axis=1)
        tiles = tiles / np.where(peak > 0, peak, 1.0)[:, None, None]
    rows, cols = grid_shape(n)
    grid = np.zeros((rows * (h + GAP) - GAP, cols * (w + GAP) - GAP), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[r * (h + GAP) : r * (h + GAP) + h, c * (w + GAP) : c * (w + GAP) + w] = tiles[i]
    limit = float(np.abs(grid).max()) or 1.0
    return grid, limit, cols


def unit_at(x: float, y: float, image_shape: Sequence[int], cols: int, n_units: int) -> int | None:
    """The unit under grid pixel (x = column, y = row), or None on a gap or past the end."""
    h, w = int(image_shape[0]), int(image_shape[1])
    col, dx = divmod(round(x), w + GAP)
    row, dy = divmod(round(y), h + GAP)
    if dx >= w or dy >= h or col >= cols or col < 0 or row < 0:
        return None
    unit = row * cols + col
    return unit if unit < n_units else None


def weights_grid_figure(
    weights: np.ndarray,
    image_shape: Sequence[int],
    scaling: str = "shared",
    title: str = "",
    selected: int | None = None,
) -> go.Figure:
    """All first-layer units as one heatmap image, diverging colours centred on zero.

    Values are sent quantised to int8 (the screen shows far fewer colours), which keeps a
    live redraw of hundreds of units light.
    """
    grid, limit, cols = weight_tiles(weights, image_shape, scaling)
    quantised = np.round(grid / limit * 127).astype(np.int8)
    ticks = [-127, 0, 127]
    labels = (
        [f"{-limit:.3g}", "0", f"{limit:.3g}"] if scaling == "shared" else ["-max", "0", "+max"]
    )
    fig = go.Figure(
        go.Heatmap(
            z=quantised,
            colorscale="RdBu",
            zmid=0,
            zmin=-127,
            zmax=127,
            colorbar={"tickvals": ticks, "ticktext": labels, "thickness": 12},
            hovertemplate="click to inspect<extra></extra>",
        )
    )
    h, w = int(image_shape[0]), int(image_shape[1])
    rows = math.ceil(weights.shape[1] / cols)
    if selected is not None and 0 <= selected < weights.shape[1]:
        r, c = divmod(selected, cols)
        x0, y0 = c * (w + GAP) - 0.5, r * (h + GAP) - 0.5
        fig.add_shape(
            type="rect", x0=x0, y0=y0, x1=x0 + w, y1=y0 + h, line={"color": "black", "width": 2}
        )
    side = min(900, max(420, 64 * max(rows, cols) + 80))
    fig.update_layout(
        title=title,
        height=side,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        uirevision="weights",
    )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    return fig


def image_figure(
    image: np.ndarray, title: str = "", diverging: bool = False, height: int = 320
) -> go.Figure:
    """One 2-D array as a heatmap: grayscale pixels (white on black) or diverging weights."""
    image = np.asarray(image, dtype=np.float32)
    if diverging:
        limit = float(np.abs(image).max()) or 1.0
        trace = go.Heatmap(
            z=image, colorscale="RdBu", zmid=0, zmin=-limit, zmax=limit, colorbar={"thickness": 12}
        )
    else:
        trace = go.Heatmap(z=image, colorscale="gray", zmin=0, zmax=255, showscale=False)
    fig = go.Figure(trace)
    fig.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    return fig


def bar_figure(
    values: np.ndarray,
    labels: Sequence[str],
    title: str = "",
    y_title: str = "",
    highlight: int | None = None,
    height: int = 260,
    y_range: Sequence[float] | None = None,
    diverging: bool = False,
) -> go.Figure:
    """Bars, one per label; ``highlight`` colours one of them."""
    values = np.asarray(values, dtype=np.float64)
    colours = [VAL if v < 0 else TRAIN for v in values] if diverging else [TRAIN] * len(values)
    if highlight is not None and 0 <= highlight < len(values):
        colours[highlight] = "#d62728"
    fig = go.Figure(
        go.Bar(
            x=[str(s) for s in labels],
            y=values,
            marker_color=colours,
            hovertemplate="%{x}: %{y:.3g}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        height=height,
        margin={"l": 40, "r": 10, "t": 40 if title else 10, "b": 30},
        yaxis_title=y_title,
        xaxis={"type": "category"},
    )
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    return fig


def probability_figure(
    probs: np.ndarray, class_names: Sequence[str], true: int | None = None, height: int = 220
) -> go.Figure:
    """The predicted probabilities as bars; the prediction in blue, the true class marked."""
    probs = np.asarray(probs, dtype=np.float64)
    pred = int(probs.argmax())
    colours = ["#9ecae1"] * len(probs)
    colours[pred] = TRAIN if true is None or true == pred else "#d62728"
    if true is not None and true != pred:
        colours[true] = "#2ca02c"
    fig = go.Figure(
        go.Bar(
            x=[str(c) for c in class_names],
            y=probs,
            marker_color=colours,
            text=[f"{p:.0%}" if p >= 0.01 else "" for p in probs],
            textposition="outside",
            hovertemplate="%{x}: %{y:.2%}<extra></extra>",
        )
    )
    fig.update_layout(
        height=height,
        margin={"l": 30, "r": 10, "t": 10, "b": 30},
        yaxis={"range": [0, 1.15], "tickformat": ".0%"},
        xaxis={"type": "category", "tickmode": "linear", "dtick": 1},
        showlegend=False,
    )
    return fig


# ---------------------------------------------------------------------- evaluation
def confusion_figure(
    confusion: np.ndarray, class_names: Sequence[str], normalise: bool = False
) -> go.Figure:
    """The confusion matrix (rows: true class, columns: predicted), counts or row shares."""
    counts = np.asarray(confusion, dtype=np.float64)
    if normalise:
        totals = counts.sum(axis=1, keepdims=True)
        z = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        text = [[f"{v:.1%}" if v else "" for v in row] for row in z]
    else:
        z = counts
        text = [[f"{int(v)}" if v else "" for v in row] for row in z]
    # Log-ish colour so the off-diagonal mistakes show next to a bright diagonal.
    colour = np.sqrt(z / (z.max() or 1.0))
    names = [str(c) for c in class_names]
    fig = go.Figure(
        go.Heatmap(
            z=colour,
            x=names,
            y=names,
            text=text,
            texttemplate="%{text}",
            customdata=counts,
            colorscale="Blues",
            showscale=False,
            hovertemplate="true %{y}, predicted %{x}: %{customdata:.0f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=520,
        margin={"l": 60, "r": 10, "t": 40, "b": 50},
        title="Confusion matrix (click a cell)",
        xaxis={"title": "predicted", "type": "category", "side": "bottom"},
        yaxis={"title": "true", "type": "category", "autorange": "reversed"},
    )
    return fig


def class_scores_figure(scores: dict, class_names: Sequence[str]) -> go.Figure:
    """Precision and recall per class, as grouped bars."""
    names = [str(c) for c in class_names]
    fig = go.Figure(
        [
            go.Bar(x=names, y=scores["precision"], name="precision", marker_color=TRAIN),
            go.Bar(x=names, y=scores["recall"], name="recall", marker_color=VAL),
        ]
    )
    low = float(min(np.min(scores["precision"]), np.min(scores["recall"]), 1.0))
    fig.update_layout(
        barmode="group",
        height=320,
        title="Precision and recall per class",
        margin={"l": 40, "r": 10, "t": 40, "b": 30},
        yaxis={"range": [max(0.0, low - 0.05), 1.0], "tickformat": ".0%"},
        xaxis={"type": "category", "title": "class"},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
