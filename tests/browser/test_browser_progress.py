"""The progress text and the first points of the curves, in a real Chromium.

What a person saw before: the notebook preset read "batch 0/1" after a Step, a finished
run read "batch 0/422", two different epoch counts stood side by side, and after the
first Step the loss chart looked empty (one point on a line draws nothing).
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

NOTEBOOK = "Notebook (784-10-10, gradient descent)"

# Drawn markers of the per-batch loss trace: the SVG paths Plotly draws for its points.
_MARKERS_JS = """
(el) => Array.from(el.querySelectorAll('.scatterlayer .trace:first-child .points path'))
  .map((p) => p.getBoundingClientRect())
  .filter((r) => r.width > 2 && r.height > 2).length
"""


def _wait_status(app, pattern: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = app.status_text().strip()
        if re.search(pattern, status):
            return status
        time.sleep(0.3)
    raise AssertionError(f"the status never matched {pattern!r}; last: {status!r}")


def _sidebar_progress(app) -> str:
    """The text of the sidebar's progress panel (bar, counts, messages)."""
    return app.sidebar.locator("[data-testid=stProgress]").first.locator("xpath=..").inner_text()


def _visible_loss_markers(app) -> int:
    chart = app.plot("loss_chart")
    expect(chart).to_be_visible()
    return chart.evaluate(_MARKERS_JS)


def test_one_step_of_the_notebook_preset_reads_epoch_1_and_shows_its_point(page, open_app):
    app = open_app(page)
    app.select("cfg_preset", NOTEBOOK)
    app.select("cfg_subset", "2,000")
    app.button("btn_step").click()
    status = _wait_status(app, r"^stopped: ")
    assert status == "stopped: epoch 1 of 500 (full batch)", status
    assert "batch 0" not in _sidebar_progress(app)
    deadline = time.monotonic() + 20
    while _visible_loss_markers(app) < 1 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert _visible_loss_markers(app) >= 1, "the first step's loss is not drawn"
    app.screenshot("progress-notebook-one-step")

    app.button("btn_start").click()
    status = _wait_status(app, r"^finished: ", timeout=300)
    assert status == "finished: epoch 500 of 500 (full batch)", status
    panel = _sidebar_progress(app)
    assert len(re.findall(r"(?i)epoch", panel)) == 1, panel  # one count of epochs, not two
    expect(app.main.get_by_text("Learning rate (last step)")).to_be_visible()
    app.screenshot("progress-notebook-finished")


def test_a_finished_minibatch_run_reads_its_last_batch_not_batch_0(page, open_app):
    app = open_app(page)  # the Fast preset: 3 epochs of batches of 128
    app.select("cfg_subset", "2,000")
    app.button("btn_step").click()
    status = _wait_status(app, r"^stopped: ")
    assert re.fullmatch(r"stopped: epoch 1 of 3, batch 1 of (\d+)", status), status
    assert _visible_loss_markers(app) >= 1, "the first step's loss is not drawn"

    app.button("btn_start").click()
    status = _wait_status(app, r"^finished: ")
    done = re.fullmatch(r"finished: epoch (\d+) of (\d+), batch (\d+) of (\d+)", status)
    assert done, status
    epoch, epochs, batch, batches = map(int, done.groups())
    assert (epoch, batch) == (epochs, batches) == (3, batches), status
    assert batches == -(-1800 // 128)  # 2,000 images less the 10% validation split
    panel = _sidebar_progress(app)
    assert len(re.findall(r"(?i)epoch", panel)) == 1, panel
    app.screenshot("progress-fast-finished")
    # Another page names the same epoch as the sidebar (it once read "215.00" beside "200").
    app.nav("Weights")
    expect(app.main).to_contain_text("epoch 3 of 3, finished")
    assert app.status_text().strip() == status


def test_the_end_of_a_cosine_schedule_reads_as_about_zero(page, open_app):
    # The Accurate preset's cosine takes the rate from 0.002 to 3e-10 in the last of its
    # 225 steps here (1e-10 on all of MNIST): "9.6e-11" read like a setting.
    app = open_app(page)
    app.select("cfg_preset", "Accurate")
    app.select("cfg_subset", "2,000")
    app.button("btn_start").click()
    _wait_status(app, r"^finished: ", timeout=300)
    metric = app.main.locator("[data-testid=stMetric]").filter(has_text="Learning rate")
    expect(metric).to_contain_text("Learning rate (last step)")
    expect(metric.locator("[data-testid=stMetricValue]")).to_have_text("≈ 0")
    app.screenshot("progress-cosine-finished")
