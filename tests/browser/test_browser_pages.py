"""Evaluation, Weights, Mistakes and Models as a person sees them, in a real Chromium.

- messages say what is the case now (a rejected data upload, a model file that is gone);
- the Weights grid sits near the top with tiles large enough to read, on a desktop window
  and on a phone; the Mistakes probabilities are readable.

The pages show the starter model shipped with the app (784-128-64-10, MNIST).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE

WAIT = 45_000  # ms: a rerun and a redraw on a busy two-core machine
STARTER = Path(__file__).resolve().parents[2] / "assets" / "starter_model.npz"
STARTER_LABEL = "the starter model shipped with the app (784-128-64-10)"
TILE = 28 + 1  # a 28x28 weight tile and the 1-pixel gap after it (ui.charts.GAP)


@pytest.fixture()
def app(page, open_app):
    return open_app(page)


def _file(name: str, data: bytes) -> dict:
    return {"name": name, "mimeType": "application/octet-stream", "buffer": data}


# ------------------------------------------------------------------ messages
def test_after_a_rejected_data_upload_evaluation_says_what_it_shows(app):
    app.sidebar.get_by_text("Upload a file", exact=True).click()
    app.settle()
    app.sidebar.locator("input[type=file]").set_input_files(
        _file("notes.csv", b"this is,not\na data,set\n")
    )
    expect(app.sidebar.locator("[data-testid=stAlertContentError]")).to_contain_text(
        "notes.csv", timeout=WAIT
    )
    for title in ("Evaluation", "Mistakes"):
        app.nav(title)
        expect(app.main.get_by_text("does not fit")).to_have_count(0)
        expect(app.main).to_contain_text(
            f"The uploaded data set could not be read, so this is {STARTER_LABEL} "
            "on MNIST's test set.",
            timeout=WAIT,
        )
    expect(app.main).to_contain_text("mistakes (of 10,000 test images)")
    app.nav("Evaluation")
    expect(app.main.locator("[data-testid=stMetric]")).to_contain_text("97.15%")
    app.screenshot("pages_evaluation_after_bad_upload")


def _model_upload(app):
    return app.main.locator(".st-key-model_upload")


def _errors(app):
    return app.main.locator("[data-testid=stAlertContentError]")


def _remove_file(app) -> None:
    """Click the uploader's x beside its file."""
    _model_upload(app).locator("[data-testid=stFileChipDeleteBtn]").first.click()
    app.settle()
    expect(_model_upload(app).locator("[data-testid=stFileChip]")).to_have_count(0, timeout=WAIT)


def test_a_model_upload_message_names_only_the_file_now_in_the_uploader(app):
    app.nav("Models")
    uploader = _model_upload(app).locator("input[type=file]")
    uploader.set_input_files(_file("broken.npz", b"not a zip at all"))
    expect(_errors(app)).to_contain_text("broken.npz", timeout=WAIT)
    _remove_file(app)  # the file has gone: so has what was said about it
    expect(_errors(app)).to_have_count(0, timeout=WAIT)

    uploader.set_input_files(_file("good.npz", STARTER.read_bytes()))
    expect(app.main).to_contain_text("Using the model from good.npz", timeout=WAIT)
    expect(_errors(app)).to_have_count(0)

    uploader.set_input_files(_file("other.npz", b"PK\x03\x04 still not a model"))
    expect(_errors(app)).to_contain_text("other.npz", timeout=WAIT)
    expect(_errors(app)).not_to_contain_text("broken.npz")
    expect(app.main).to_contain_text("Still using the model from good.npz")

    _remove_file(app)  # nothing is wrong any more, and the good model is still in use
    expect(_errors(app)).to_have_count(0, timeout=WAIT)
    expect(app.main).to_contain_text("Using the model from good.npz")


def test_a_model_upload_error_stays_with_its_own_uploader(app):
    app.nav("Models")
    _model_upload(app).locator("input[type=file]").set_input_files(
        _file("broken.npz", b"not a zip at all")
    )
    expect(_errors(app)).to_contain_text("broken.npz", timeout=WAIT)
    app.nav("Draw")
    app.main.get_by_text("Upload a model file to draw against").click()
    expect(app.main.locator(".st-key-draw_model_upload")).to_be_visible(timeout=WAIT)
    expect(app.main.get_by_text("broken.npz")).to_have_count(0)


# ------------------------------------------------------------------ layout
def _grid_layout(app) -> dict:
    """The weights grid's plot area (page pixels), its figure's height, and tile size."""
    grid = app.plot_geometry("weights_grid")
    figure = app.plot("weights_grid").bounding_box()
    tile = grid["width"] * (TILE - 1) / (grid["x_range"][1] - grid["x_range"][0])
    return {**grid, "figure_top": figure["y"], "figure_height": figure["height"], "tile": tile}


def test_the_weights_grid_is_near_the_top_with_readable_tiles(app):
    app.nav("Weights")
    layout = _grid_layout(app)
    shown = app.plot("weights_grid").evaluate("(el) => el._fullData[0].z[0].length")
    columns = (shown + 1) // TILE
    print(f"desktop 1400x1000: grid top {layout['top']:.0f} px, tile {layout['tile']:.1f} px")
    assert layout["tile"] >= 50, layout
    assert layout["top"] + 2 * layout["tile"] < 1000, layout  # two rows in the first screen
    assert columns == 8, columns  # 64 of the starter's 128 units: an 8x8 page
    # Little blank space: the tiles fill most of the figure's height.
    assert layout["height"] >= 0.8 * layout["figure_height"], layout
    app.screenshot("pages_weights")


def test_the_weights_grid_on_a_phone(browser, browser_context_args, open_app):
    context = browser.new_context(**{**browser_context_args, "viewport": PHONE})
    try:
        app = open_app(context.new_page(), path="weights", sidebar=False)
        layout = _grid_layout(app)
        print(f"phone 390x844: grid top {layout['top']:.0f} px, tile {layout['tile']:.1f} px")
        assert layout["top"] + layout["tile"] < PHONE["height"], layout
        assert layout["tile"] >= 40, layout
        assert layout["height"] >= 0.6 * layout["figure_height"], layout
        app.page.screenshot(path=str(app.screenshot_dir / "pages_weights_phone.png"))
    finally:
        context.close()


def test_on_a_phone_the_sidebar_closes_after_a_page_is_chosen(
    browser, browser_context_args, playwright, open_app
):
    """A phone (its user agent, not only a narrow window: Streamlit decides by the agent)
    opens the sidebar, picks a page, and then reads that page, not the sidebar over it."""
    phone = {**browser_context_args, **playwright.devices["Pixel 5"]}
    context = browser.new_context(**phone)
    try:
        app = open_app(context.new_page(), sidebar=False)
        expect(app.button("btn_start")).not_to_be_in_viewport()  # starts collapsed
        app.page.get_by_test_id("stExpandSidebarButton").click()
        expect(app.button("btn_start")).to_be_in_viewport()
        app.sidebar.get_by_test_id("stSidebarNav").get_by_text("Weights").click()
        expect(app.main.get_by_role("heading", name="Weights")).to_be_in_viewport()
        expect(app.button("btn_start")).not_to_be_in_viewport()
        app.settle()
        expect(app.main.locator(".st-key-weights_grid .js-plotly-plot")).to_be_visible()
        app.page.screenshot(path=str(app.screenshot_dir / "pages_phone_after_nav.png"))
    finally:
        context.close()


_LABELS_JS = """
(el) => Array.from(el.querySelectorAll('text.bartext, .ytick text, .xtick text'))
  .filter((t) => t.textContent.trim())
  .map((t) => { const b = t.getBoundingClientRect();
    return {text: t.textContent, kind: t.classList.contains('bartext') ? 'bar' : 'tick',
            size: parseFloat(getComputedStyle(t).fontSize), height: b.height,
            left: b.left, right: b.right, top: b.top, bottom: b.bottom}; })
"""


def _overlap(a: dict, b: dict) -> bool:
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and (b["top"] < a["bottom"])
    )


def test_mistakes_probability_labels_are_readable(app):
    app.nav("Mistakes")
    for card in range(4):
        labels = app.plot(f"mistake_probs_{card}").evaluate(_LABELS_JS)
        bars = [t for t in labels if t["kind"] == "bar"]
        assert bars and any(t["text"].endswith("%") for t in bars), labels
        for label in labels:
            assert label["size"] >= 14 and label["height"] >= 12, label
        for i, a in enumerate(bars):
            assert not any(_overlap(a, b) for b in bars[i + 1 :]), bars
    app.screenshot("pages_mistakes")


def test_a_data_set_the_model_cannot_read_is_named_with_its_sizes(app):
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        x_train=rng.integers(0, 256, (300, 8, 8), dtype=np.uint8),
        y_train=np.arange(300) % 10,
    )
    app.sidebar.get_by_text("Upload a file", exact=True).click()
    app.settle()
    app.sidebar.locator("input[type=file]").set_input_files(_file("small.npz", buffer.getvalue()))
    expect(app.sidebar).to_contain_text("training and", timeout=WAIT)  # the upload was read
    app.nav("Evaluation")
    warning = app.main.locator("[data-testid=stAlertContentWarning]")
    expect(warning).to_contain_text("takes 784-pixel images and 10 classes", timeout=WAIT)
    expect(warning).to_contain_text("8x8 images (64 pixels) and 10 classes")
