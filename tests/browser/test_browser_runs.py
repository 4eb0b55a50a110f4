"""The Runs page in a real Chromium: two runs with different learning rates compared, then
the learning-rate finder's rate used in the sidebar."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

TINY = "p=fast&h=32&e=1&n=2000&lr=0.1"


def _overlay_done(plots) -> bool:
    """Two runs overlaid, each with its validation point (loss and accuracy per run)."""
    overlay = [p for p in plots if p["key"] == "runs_overlay"]
    return (
        bool(overlay)
        and len(overlay[0]["traces"]) == 4
        and all(len(t["y"]) >= 1 for t in overlay[0]["traces"])
    )


def test_two_runs_compared_then_the_finder_sets_the_learning_rate(page, open_app, screenshot_dir):
    app = open_app(page, TINY)
    progress = app.sidebar.locator("[data-testid=stProgress]")
    app.button("btn_start").click()
    expect(progress).to_contain_text("finished", timeout=90_000)
    # A second run, one step lower on the learning-rate slider.
    app.expand("cfg_epochs")
    thumb = app.widget("cfg_lr").get_by_role("slider")
    expect(thumb).to_have_attribute("aria-valuetext", "0.1")
    thumb.focus()
    page.keyboard.press("ArrowLeft")
    expect(thumb).to_have_attribute("aria-valuetext", "0.03")
    app.settle()
    app.button("btn_start").click()
    app.settle()
    app.nav("Runs")
    app.wait_plots(_overlay_done, timeout=90)
    expect(progress).to_contain_text("finished", timeout=90_000)
    chosen = app.main.locator(".st-key-runs_selected")
    expect(chosen).to_contain_text("run")
    # The settings diff names the learning rate and nothing that is the same.
    diff = app.main.locator(".st-key-runs_diff table")
    expect(diff).to_be_visible()
    lr_row = diff.locator("tr").filter(has=page.locator("th", has_text=re.compile(r"^lr$")))
    expect(lr_row).to_contain_text("0.1")
    expect(lr_row).to_contain_text("0.03")
    assert "epochs" not in diff.inner_text()
    # The x-axis choice: images seen reaches the 1,800 training images (2,000 less 10%).
    app.main.locator(".st-key-runs_x_axis").get_by_text("images seen").click()
    app.settle()
    plots = app.wait_plots(_overlay_done, timeout=30)
    overlay = next(p for p in plots if p["key"] == "runs_overlay")
    assert float(overlay["traces"][1]["x"][-1]) == pytest.approx(1800, rel=0.02)
    app.main.locator(".st-key-runs_overlay").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "runs-compare.png"), full_page=True)

    # The learning-rate finder, then Use this rate.
    app.main.locator(".st-key-btn_find_lr").get_by_role("button").click()
    use = app.main.locator(".st-key-btn_use_lr").get_by_role("button")
    expect(use).to_be_visible(timeout=60_000)
    app.plot("lr_finder_chart")
    expect(app.main).to_contain_text("How it was chosen")
    suggested = float(re.search(r"\(([\d.e+-]+)\)", use.inner_text()).group(1))
    use.click()
    app.settle()
    message = app.main.locator("[data-testid=stAlert]").filter(has_text="learning rate is set to")
    expect(message).to_be_visible()
    chosen_rate = re.search(
        r"set to (?:the nearest choice, )?([\d.e+-]+?)\.?$", message.inner_text()
    )
    value = chosen_rate.group(1)
    app.expand("cfg_epochs")
    expect(thumb).to_have_attribute("aria-valuetext", value)
    assert value != "0.03" or suggested == pytest.approx(0.03, rel=0.5)
    message.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "runs-lr-finder.png"), full_page=True)


def test_a_sweep_from_the_page_then_a_run_downloaded_and_imported(
    page, open_app, screenshot_dir, tmp_path
):
    app = open_app(page, TINY)
    app.nav("Runs")
    grid = app.main.locator(".st-key-sweep_grid input")
    grid.fill("lr=0.01,0.1")
    grid.press("Enter")
    app.settle()
    app.main.locator(".st-key-btn_sweep_start").get_by_role("button").click()
    plots = app.wait_plots(
        lambda ps: any(p["key"] == "sweep_chart" and len(p["traces"][0]["x"]) == 2 for p in ps),
        timeout=90,
    )
    sweep = next(p for p in plots if p["key"] == "sweep_chart")
    assert sweep["traces"][0]["x"] == ["0.01", "0.1"]
    assert all(0 < y <= 100 for y in sweep["traces"][0]["y"])
    expect(app.main).to_contain_text("Sweep ended: 2 of 2 runs done", timeout=30_000)
    expect(app.main.locator(".st-key-runs_selected")).to_contain_text("sweep: lr=")
    app.main.locator(".st-key-sweep_chart").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "runs-sweep.png"), full_page=True)

    # Download the chosen run and import the file again: a third run.
    with page.expect_download() as download:
        app.main.locator(".st-key-btn_run_download").get_by_role("button").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".zip" and saved.stat().st_size > 1000
    uploader = app.main.locator("[class*=st-key-run_import] input[type=file]")
    uploader.set_input_files(str(saved))
    app.settle()
    app.main.locator(".st-key-btn_run_import").get_by_role("button").click()
    app.settle()
    expect(app.main.locator("[data-testid=stAlert]").filter(has_text="Imported")).to_be_visible()
    expect(app.main).to_contain_text("3 runs kept")
    # A foreign file gets one sentence, and the runs stay.
    foreign = tmp_path / "holiday.zip"
    foreign.write_bytes(b"GIF89a not a run")
    expect(app.main.get_by_text(saved.name)).to_have_count(0)  # the uploader was emptied
    uploader.set_input_files(str(foreign))
    app.settle()
    app.main.locator(".st-key-btn_run_import").get_by_role("button").click()
    app.settle()
    error = app.main.locator("[data-testid=stAlert]").filter(has_text="not a digitlab run file")
    expect(error).to_be_visible()
    expect(app.main).to_contain_text("3 runs kept")  # two swept, one imported
    error.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "runs-import-error.png"), full_page=True)
