"""The Training page's loss and accuracy curves as a person sees them: with the fixed margins
that keep live redraws cheap (``ui.charts.CURVE_MARGIN``), the legend must still sit whole
inside each chart, below the axis title, on a desktop and on a phone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from nn_core import TrainConfig
from nn_core.settings import TRAIN_SUBSET
from tests.browser.conftest import PHONE
from ui import share
from ui import state as keys
from ui.limits import get_limits

pytestmark = pytest.mark.browser

CHARTS = ("loss_chart", "accuracy_chart")

# Boxes of one chart's figure, legend, legend entries, x-axis title and x tick labels.
BOXES_JS = """(el) => {
  const box = (node) => { const b = node.getBoundingClientRect();
    return {top: b.top, bottom: b.bottom, left: b.left, right: b.right}; };
  const plot = el.querySelector('.js-plotly-plot');
  return {figure: box(plot), legend: box(plot.querySelector('.legend')),
          entries: Array.from(plot.querySelectorAll('.legend .traces')).map(box),
          xtitle: box(plot.querySelector('.xtitle')),
          xticks: box(plot.querySelector('.xaxislayer-above'))};
}"""


def _small_run_link() -> str:
    """A share link for a run of a few seconds: 2,000 images, 784-16-10, 2 epochs."""
    values = keys.widget_values(TrainConfig(hidden=(16,), epochs=2), get_limits())
    values.update(cfg_preset="custom", cfg_subset=TRAIN_SUBSET.choices[1])
    return share.query_string(values)


def _check_legends(app, where: str) -> None:
    for key in CHARTS:
        chart = app.main.locator(f".st-key-{key}")
        chart.scroll_into_view_if_needed()
        expect(chart.locator(".legend .traces")).to_have_count(3)
        b = chart.evaluate(BOXES_JS)
        figure, legend, title = b["figure"], b["legend"], b["xtitle"]
        for entry in b["entries"]:  # per batch, per epoch, validation: none cut off
            assert figure["top"] <= entry["top"] and entry["bottom"] <= figure["bottom"], (
                f"{key} legend entry cut off on a {where}: {b}"
            )
            assert figure["left"] <= entry["left"] and entry["right"] <= figure["right"], b
        assert legend["top"] >= title["bottom"] - 1, f"{key} legend over the axis title: {b}"
        assert title["top"] >= b["xticks"]["bottom"] - 1, f"{key} title over the ticks: {b}"


def test_the_curves_legends_fit_on_a_desktop_and_on_a_phone(
    browser, browser_context_args, open_app
):
    context = browser.new_context(**browser_context_args)
    try:
        app = open_app(context.new_page(), _small_run_link())
        app.button("btn_start").click()
        expect(app.sidebar.locator("[data-testid=stProgress]")).to_contain_text(
            "finished", timeout=120_000
        )
        app.settle()
        _check_legends(app, "desktop")
        app.page.screenshot(path=str(app.screenshot_dir / "curves_desktop.png"))

        app.page.set_viewport_size(PHONE)
        app.settle()
        phone_width = app.main.locator(".st-key-loss_chart .js-plotly-plot").bounding_box()
        assert phone_width["width"] < PHONE["width"], phone_width  # redrawn at phone width
        _check_legends(app, "phone")
        app.main.locator(".st-key-loss_chart").scroll_into_view_if_needed()
        app.page.screenshot(path=str(app.screenshot_dir / "curves_phone.png"))
    finally:
        context.close()
