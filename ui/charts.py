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
TILE_PX = 64  # height of a weight tile on screen (its width follows the page's column)
# A live chart is about 500 px wide: more points draw nothing more, and every point costs
# the browser at each redraw (Chromium's renderer took 80% of a core with 1500, 69% with 500,
# while a Fast training redrew its page twice a second).
MAX_POINTS = 500
FEW_POINTS = 30  # up to this many points a curve also draws markers
LABEL_PX = 14  # chart text a person can read


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


def merge_short_batches(progress: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-batch loss (or accuracy) with each short batch merged into the batch before it.

    An epoch's last batch holds the images left over (7 of 1,799 at batch size 128): its
    loss, over so few images, is far noisier than the others' and drawn a hair after the
    point before it, a sheer step at the end of every epoch's curve. Merged, the point is
    the two batches' loss weighted by their images, at the short batch's end, so each
    epoch's image-weighted mean loss is unchanged.

    Parameters
    ----------
    progress : ndarray of shape (n,)
        Epochs done (fractional) at the end of each batch, from 0 at the start.
    loss : ndarray of shape (n,)

    Returns
    -------
    progress, loss : ndarray of shape (m,), m <= n
    """
    progress, loss = np.asarray(progress, np.float64), np.asarray(loss, np.float64)
    span = np.diff(progress, prepend=0.0)  # each batch's share of an epoch
    short = np.zeros(progress.shape, bool)
    # Smaller than the batch before it; a rollback (negative span) or a first batch is not.
    short[1:] = (span[1:] > 0) & (span[1:] < span[:-1] * (1 - 1e-9))
    short[1:] &= ~short[:-1]  # a batch is merged into at most one other
    later = np.flatnonzero(short)
    earlier = later - 1
    merged = loss.copy()
    merged[later] = (loss[earlier] * span[earlier] + loss[later] * span[later]) / (
        span[earlier] + span[later]
    )
    keep = np.ones(progress.shape, bool)
    keep[earlier] = False
    return progress[keep], merged[keep]


# The curves' margins are fixed: Plotly's automatic margins measured the legend and the tick
# labels again at every live redraw, half of its time in Chromium. The bottom one holds the
# x-axis title and three legend rows (a phone-wide chart fits one entry per row).
CURVE_MARGIN = {"l": 60, "r": 20, "t": 50, "b": 130, "autoexpand": False}
LEGEND_GAP_PX = 56  # from the plot's bottom edge to the legend: the tick labels and axis title


def _layout(fig: go.Figure, title: str, y_title: str, height: int = 370) -> go.Figure:
    plot_height = height - CURVE_MARGIN["t"] - CURVE_MARGIN["b"]
    fig.update_layout(
        title=title,
        height=height,
        margin=CURVE_MARGIN,
        xaxis_title="epoch",
        yaxis_title=y_title,
        legend={"orientation": "h", "y": -LEGEND_GAP_PX / plot_height, "yanchor": "top"},
        uirevision="keep",
    )
    return fig


def curve_figure(history, metric: str) -> go.Figure:
    """Per-batch and per-epoch curves of ``loss`` or ``accuracy`` (train and validation).

    ``history`` has arrays batch_progress, batch_<metric>, epoch, train_<metric>,
    val_<metric> (``ui.runner.HistoryView``).
    """
    fig = go.Figure()
    bx, by = downsample(
        *merge_short_batches(history.batch_progress, getattr(history, f"batch_{metric}"))
    )
    few = len(bx) <= FEW_POINTS  # a line through one point draws nothing: show the points
    fig.add_trace(
        go.Scatter(
            x=bx,
            y=by,
            mode="lines+markers" if few else "lines",
            name=f"train {metric} (per batch)",
            line={"color": BATCH},
            marker={"color": TRAIN, "size": 7},
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
    first: int = 0,
    limit: float | None = None,
) -> go.Figure:
    """Units of the first layer as one heatmap of tiles; click a tile to pick its unit.

    Parameters
    ----------
    weights : ndarray of shape (H * W, n)
        The incoming weights of units ``first .. first + n - 1``.
    image_shape : (H, W)
    scaling : {"shared", "unit"}
        See ``weight_tiles``.
    title : str
    selected : int, optional
        The unit (its number in the whole layer) to outline.
    first : int
        The number of the first unit shown (pages of a wide layer).
    limit : float, optional
        The shared colour scale's half range; default: the largest weight shown. Pass the
        whole layer's, so every page of it uses one scale.

    Values are sent quantised to int8 (the screen shows far fewer colours), which keeps a
    live redraw light. A transparent marker over each tile's centre carries its unit in
    ``customdata``: Plotly reports clicks on markers, not on heatmap cells.
    """
    grid, grid_limit, cols = weight_tiles(weights, image_shape, scaling)
    if scaling == "shared" and limit:
        grid_limit = float(limit)
    quantised = np.clip(np.round(grid / grid_limit * 127), -127, 127).astype(np.int8)
    labels = (
        [f"{-grid_limit:.3g}", "0", f"{grid_limit:.3g}"]
        if scaling == "shared"
        else ["-max", "0", "+max"]
    )
    h, w = int(image_shape[0]), int(image_shape[1])
    n = weights.shape[1]
    rows = math.ceil(n / cols)
    fig = go.Figure(
        go.Heatmap(
            z=quantised,
            colorscale="RdBu",
            zmid=0,
            zmin=-127,
            zmax=127,
            colorbar={
                "tickvals": [-127, 0, 127],
                "ticktext": labels,
                "orientation": "h",  # below the grid: the tiles keep the whole width
                "thickness": 8,
                "len": 0.5,
                "y": -0.01,
                "yanchor": "top",
            },
            hoverinfo="skip",
        )
    )
    row, col = np.divmod(np.arange(n), cols)
    fig.add_trace(
        _click_targets(
            col * (w + GAP) + (w - 1) / 2,
            row * (h + GAP) + (h - 1) / 2,
            first + np.arange(n),
            "unit %{customdata}<extra>click to inspect</extra>",
        )
    )
    if selected is not None and first <= selected < first + n:
        r, c = divmod(selected - first, cols)
        x0, y0 = c * (w + GAP) - 0.5, r * (h + GAP) - 0.5
        fig.add_shape(
            type="rect", x0=x0, y0=y0, x1=x0 + w, y1=y0 + h, line={"color": "black", "width": 3}
        )
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=rows * TILE_PX + 80,
        margin={"l": 0, "r": 0, "t": 36, "b": 44},
        uirevision="weights",
        hoverdistance=-1,  # a click anywhere picks the nearest tile
    )
    fig.update_xaxes(
        visible=False,
        range=[-0.5, cols * (w + GAP) - GAP - 0.5],
        constrain="domain",
        fixedrange=True,
    )
    fig.update_yaxes(
        visible=False,
        range=[rows * (h + GAP) - GAP - 0.5, -0.5],  # row 0 on top
        scaleanchor="x",
        constrain="domain",
        constraintoward="top",
        fixedrange=True,
    )
    return fig


def _click_targets(x, y, customdata, hovertemplate: str, text=None) -> go.Scatter:
    """Invisible markers that make a heatmap clickable (one per cell or tile).

    Streamlit's selection only reports points of marker traces, and a click selects the
    marker nearest to it (``hoverdistance=-1`` in the layout makes that any distance).
    """
    return go.Scatter(
        x=np.asarray(x).tolist(),
        y=np.asarray(y).tolist(),
        customdata=np.asarray(customdata).tolist(),
        mode="markers",
        marker={"size": 24, "symbol": "square", "opacity": 0},
        hovertemplate=hovertemplate,
        text=text,
        showlegend=False,
    )


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
    probs: np.ndarray,
    class_names: Sequence[str],
    true: int | None = None,
    height: int = 220,
    horizontal: bool = False,
) -> go.Figure:
    """The predicted probabilities as bars; the prediction in blue, the true class marked.

    Parameters
    ----------
    probs : ndarray of shape (n_classes,)
    class_names : sequence of n_classes str
    true : int, optional
        The true class: when the prediction is wrong it is red and the true class green.
    height : int
    horizontal : bool
        One row per class with its percentage beside the bar (labels stay apart in a
        narrow card, where vertical bars' labels would collide).
    """
    probs = np.asarray(probs, dtype=np.float64)
    pred = int(probs.argmax())
    colours = ["#9ecae1"] * len(probs)
    colours[pred] = TRAIN if true is None or true == pred else "#d62728"
    if true is not None and true != pred:
        colours[true] = "#2ca02c"
    names = [str(c) for c in class_names]
    values = {"y": names, "x": probs} if horizontal else {"x": names, "y": probs}
    fig = go.Figure(
        go.Bar(
            **values,
            orientation="h" if horizontal else "v",
            marker_color=colours,
            text=[_share_label(p, c == true) for c, p in enumerate(probs)],
            textposition="outside",
            textfont={"size": LABEL_PX},
            constraintext="none",  # Plotly shrinks outside labels to the bar's width otherwise
            cliponaxis=False,
            hovertemplate=("%{y}: %{x:.2%}" if horizontal else "%{x}: %{y:.2%}")
            + "<extra></extra>",
        )
    )
    ticks = {"size": LABEL_PX}  # the theme's 12 px otherwise
    categories = {"type": "category", "tickmode": "linear", "dtick": 1, "tickfont": ticks}
    shares = {"range": [0, 1.3 if horizontal else 1.15], "tickformat": ".0%", "tickfont": ticks}
    fig.update_layout(
        height=height,
        margin={"l": 30, "r": 10, "t": 10, "b": 30},
        font={"size": LABEL_PX},
        showlegend=False,
    )
    if horizontal:
        fig.update_layout(
            xaxis={**shares, "visible": False},
            yaxis={**categories, "autorange": "reversed"},
            margin={"l": 24, "r": 4, "t": 4, "b": 4},
            bargap=0.15,
        )
    else:
        fig.update_layout(xaxis=categories, yaxis=shares)
    return fig


def _share_label(p: float, always: bool) -> str:
    """A bar's percentage; below 1% only where it matters (the true class)."""
    if p >= 0.01:
        return f"{p:.0%}"
    return "<1%" if always else ""


# ---------------------------------------------------------------------- evaluation
def confusion_figure(
    confusion: np.ndarray,
    class_names: Sequence[str],
    normalise: bool = False,
    selected: tuple[int, int] | None = None,
) -> go.Figure:
    """The confusion matrix (rows: true class, columns: predicted), counts or row shares.

    Parameters
    ----------
    confusion : ndarray of shape (n_classes, n_classes)
    class_names : sequence of n_classes str
    normalise : bool
        Show each row as shares of its true class (recall on the diagonal).
    selected : (true, predicted), optional
        The cell to outline.

    A transparent marker over each cell carries ``[true, predicted]`` (class indices) in
    its ``customdata`` (Plotly reports clicks on markers, not on heatmap cells). The axes are
    fixed, so a drag neither pans nor zooms.
    """
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
    n = len(counts)
    fig = go.Figure(
        go.Heatmap(
            z=colour,
            x=list(range(n)),
            y=list(range(n)),
            text=text,
            texttemplate="%{text}",
            textfont={"size": 13},
            colorscale="Blues",
            showscale=False,
            hoverinfo="skip",
        )
    )
    true, pred = np.divmod(np.arange(n * n), n)
    names = [str(c) for c in class_names][:n]
    fig.add_trace(
        _click_targets(
            pred,
            true,
            np.stack([true, pred], axis=1),
            "%{text}<extra>click to see them</extra>",
            text=[
                f"true {names[t]}, predicted {names[p]}: {int(counts[t, p])} images"
                for t, p in zip(true, pred, strict=True)
            ],
        )
    )
    if selected is not None:
        t, p = selected
        fig.add_shape(
            type="rect",
            x0=p - 0.5,
            x1=p + 0.5,
            y0=t - 0.5,
            y1=t + 0.5,
            line={"color": "#d62728", "width": 3},
        )
    axis = {
        "tickmode": "array",
        "tickvals": list(range(n)),
        "ticktext": names,
        "fixedrange": True,
        "showgrid": False,
        "zeroline": False,
    }
    fig.update_layout(
        height=520,
        margin={"l": 60, "r": 10, "t": 40, "b": 50},
        title="Confusion matrix (click a cell)",
        xaxis={**axis, "title": "predicted", "range": [-0.5, n - 0.5], "side": "bottom"},
        yaxis={**axis, "title": "true", "range": [n - 0.5, -0.5]},
        hoverdistance=-1,  # a click anywhere in the matrix picks the nearest cell
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
