"""The live loss and accuracy curves as Chromium draws them: with the fixed margins that
keep redraws cheap, the legend must still fit, at desktop and at phone width."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import plotly
import pytest

from ui import charts

pytestmark = pytest.mark.browser

PLOTLY_JS = Path(plotly.__path__[0]) / "package_data" / "plotly.min.js"

BOXES_JS = """() => {
  const box = (sel) => { const b = document.querySelector(sel).getBoundingClientRect();
    return {top: b.top, bottom: b.bottom, left: b.left, right: b.right}; };
  const entries = Array.from(document.querySelectorAll('.legend .traces'))
    .map((t) => t.getBoundingClientRect().bottom);
  return {svg: box('.main-svg'), legend: box('.legend'), xtitle: box('.xtitle'),
          xticks: box('.xaxislayer-above'), entries};
}"""


def _history(n_batches: int = 3000, epochs: int = 8) -> SimpleNamespace:
    t = np.linspace(0, epochs, n_batches)
    e = np.arange(1, epochs + 1, dtype=float)
    return SimpleNamespace(
        batch_progress=t,
        batch_loss=2.3 * np.exp(-t),
        batch_accuracy=1 - 0.9 * np.exp(-t),
        epoch=e,
        train_loss=2.3 * np.exp(-e),
        val_loss=2.3 * np.exp(-e) + 0.05,
        train_accuracy=1 - 0.9 * np.exp(-e),
        val_accuracy=0.97 - 0.9 * np.exp(-e),
    )


@pytest.mark.parametrize("metric", ["loss", "accuracy"])
@pytest.mark.parametrize("width", [300, 342, 700])  # 342: a 390 px phone's main column
def test_the_curves_legend_fits_below_the_axis_title(browser, screenshot_dir, metric, width):
    figure = charts.curve_figure(_history(), metric)
    html = figure.to_html(include_plotlyjs=False, full_html=True, default_width=f"{width}px")
    page = browser.new_page(viewport={"width": width + 40, "height": 600})
    try:
        page.set_content(html.replace("<head>", f"<head><script>{PLOTLY_JS.read_text()}</script>"))
        page.wait_for_selector(".legend .traces")
        boxes = page.evaluate(BOXES_JS)
        page.screenshot(path=str(screenshot_dir / f"curves_{metric}_{width}px.png"))
    finally:
        page.close()
    svg, legend, xtitle = boxes["svg"], boxes["legend"], boxes["xtitle"]
    assert len(boxes["entries"]) == 3, boxes  # per batch, per epoch, validation
    assert legend["bottom"] <= svg["bottom"], f"legend cut off at {width} px: {boxes}"
    assert max(boxes["entries"]) <= svg["bottom"], boxes
    assert legend["top"] >= xtitle["bottom"], f"legend over the axis title: {boxes}"
    assert xtitle["top"] >= boxes["xticks"]["bottom"] - 1, f"title over the ticks: {boxes}"
    assert svg["left"] <= legend["left"] and legend["right"] <= svg["right"], boxes
