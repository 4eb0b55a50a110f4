"""Clicks and drags on the Evaluation matrix and the Weights grid, in a real Chromium.

Each test does what a person does (click a cell at its place on the screen, drag across
the matrix) and checks what they then see. The pages show the starter model shipped with
the app (784-128-64-10, MNIST), so no training is needed.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

WAIT = 45_000  # ms: a rerun and a redraw on a busy two-core machine (load 20 seen)
TILE = 28 + 1  # a 28x28 weight tile and the 1-pixel gap after it (ui.charts.GAP)


@pytest.fixture()
def app(page, open_app):
    return open_app(page)


# ------------------------------------------------------------------ confusion matrix
def _matrix_count(app, true: int, pred: int) -> int:
    """The count the matrix prints in cell (true, pred)."""
    texts = app.plot("confusion_chart").evaluate("(el) => el._fullData[0].text")
    return int(texts[true][pred] or 0)


def _samples(app):
    """The cell's samples: the only images and select boxes on the Evaluation page."""
    return app.main


def _expect_cell_shown(app, true: int, pred: int) -> None:
    """The person sees cell (true, pred): its caption, its images, the select boxes."""
    n = _matrix_count(app, true, pred)
    samples = _samples(app)
    expect(
        samples.get_by_text(f"{n} test images of class {true} predicted as {pred}.")
    ).to_be_visible(timeout=WAIT)
    images = samples.locator("[data-testid=stImage] img")
    expect(images).to_have_count(min(n, 40), timeout=WAIT)
    expect(images.first).to_be_visible(timeout=WAIT)
    boxes = samples.locator("input[role=combobox]")
    expect(boxes.nth(0)).to_have_value(str(true), timeout=WAIT)
    expect(boxes.nth(1)).to_have_value(str(pred), timeout=WAIT)


def test_clicking_a_matrix_cell_shows_its_images(app):
    app.nav("Evaluation")
    # The page opens on the most frequent confusion (true 9, predicted 4 for the starter).
    expect(
        _samples(app).get_by_text(re.compile(r"test images of class 9 predicted as 4"))
    ).to_be_visible(timeout=WAIT)
    app.click_plot("confusion_chart", 9, 4)  # x: predicted 9, y: true 4
    _expect_cell_shown(app, 4, 9)
    app.click_plot("confusion_chart", 2, 7)
    _expect_cell_shown(app, 7, 2)
    # Back to the first cell: a second click on a cell Streamlit saw before still counts.
    app.click_plot("confusion_chart", 9, 4)
    _expect_cell_shown(app, 4, 9)
    app.screenshot("clicks_evaluation")


def test_a_click_after_the_select_boxes_moved_away_still_counts(app):
    app.nav("Evaluation")
    app.click_plot("confusion_chart", 9, 4)
    _expect_cell_shown(app, 4, 9)
    box = _samples(app).locator("input[role=combobox]").first
    box.click()
    app.page.get_by_role("option", name="3", exact=True).click()
    app.settle()
    expect(
        _samples(app).get_by_text(re.compile(r"test images of class 3 predicted as 9"))
    ).to_be_visible(timeout=WAIT)
    app.click_plot("confusion_chart", 9, 4)
    _expect_cell_shown(app, 4, 9)


def test_dragging_on_the_matrix_neither_pans_nor_zooms(app):
    app.nav("Evaluation")
    before = app.plot_geometry("confusion_chart")
    cell = _samples(app).get_by_text(re.compile(r"test images of class \d predicted as \d"))
    shown = cell.inner_text()
    app.drag_plot("confusion_chart", (2, 2), (6, 7))
    app.page.wait_for_timeout(500)
    after = app.plot_geometry("confusion_chart")
    assert after["x_range"] == pytest.approx(before["x_range"]), (before, after)
    assert after["y_range"] == pytest.approx(before["y_range"]), (before, after)
    assert cell.inner_text() == shown  # a drag is not a click either


# ------------------------------------------------------------------ weights grid
def _grid_columns(app) -> int:
    """Tiles per row of the weights grid, read from the heatmap's width in pixels."""
    width = app.plot("weights_grid").evaluate("(el) => el._fullData[0].z[0].length")
    return (width + 1) // TILE


def _tile_centre(app, unit_on_page: int) -> tuple[float, float]:
    row, col = divmod(unit_on_page, _grid_columns(app))
    return col * TILE + 13.5, row * TILE + 13.5


def _expect_unit(app, unit: int) -> None:
    expect(app.main.locator(".st-key-w_unit input")).to_have_value(str(unit), timeout=WAIT)
    expect(
        app.main.locator(".st-key-unit_in_chart").get_by_text(f"Unit {unit}: incoming weights")
    ).to_be_visible(timeout=WAIT)


def test_clicking_a_weights_tile_selects_that_unit(app):
    app.nav("Weights")
    _expect_unit(app, 0)
    app.click_plot("weights_grid", *_tile_centre(app, 10))
    _expect_unit(app, 10)
    app.click_plot("weights_grid", *_tile_centre(app, 27))
    _expect_unit(app, 27)
    app.screenshot("clicks_weights")


_GRID_DRAWN_JS = """() => Array.from(
  document.querySelectorAll('.st-key-weights_grid .js-plotly-plot')).some((el) => {
    const r = el.getBoundingClientRect();
    return r.height > 100 && el._fullData && el._fullData.length
      && el.querySelector('.heatmaplayer image, .heatmaplayer .hm') !== null; })"""


def test_the_grid_shows_while_training_and_answers_clicks_after(app):
    app.open("e=30")  # long enough to look at the live grid, stopped below
    app.nav("Weights")
    app.button("btn_start").click()
    expect(app.main).to_contain_text("training…", timeout=WAIT)
    # The live grid stays drawn (a clickable chart redrawn twice a second was blank).
    title = app.main.locator(".st-key-weights_grid").get_by_text(re.compile("First layer"))
    expect(title.first).to_be_visible(timeout=WAIT)
    seen = []
    for _ in range(10):
        app.page.wait_for_timeout(400)
        seen.append(app.page.evaluate(_GRID_DRAWN_JS))
    expect(app.main).to_contain_text("training…")
    assert sum(seen) >= 8, seen
    app.button("btn_stop").click()
    expect(app.main).to_contain_text("paused", timeout=WAIT)
    app.settle()
    app.click_plot("weights_grid", *_tile_centre(app, 12))
    _expect_unit(app, 12)


def test_a_unit_beyond_the_first_64_turns_the_page(app):
    app.nav("Weights")
    field = app.main.locator(".st-key-w_unit input")
    field.fill("70")
    field.press("Enter")
    app.settle()
    _expect_unit(app, 70)
    grid = app.main.locator(".st-key-weights_grid")
    expect(grid.get_by_text(re.compile("units 64–127 of 128"))).to_be_visible(timeout=WAIT)
    app.click_plot("weights_grid", *_tile_centre(app, 70 - 64))
    _expect_unit(app, 70)
    app.click_plot("weights_grid", *_tile_centre(app, 100 - 64))
    _expect_unit(app, 100)
