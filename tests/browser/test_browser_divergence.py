"""A run that diverges, set up in the sidebar as a person would, in a real Chromium.

Plain SGD with momentum at a learning rate of 3 on 2,000 images blows up within a few
batches. The person must see a plain-words "diverged" with the fix, not a green test
accuracy, and the Weights page's replay must still draw with a finite colour scale.
"""

from __future__ import annotations

import math
import re
import time

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

_COLOURBAR_JS = """
(el) => { const t = el._fullData.find((d) => d.type === 'heatmap');
  return t ? {ticks: Array.from(t.colorbar.ticktext || []),
              rows: t.z ? t.z.length : 0} : null; }
"""


def _drag_slider_to_the_end(app, key: str) -> None:
    """Drag the sidebar slider ``key``'s thumb to the right end of its track."""
    app.expand(key)
    slider = app.widget(key)
    thumb = slider.get_by_role("slider")
    box = thumb.bounding_box()
    track = slider.locator("[data-testid=stSliderTickBar]").bounding_box()
    app.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    app.page.mouse.down()
    right = (track["x"] + track["width"] + 40) if track else box["x"] + 400
    for i in range(1, 16):
        app.page.mouse.move(box["x"] + (right - box["x"]) * i / 15, box["y"] + box["height"] / 2)
    app.page.mouse.up()
    app.settle()


def _wait_status(app, word: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = app.status_text()
        if status.startswith(word):
            return status
        time.sleep(0.3)
    raise AssertionError(f"the status never read {word!r}; last: {status!r}")


def test_a_diverging_run_says_so_with_the_fix_and_shows_no_accuracy(page, open_app):
    app = open_app(page)
    app.select("cfg_subset", "2,000")
    app.expand("cfg_optimizer")
    app.select("cfg_optimizer", "sgd")
    _drag_slider_to_the_end(app, "cfg_lr")
    expect(app.widget("cfg_lr").get_by_role("slider")).to_have_attribute("aria-valuetext", "3")

    app.button("btn_start").click()
    status = _wait_status(app, "diverged")
    app.settle()
    assert re.fullmatch(r"diverged in epoch 1, batch \d+", status.strip()), status

    error = app.main.locator("[data-testid=stAlertContentError]")
    expect(error).to_contain_text("Training diverged: the loss rose from")
    text = error.inner_text()
    assert "learning rate 3 is too large" in text and "lower it, e.g. to 0.05" in text, text
    assert "initial weights" in text, text
    expect(app.sidebar.locator("[data-testid=stAlertContentError]")).to_contain_text(
        "lower the learning rate, e.g. to 0.05"
    )
    expect(app.main.locator("[data-testid=stAlertContentSuccess]")).to_have_count(0)
    expect(app.main).not_to_contain_text("Test accuracy")
    app.screenshot("divergence-training")

    # The Weights page draws the kept weights with a finite colour scale, now and replayed.
    app.nav("Weights")
    expect(app.main).to_contain_text("epoch 0 of 3, diverged")
    grid = app.plot("weights_grid")
    expect(grid).to_be_visible()
    for choice in ("now", "epoch 0"):
        replay = app.main.locator("[data-testid=stSlider]").filter(has_text="Replay")
        if choice == "epoch 0":
            replay.get_by_role("slider").focus()
            app.page.keyboard.press("Home")
            app.settle()
            expect(app.main).to_contain_text("epoch 0")
        seen = app.plot("weights_grid").evaluate(_COLOURBAR_JS)
        assert seen and seen["rows"] > 0, seen
        limits = [float(t.replace("−", "-")) for t in seen["ticks"]]
        assert limits and all(math.isfinite(v) for v in limits), seen["ticks"]
        assert max(abs(v) for v in limits) < 10, seen["ticks"]
    app.screenshot("divergence-weights")
