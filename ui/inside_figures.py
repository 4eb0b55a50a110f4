"""Figures and summaries for the Inside page: arrays in, Plotly figures and text out.

No Streamlit calls, so every function here is unit-testable on plain arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

POSITIVE = "#c0392b"  # red: raises the score / the unit is positive
NEGATIVE = "#2166ac"  # blue: lowers the score / negative
NEUTRAL = "#9ecae1"
WIDE_LAYER = 32  # wider layers show their strongest units and summarise the rest
STRONGEST = 20

# Diverging, transparent at zero: over a digit, only the pixels that matter are coloured.
OVERLAY_SCALE = [
    [0.0, "rgba(33, 102, 172, 0.85)"],
    [0.3, "rgba(103, 169, 207, 0.45)"],
    [0.5, "rgba(255, 255, 255, 0)"],
    [0.7, "rgba(239, 138, 98, 0.45)"],
    [1.0, "rgba(178, 24, 43, 0.85)"],
]


@dataclass
class LayerView:
    """The units of one layer worth drawing, and a sentence about the others."""

    units: np.ndarray  # (k,) indices, in the order drawn
    values: np.ndarray  # (k,) their activations
    summary: str


def layer_view(
    activations: np.ndarray, wide: int = WIDE_LAYER, strongest: int = STRONGEST
) -> LayerView:
    """All units of a narrow layer in order; for a wide one the strongest by size.

    Parameters
    ----------
    activations : ndarray of shape (width,)
        One image's activations in this layer.

    Returns
    -------
    LayerView
    """
    a = np.asarray(activations, dtype=np.float64)
    width = a.size
    active = int(np.count_nonzero(np.abs(a) > 1e-6))
    if width <= wide:
        units = np.arange(width)
        return LayerView(units, a, f"{width} units, {active} of them not zero.")
    units = np.argsort(-np.abs(a), kind="stable")[:strongest]
    rest = np.delete(a, units)
    summary = (
        f"{width} units, {active} of them not zero. The {strongest} strongest are drawn; "
        f"the other {rest.size} are at most {np.abs(rest).max():.2g} "
        f"(mean {np.abs(rest).mean():.2g}) in size."
    )
    return LayerView(units, a[units], summary)


def activation_figure(view: LayerView, title: str, height: int = 230) -> go.Figure:
    """Bars of one layer's units, labelled by unit number; negative values in blue."""
    colours = [NEGATIVE if v < 0 else POSITIVE for v in view.values]
    fig = go.Figure(
        go.Bar(
            x=[f"u{u}" for u in view.units],
            y=view.values,
            marker_color=colours,
            hovertemplate="unit %{x}: %{y:.3g}<extra></extra>",
        )
    )
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=height,
        margin={"l": 35, "r": 5, "t": 35, "b": 30},
        xaxis={"type": "category", "tickangle": -60, "tickfont": {"size": 9}},
        showlegend=False,
    )
    return fig


def logits_figure(logits: np.ndarray, class_names: Sequence[str], height: int = 230) -> go.Figure:
    """The output layer's scores (logits) before the softmax, the largest highlighted."""
    logits = np.asarray(logits, dtype=np.float64)
    colours = [NEUTRAL] * logits.size
    colours[int(logits.argmax())] = POSITIVE
    fig = go.Figure(
        go.Bar(
            x=[str(c) for c in class_names],
            y=logits,
            marker_color=colours,
            hovertemplate="class %{x}: score %{y:.3g}<extra></extra>",
        )
    )
    fig.update_layout(
        title={"text": "Output: scores (logits)", "font": {"size": 14}},
        height=height,
        margin={"l": 35, "r": 5, "t": 35, "b": 30},
        xaxis={"type": "category"},
        showlegend=False,
    )
    return fig


def contributions_figure(
    values: np.ndarray, units: np.ndarray, class_name: str, height: int = 260
) -> go.Figure:
    """Horizontal bars: how much each listed unit adds to the class's score."""
    values = np.asarray(values, dtype=np.float64)
    labels = [f"u{u}" for u in units]
    fig = go.Figure(
        go.Bar(
            x=values[::-1],
            y=labels[::-1],
            orientation="h",
            marker_color=[NEGATIVE if v < 0 else POSITIVE for v in values[::-1]],
            hovertemplate="unit %{y} adds %{x:.3g}<extra></extra>",
        )
    )
    fig.update_layout(
        title={"text": f"Added to the score of {class_name}", "font": {"size": 14}},
        height=height,
        margin={"l": 50, "r": 10, "t": 35, "b": 30},
        yaxis={"type": "category"},
        showlegend=False,
    )
    return fig


def overlay_figure(
    image: np.ndarray, heat: np.ndarray, title: str = "", height: int = 330
) -> go.Figure:
    """The digit in grey with a diverging map over it: red positive, blue negative, clear at 0.

    Parameters
    ----------
    image : ndarray of shape (H, W)
        Pixels 0..255.
    heat : ndarray of shape (H, W)
        The map; its colour scale is symmetric around 0.
    """
    heat = np.asarray(heat, dtype=np.float64)
    limit = float(np.abs(heat).max()) or 1.0
    fig = go.Figure(
        [
            go.Heatmap(
                z=np.asarray(image, dtype=np.float32),
                colorscale="gray",
                zmin=0,
                zmax=255,
                showscale=False,
                hoverinfo="skip",
            ),
            go.Heatmap(
                z=heat,
                colorscale=OVERLAY_SCALE,
                zmid=0,
                zmin=-limit,
                zmax=limit,
                colorbar={"thickness": 10, "len": 0.8},
                hovertemplate="x %{x}, y %{y}: %{z:.3g}<extra></extra>",
            ),
        ]
    )
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=height,
        margin={"l": 5, "r": 5, "t": 35 if title else 5, "b": 5},
    )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    return fig


def diverging_rgb(values: np.ndarray, factor: int = 4) -> np.ndarray:
    """A (H, W) map as an enlarged RGB image: red positive, blue negative, white 0.

    Returns
    -------
    ndarray of shape (H * factor, W * factor, 3), uint8
    """
    v = np.asarray(values, dtype=np.float64)
    limit = float(np.abs(v).max()) or 1.0
    t = np.clip(v / limit, -1, 1)[..., None]
    white = np.array([255.0, 255.0, 255.0])
    red, blue = np.array([178.0, 24.0, 43.0]), np.array([33.0, 102.0, 172.0])
    rgb = np.where(t >= 0, white + t * (red - white), white - t * (blue - white))
    rgb = np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)
    return np.rint(rgb).astype(np.uint8)


def probability_path_figure(
    path: np.ndarray,
    class_names: Sequence[str],
    start: int,
    target: int,
    height: int = 300,
    x: Sequence[int] | None = None,
    x_title: str = "step",
    title: str = "Probabilities along the way",
) -> go.Figure:
    """Each class's probability along a path (the counterfactual's steps, or the epochs of
    a replay), ``path`` of shape (n_points, n_classes); ``start`` and ``target`` bold."""
    path = np.asarray(path, dtype=np.float64)
    steps = np.arange(path.shape[0]) if x is None else np.asarray(x)
    fig = go.Figure()
    for c in range(path.shape[1]):
        main = c in (start, target)
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=path[:, c],
                name=str(class_names[c]),
                mode="lines",
                line={
                    "width": 3 if main else 1,
                    "color": POSITIVE if c == target else (NEGATIVE if c == start else "#bbbbbb"),
                },
                hovertemplate=f"{class_names[c]}: %{{y:.1%}} at {x_title} %{{x}}<extra></extra>",
            )
        )
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=height,
        margin={"l": 40, "r": 10, "t": 35, "b": 10},
        xaxis={"title": x_title, "dtick": max(1, int((steps[-1] - steps[0]) // 8))},
        yaxis={"range": [0, 1], "tickformat": ".0%"},
        legend={"font": {"size": 10}, "orientation": "h", "y": -0.3, "title": {"text": "class"}},
    )
    return fig


def gradient_equation(sizes: Sequence[int]) -> str:
    """LaTeX for the gradient of a class score with respect to the input, with the shapes
    of a network of ``sizes`` under each factor."""
    n = len(sizes) - 1
    factors = []
    for layer in range(1, n + 1):
        w = rf"\underbrace{{W^{{[{layer}]}}}}_{{{sizes[layer - 1]}\times{sizes[layer]}}}"
        if layer < n:
            diag = rf"\operatorname{{diag}}\,g'(z^{{[{layer}]}})"
            d = rf"\underbrace{{{diag}}}_{{{sizes[layer]}\times{sizes[layer]}}}"
            factors.append(w + d)
        else:
            factors.append(
                rf"\underbrace{{W^{{[{layer}]}}_{{:,c}}}}_{{{sizes[layer - 1]}\times 1}}"
            )
    return r"\frac{\partial z_c}{\partial x} = " + r"\;".join(factors)
