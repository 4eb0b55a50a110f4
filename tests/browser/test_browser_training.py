"""Train a small network from the sidebar in a real browser, stop it, then visit every page.

The tests of this module share one browser session (one page), in file order: the first
trains and stops a run; the others find that run's model on each page. Each test saves a
full-page screenshot to artifacts/screenshots/.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from ui.charts import MAX_POINTS

pytestmark = pytest.mark.browser

# Small, but long enough to press Stop while it trains: 20,000 images, 784-32-10, batch 128
# (~140 batches an epoch), and 500 epochs that are never reached. The curve is
# thinned to MAX_POINTS points, so growth is read from how far its x axis (epochs) reaches.
SUBSET = "20,000"
UNITS = 32
EPOCHS = 500  # the default cap (DIGITLAB_MAX_EPOCHS)
ARCH = f"784-{UNITS}-10"


@pytest.fixture(scope="module")
def app(browser, browser_context_args, open_app):
    context = browser.new_context(**browser_context_args)
    page = context.new_page()
    try:
        yield open_app(page)
    finally:
        context.close()


def _loss_points(app) -> int:
    plots = app.plots(key="loss_chart")
    return max((len(p["traces"][0]["x"]) for p in plots if p["traces"]), default=0)


def _loss_reach(app) -> float:
    """How far (in epochs) the per-batch loss curve reaches; 0 before it has a point."""
    plots = app.plots(key="loss_chart")
    xs = [float(x) for p in plots if p["traces"] for x in p["traces"][0]["x"]]  # sent as text
    return max(xs, default=0.0)


def _heatmaps(plots):
    return [t for p in plots for t in p["traces"] if t["type"] == "heatmap"]


def test_train_from_sidebar_live_curve_then_stop(app):
    # A small network, set in the sidebar widgets.
    app.select("cfg_subset", SUBSET)
    app.number("cfg_layers", 1)
    expect(app.widget("cfg_h1")).to_have_count(0)
    app.number("cfg_h0", UNITS)
    app.expand("cfg_epochs")
    app.number("cfg_epochs", EPOCHS)
    expect(app.widget("cfg_preset").locator("input")).to_have_value("Custom")
    expect(app.sidebar).to_contain_text("No training yet")

    app.button("btn_start").click()
    expect(app.button("btn_stop")).to_be_enabled()
    expect(app.sidebar.locator("[data-testid=stProgress]")).to_contain_text("training")

    # The loss curve grows while the network trains.
    deadline = time.monotonic() + 30
    first = 0.0
    while first == 0 and time.monotonic() < deadline:
        first = _loss_reach(app)
        time.sleep(0.2)
    assert first > 0, "the loss chart never showed a point"
    later = first
    while later <= first and time.monotonic() < deadline:
        time.sleep(0.5)
        later = _loss_reach(app)
    assert later > first, f"the loss curve did not grow while training (stuck at {first})"
    points = _loss_points(app)
    expect(app.main.locator(".st-key-loss_chart .js-plotly-plot").first).to_be_visible()
    app.page.screenshot(path=str(app.screenshot_dir / "01-training-live.png"))
    assert "training" in app.status_text(), (
        f"training ended before Stop could be pressed: {app.status_text()!r}"
    )

    # Stop in the sidebar (the header has its own Stop while a script runs).
    app.button("btn_stop").click()
    expect(app.sidebar.locator("[data-testid=stProgress]")).to_contain_text("stopped")
    expect(app.button("btn_start")).to_be_enabled()
    expect(app.button("btn_stop")).to_be_disabled()
    app.settle()
    # The model so far is kept: the curve stays, reaching at least as far as seen.
    assert _loss_points(app) >= min(points, MAX_POINTS) and _loss_reach(app) >= later
    status = app.status_text()
    epoch = float(re.search(r"epoch ([\d.]+)", status).group(1))
    assert 0 < epoch < EPOCHS, status
    # And it stays stopped: the curve reaches no further.
    reach = _loss_reach(app)
    time.sleep(1.5)
    assert _loss_reach(app) == reach
    app.screenshot("01-training")


def _expect_run_model(app):
    """The page shows this session's (stopped) run, not the starter model."""
    expect(app.main).to_contain_text(f"the network trained in this session ({ARCH})")
    expect(app.main).to_contain_text("paused")


def test_weights_page_shows_weight_images(app):
    app.nav("Weights")
    _expect_run_model(app)
    plots = app.wait_plots(lambda plots: any(p["key"] == "weights_grid" for p in plots))
    grid = next(p for p in plots if p["key"] == "weights_grid")
    heat = _heatmaps([grid])
    assert heat, grid
    # 32 tiles of 28x28 in a 6x6 grid, 1 px apart.
    assert heat[0]["z_rows"] >= 28 and heat[0]["z_cols"] >= 28, heat[0]
    assert heat[0]["z_rows"] == 6 * 29 - 1 and heat[0]["z_cols"] == 6 * 29 - 1, heat[0]
    # The selected unit's own 28x28 image.
    unit = app.wait_plots(lambda plots: any(p["key"] == "unit_in_chart" for p in plots))
    unit_heat = _heatmaps([p for p in unit if p["key"] == "unit_in_chart"])
    assert (unit_heat[0]["z_rows"], unit_heat[0]["z_cols"]) == (28, 28)
    expect(app.main.locator(".js-plotly-plot").first).to_be_visible()
    app.screenshot("02-weights")


def test_evaluation_page_shows_confusion_matrix(app):
    app.nav("Evaluation")
    _expect_run_model(app)
    expect(
        app.main.locator("[data-testid=stMetric]").filter(has_text="Test accuracy")
    ).to_be_visible()
    plots = app.wait_plots(lambda plots: any(p["key"] == "confusion_chart" for p in plots))
    matrix = _heatmaps([p for p in plots if p["key"] == "confusion_chart"])
    assert matrix, plots
    assert (matrix[0]["z_rows"], matrix[0]["z_cols"]) == (10, 10), matrix[0]
    assert matrix[0]["x"] == [str(d) for d in range(10)]
    app.screenshot("03-evaluation")


def test_mistakes_page_shows_labelled_images(app):
    app.nav("Mistakes")
    _expect_run_model(app)
    expect(app.main).to_contain_text(re.compile(r"\d+ mistakes \(of 10,000 test images\)"))
    images = app.main.locator("[data-testid=stImage] img")
    expect(images.first).to_be_visible()
    assert images.count() >= 4
    labels = app.main.get_by_text(re.compile(r"true \d → predicted \d"))
    expect(labels.first).to_be_visible()
    assert labels.count() == images.count()
    for text in labels.all_inner_texts():
        true, pred = re.search(r"true (\d) → predicted (\d)", text).groups()
        assert true != pred, text
    bars = app.wait_plots(
        lambda plots: any((p["key"] or "").startswith("mistake_probs") for p in plots)
    )
    assert all(
        len(p["traces"][0]["x"]) == 10 for p in bars if (p["key"] or "").startswith("mistake_probs")
    )
    app.screenshot("04-mistakes")


def test_draw_page_predicts_with_trained_model(app):
    app.nav("Draw")
    model = app.main.locator(".st-key-draw_model")
    expect(model.get_by_role("radio", name="the network trained in this session")).to_be_checked()
    expect(app.main).to_contain_text("Prediction: –")
    app.draw_vertical_stroke()
    app.prediction()
    app.screenshot("05-draw")


def test_models_page_offers_download(app):
    app.nav("Models")
    expect(app.main).to_contain_text(f"The network trained in this session: {ARCH}")
    download = app.main.locator(".st-key-download_model").get_by_role("button")
    expect(download.first).to_be_visible()
    expect(download.first).to_contain_text("Download model")
    with app.page.expect_download() as info:
        download.first.click()
    assert info.value.suggested_filename == f"digitlab-{ARCH}.npz"
    app.screenshot("06-models")
