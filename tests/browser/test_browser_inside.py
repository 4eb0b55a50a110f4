"""The Inside page in a real browser: draw a digit, follow it through the network, make it
another digit; upload images, good and bad.

The tests share one browser page, in file order, and use the starter model (no training
needed). Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(browser, browser_context_args, open_app):
    context = browser.new_context(**browser_context_args)
    page = context.new_page()
    try:
        yield open_app(page)
    finally:
        context.close()


def _go(app, title: str) -> None:
    """Open a page from the sidebar navigation (the URL may carry the settings as a query)."""
    app.sidebar.locator("[data-testid=stSidebarNav] a").filter(has_text=title).click()
    expect(app.main.get_by_role("heading", name=title, exact=True)).to_be_visible()
    app.settle()


def _bars(plots, key):
    return [p["traces"][0] for p in plots if p["key"] == key and p["traces"]]


def _source(app, label: str) -> None:
    app.main.locator(".st-key-inside_source").get_by_text(label, exact=True).click()
    app.settle()


def _upload(app, tmp_path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    app.main.locator(".st-key-inside_upload input[type=file]").set_input_files(str(path))
    app.settle()


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_drawn_digit_is_explained_inside(app):
    _go(app, "Draw")
    app.draw_vertical_stroke()
    drawn = app.prediction()

    _go(app, "Inside")
    expect(app.main.locator(".st-key-inside_source input[type=radio]").first).to_be_checked()
    heading = app.main.get_by_text(re.compile(r"Prediction: \d \(\d+%\)"))
    expect(heading).to_be_visible()
    assert int(re.search(r"Prediction: (\d)", heading.inner_text()).group(1)) == drawn

    def ready(plots):
        return (
            _bars(plots, "inside_layer_0")
            and _bars(plots, "inside_contrib")
            and len(next((p["traces"] for p in plots if p["key"] == "inside_saliency"), [])) == 2
        )

    plots = app.wait_plots(ready)
    layer = _bars(plots, "inside_layer_0")[0]
    assert layer["type"] == "bar" and len(layer["x"]) >= 1
    assert all(x.startswith("u") for x in layer["x"]), layer["x"]
    digit, heat = next(p["traces"] for p in plots if p["key"] == "inside_saliency")
    assert (digit["type"], heat["type"]) == ("heatmap", "heatmap")
    assert (digit["z_rows"], digit["z_cols"]) == (28, 28) == (heat["z_rows"], heat["z_cols"])
    app.screenshot("inside_drawing")


def test_the_saliency_method_changes_the_overlay(app):
    app.main.locator(".st-key-inside_method").get_by_text("Occlusion", exact=True).click()
    app.settle()
    expect(app.main.get_by_text(re.compile(r"is blacked out"))).to_be_visible()
    plots = app.wait_plots(
        lambda ps: any(p["key"] == "inside_saliency" and len(p["traces"]) == 2 for p in ps)
    )
    assert plots


def test_make_it_the_runner_up(app):
    box = app.main.locator("[class*=st-key-inside_target_] input[role=combobox]")
    runner_up = re.search(r"^(\d) \(the runner-up\)$", box.input_value()).group(1)
    button = app.main.locator(".st-key-inside_cf_go button")
    expect(button).to_have_text(f"Find the smallest change to make it a {runner_up}")
    button.click()
    reached = app.main.get_by_text(re.compile(r"Reached: the network now says \d"))
    expect(reached).to_be_visible(timeout=30_000)
    assert f"now says {runner_up} (" in reached.inner_text()
    app.settle()
    plots = app.wait_plots(lambda ps: any(p["key"] == "inside_cf_path" for p in ps))
    path = next(p for p in plots if p["key"] == "inside_cf_path")["traces"]
    assert len(path) == 10
    target_line = path[int(runner_up)]["y"]
    assert target_line[-1] >= 0.5 > target_line[0], target_line
    expect(app.main.get_by_text("after: " + runner_up, exact=True)).to_be_visible()
    app.screenshot("inside_counterfactual")


def test_an_uploaded_digit_is_explained(app, tmp_path):
    _source(app, "Upload a PNG or JPG")
    expect(app.main.get_by_text("Upload a PNG or JPG of one digit, dark on light")).to_be_visible()
    page = np.full((120, 120), 240, np.uint8)
    page[20:100, 55:65] = 10  # a dark "1" on a light page
    _upload(app, tmp_path, "one.png", _png(page))
    expect(app.main.get_by_text("Showing your upload “one.png”.")).to_be_visible()
    app.wait_plots(lambda ps: bool(_bars(ps, "inside_layer_0")))


def test_an_upload_that_is_not_an_image_gets_one_sentence(app, tmp_path):
    _upload(app, tmp_path, "notes.png", b"these are my notes, not a picture")
    expect(
        app.main.get_by_text(
            "“notes.png” is not an image this page can read: upload a PNG or JPG of one digit."
        )
    ).to_be_visible()
    expect(app.main.locator(".st-key-inside_layer_0")).to_have_count(0)


def test_a_huge_image_is_refused_from_its_header(app, tmp_path):
    bomb = _png(np.zeros((4200, 4200), np.uint8))  # 17.6 megapixels in a few kB
    _upload(app, tmp_path, "huge.png", bomb)
    expect(
        app.main.get_by_text(re.compile(r"“huge\.png” is 4,200 x 4,200 pixels, over this page"))
    ).to_be_visible()
    app.screenshot("inside_bad_upload")


def test_an_empty_drawing_gets_one_sentence(app):
    _go(app, "Draw")
    app.main.locator(".st-key-draw_clear button").click()
    app.settle()
    _go(app, "Inside")
    _source(app, "My drawing (Draw page)")
    expect(
        app.main.get_by_text(
            "The drawing on the Draw page is empty: draw a digit there, then come back."
        )
    ).to_be_visible()


def _explained_from(app, page: str, true: str, predicted: str) -> None:
    """The Inside page now shows a test image of class ``true`` predicted as ``predicted``,
    sent by ``page``: its label, the network's answer, the layers and the saliency."""
    expect(app.main.get_by_role("heading", name="Inside", exact=True)).to_be_visible()
    shown = app.main.get_by_text(
        re.compile(
            rf"^Showing test image #\d+, a {true} predicted as {predicted} \(from {page}\)\.$"
        )
    )
    expect(shown).to_be_visible()
    heading = app.main.get_by_text(re.compile(r"Prediction: \d \(\d+%\)"))
    expect(heading).to_contain_text(f"Prediction: {predicted} (")
    app.wait_plots(
        lambda ps: (
            bool(_bars(ps, "inside_layer_0"))
            and any(p["key"] == "inside_saliency" and len(p["traces"]) == 2 for p in ps)
        )
    )


def test_a_mistake_clicked_on_the_mistakes_page_is_explained(app):
    _go(app, "Mistakes")
    # The first card's text and its button come first on the page.
    first_card = app.main.get_by_text(re.compile(r"^true \d → predicted \d")).first
    pair = re.search(r"true (\d) → predicted (\d)", first_card.inner_text())
    assert pair, first_card.inner_text()
    app.main.get_by_role("button", name="Look inside").first.click()
    app.settle()
    _explained_from(app, "Mistakes", *pair.groups())
    app.screenshot("inside_mistake")


def test_a_sample_of_a_confusion_cell_is_explained(app):
    _go(app, "Evaluation")
    true = app.main.locator(".st-key-cm_true input[role=combobox]").input_value()
    predicted = app.main.locator(".st-key-cm_pred input[role=combobox]").input_value()
    app.main.locator(".st-key-cm_inside_go button").click()
    app.settle()
    _explained_from(app, "Evaluation", true, predicted)


def _probabilities(app) -> list[float]:
    bars = _bars(app.plots(key="inside_probs"), "inside_probs")
    return bars[0]["y"] if bars else []


def test_the_view_follows_the_network_while_it_trains(app):
    # A run long enough to watch: 784-32-10 on 20,000 images, epochs far beyond reach.
    app.select("cfg_subset", "20,000")
    app.number("cfg_layers", 1)
    app.number("cfg_h0", 32)
    app.expand("cfg_epochs")
    app.number("cfg_epochs", 500)
    _source(app, "A test image")
    app.button("btn_start").click()
    expect(
        app.main.get_by_text(re.compile(r"Showing the network trained in this session"))
    ).to_be_visible(timeout=30_000)
    try:
        plots = app.wait_plots(lambda ps: bool(_bars(ps, "inside_probs")), key="inside_probs")
        first = _bars(plots, "inside_probs")[0]["y"]
        later, deadline = first, time.monotonic() + 30
        while later == first and time.monotonic() < deadline:
            time.sleep(0.5)
            later = _probabilities(app) or first
        assert later != first, "the probabilities never changed while the network trained"
        training = app.main.get_by_text(re.compile(r"epoch [\d.]+ of 500, training…"))
        expect(training).to_be_visible(timeout=15_000)
    finally:
        app.button("btn_stop").click()
    paused = app.main.get_by_text(re.compile(r"epoch [\d.]+ of 500, paused"))
    expect(paused).to_be_visible(timeout=30_000)


def test_the_replay_shows_the_image_at_each_epoch(app):
    app.select("cfg_subset", "2,000")
    app.number("cfg_h0", 16)
    app.expand("cfg_epochs")
    app.number("cfg_epochs", 3)
    app.button("btn_start").click()
    progress = app.sidebar.locator("[data-testid=stProgress]")
    expect(progress).to_contain_text("finished", timeout=120_000)
    app.settle()
    _source(app, "A test image")
    plots = app.wait_plots(lambda ps: any(p["key"] == "inside_replay_path" for p in ps))
    path = next(p for p in plots if p["key"] == "inside_replay_path")["traces"]
    assert len(path) == 10 and path[0]["x"] == ["0", "1", "2", "3"]
    for epoch in range(4):  # each epoch's probabilities sum to one
        assert sum(t["y"][epoch] for t in path) == pytest.approx(1, abs=1e-3)
    said = {e: max(range(10), key=lambda c: path[c]["y"][e]) for e in range(4)}
    caption = app.main.get_by_text(re.compile(r"^At the end of epoch \d it said"))
    expect(caption).to_contain_text(f"At the end of epoch 3 it said {said[3]} (")
    thumb = app.main.locator("[class*=st-key-inside_replay_epoch_]").get_by_role("slider")
    for _ in range(3):
        thumb.focus()
        app.page.keyboard.press("ArrowLeft")
        app.settle()
    expect(thumb).to_have_attribute("aria-valuetext", "0")  # from "3 (latest)"
    expect(caption).to_contain_text(f"At the end of epoch 0 it said {said[0]} (")
    app.main.locator(".st-key-inside_replay_path").scroll_into_view_if_needed()
    app.screenshot("inside_replay")
