"""The clickable figures (confusion matrix, weights grid) and the shared click helper.

What a click reports is what the marker under it carries, so these check that every
invisible marker sits on its own cell or tile and names it; the browser tests
(tests/browser/test_browser_clicks.py) click them.
"""

from __future__ import annotations

import numpy as np
import pytest

from ui import charts, views


def test_each_matrix_cell_has_a_marker_naming_it():
    counts = np.arange(9).reshape(3, 3) * 7
    fig = charts.confusion_figure(counts, ["a", "b", "c"], selected=(2, 0))
    heatmap, targets = fig.data
    assert targets.type == "scatter" and targets.marker.opacity == 0
    assert heatmap.hoverinfo == "skip"  # the markers say what a cell is
    for x, y, (true, pred), text in zip(
        targets.x, targets.y, targets.customdata, targets.text, strict=True
    ):
        assert (x, y) == (pred, true)  # columns: predicted, rows: true
        assert text == f"true {'abc'[true]}, predicted {'abc'[pred]}: {counts[true, pred]} images"
    assert len(targets.x) == 9
    (outline,) = fig.layout.shapes
    assert (outline.x0, outline.x1, outline.y0, outline.y1) == (-0.5, 0.5, 1.5, 2.5)
    assert fig.layout.xaxis.fixedrange and fig.layout.yaxis.fixedrange  # a drag cannot pan
    assert list(fig.layout.yaxis.range) == [2.5, -0.5]  # the first class on top


def test_each_weight_tile_has_a_marker_on_its_centre_naming_its_unit():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(784, 10)).astype(np.float32)
    fig = charts.weights_grid_figure(weights, (28, 28), first=64, selected=69, limit=10.0)
    heatmap, targets = fig.data
    grid, _, cols = charts.weight_tiles(weights, (28, 28))
    assert list(targets.customdata) == list(range(64, 74))
    for x, y, unit in zip(targets.x, targets.y, targets.customdata, strict=True):
        row, col = int(y) // 29, int(x) // 29
        assert row * cols + col == unit - 64
        # The centre pixel under the marker is that unit's weight there.
        assert grid[int(y), int(x)] == weights[int(y) % 29 * 28 + int(x) % 29, unit - 64]
    assert heatmap.colorbar.ticktext == ("-10", "0", "10")  # the layer's scale, not the page's
    (outline,) = fig.layout.shapes
    assert (outline.x0, outline.y0) == (1 * 29 - 0.5, 1 * 29 - 0.5)  # unit 69: row 1, col 1
    assert fig.layout.xaxis.fixedrange and fig.layout.yaxis.fixedrange


def test_the_mistakes_bars_label_the_true_class_even_when_tiny():
    probs = np.array([0.001, 0.9, 0.094, 0.005])
    fig = charts.probability_figure(probs, list("0123"), true=3, horizontal=True)
    bar = fig.data[0]
    assert bar.orientation == "h" and list(bar.y) == list("0123")
    assert list(bar.text) == ["", "90%", "9%", "<1%"]
    assert bar.textfont.size >= 14 and fig.layout.yaxis.tickfont.size >= 14


@pytest.fixture()
def session(monkeypatch):
    state: dict = {}
    monkeypatch.setattr(views.st, "session_state", state)
    return state


def _selection(*points):
    return {"selection": {"points": list(points)}}


def test_a_click_is_reported_once(session):
    point = {"x": 3, "y": 1, "customdata": {"0": 1, "1": 3}, "point_index": 13}
    session["chart"] = _selection(point)
    assert views.clicked_point("chart", "memo") is None  # no new selection came in
    views._note_click("chart", "memo")
    clicked = views.clicked_point("chart", "memo")
    assert clicked["customdata"] == [1, 3] and clicked["x"] == 3
    assert views.clicked_point("chart", "memo") is None  # the same selection, once
    views._note_click("chart", "memo")  # the same cell clicked again later: it counts
    assert views.clicked_point("chart", "memo")["customdata"] == [1, 3]


def test_a_click_that_clears_the_selection_reports_nothing(session):
    session["chart"] = _selection()
    views._note_click("chart", "memo")
    assert views.clicked_point("chart", "memo") is None
    assert "memo" not in session
