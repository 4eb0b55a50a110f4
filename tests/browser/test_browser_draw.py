"""The Draw page in a real Chromium: strokes anywhere on the canvas, the not-a-digit hint,
the phone layout and drawing with a finger."""

from __future__ import annotations

import itertools
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE

pytestmark = pytest.mark.browser

PREDICTION = re.compile(r"Prediction: \d")
HINT = "draw_hint"  # st.container key of the not-a-digit hint


@pytest.fixture
def new_context(browser, browser_context_args):
    """Fresh browser contexts with the given options, closed at the end."""
    contexts = []

    def _new(**options):
        context = browser.new_context(**{**browser_context_args, **options})
        contexts.append(context)
        return context

    yield _new
    for context in contexts:
        context.close()


# ----------------------------------------------------------------------------- helpers
def canvas_box(page) -> dict:
    canvas = page.locator("canvas.upper-canvas")
    expect(canvas).to_be_visible(timeout=30_000)
    box = canvas.bounding_box()
    assert box and box["width"] >= 250 and box["height"] >= 250, box
    return box


def stroke(page, points, steps: int = 20) -> None:
    """One mouse stroke through ``points`` ((x, y) as fractions of the canvas)."""
    box = canvas_box(page)
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for (x0, y0), (x1, y1) in itertools.pairwise(xy):
        for i in range(1, steps + 1):
            page.mouse.move(x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps)
    page.mouse.up()


def prediction_heading(page):
    heading = page.locator("[data-testid=stMain]").get_by_text(PREDICTION)
    expect(heading).to_be_visible(timeout=20_000)
    return heading


def hint(page):
    return page.locator(f"[data-testid=stMain] .st-key-{HINT}")


def clear(app) -> None:
    app.main.locator(".st-key-draw_clear").get_by_role("button").click()
    expect(app.main).to_contain_text("Prediction: –")
    app.settle()


def main_scroll(page) -> float:
    return page.evaluate(
        "() => window.scrollY + (document.querySelector('[data-testid=stMain]')?.scrollTop || 0)"
    )


def in_viewport(box: dict, viewport: dict) -> bool:
    return (
        box["y"] >= 0
        and box["y"] + box["height"] <= viewport["height"]
        and box["x"] >= 0
        and box["x"] + box["width"] <= viewport["width"]
    )


# ----------------------------------------------------------------------------- tests
def test_stroke_starting_under_the_toolbar_draws(new_context, open_app):
    """Defect 5: the top bar of a 5, started at the canvas's top right, used to vanish
    into the toolbar's invisible hit area."""
    page = new_context().new_page()
    app = open_app(page)
    app.nav("Draw")
    expect(app.main).to_contain_text("Prediction: –")
    # Start 10 px below the canvas's top edge, in its right half, and draw leftwards.
    box = canvas_box(page)
    top = 10 / box["height"]
    stroke(page, [(0.85, top), (0.4, top)])
    prediction_heading(page)
    # The toolbar still works: Undo takes the stroke back.
    page.get_by_role("button", name="Undo").click()
    expect(app.main).to_contain_text("Prediction: –", timeout=20_000)
    # The whole 5, its top bar starting in the same place, is read as a 5.
    app.settle()
    stroke(page, [(0.8, top), (0.35, top)])
    stroke(page, [(0.35, top), (0.3, 0.45), (0.55, 0.42), (0.72, 0.6), (0.6, 0.85), (0.3, 0.85)])
    expect(prediction_heading(page)).to_have_text(re.compile(r"Prediction: 5"), timeout=20_000)
    app.screenshot("draw-five")


def test_dot_gets_a_hint_and_real_digits_do_not(new_context, open_app):
    """Defect 7: a tiny dot is called "too small"; a 1 and a two-stroke 7 get no hint."""
    page = new_context().new_page()
    app = open_app(page)
    app.nav("Draw")
    stroke(page, [(0.5, 0.5), (0.51, 0.51)], steps=2)
    prediction_heading(page)
    expect(hint(page)).to_contain_text("tiny", timeout=20_000)
    expect(hint(page)).to_contain_text("draw the digit large")

    clear(app)
    stroke(page, [(0.5, 0.15), (0.47, 0.85)])
    assert app.prediction() == 1
    expect(hint(page)).to_have_count(0)

    clear(app)
    stroke(page, [(0.25, 0.18), (0.75, 0.18)])
    stroke(page, [(0.75, 0.18), (0.45, 0.85)])
    app.settle()
    assert app.prediction() == 7
    expect(hint(page)).to_have_count(0)
    app.screenshot("draw-seven")


def test_phone_shows_the_prediction_with_the_canvas(new_context, open_app, screenshot_dir):
    """Defect 8: at 390x844 the prediction used to be a screen below the canvas."""
    page = new_context(viewport=PHONE).new_page()
    open_app(page, path="draw", sidebar=False)
    box = canvas_box(page)
    assert in_viewport(box, PHONE), box
    before = main_scroll(page)
    stroke(page, [(0.5, 0.15), (0.5, 0.85)])
    heading = prediction_heading(page)
    assert main_scroll(page) == before
    assert in_viewport(heading.bounding_box(), PHONE), heading.bounding_box()
    assert in_viewport(canvas_box(page), PHONE)
    page.screenshot(path=str(screenshot_dir / "draw-phone.png"))


def test_finger_stroke_draws_and_does_not_scroll(new_context, open_app, screenshot_dir):
    """Issue 9: on a touch phone a vertical swipe on the canvas draws; elsewhere it scrolls."""
    context = new_context(viewport=PHONE, has_touch=True, is_mobile=True, device_scale_factor=2)
    page = context.new_page()
    open_app(page, path="draw", sidebar=False)
    cdp = context.new_cdp_session(page)

    def swipe(x: float, y0: float, y1: float) -> None:
        cdp.send(
            "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y0}]}
        )
        for i in range(1, 21):
            y = y0 + (y1 - y0) * i / 20
            cdp.send(
                "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]}
            )
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    box = canvas_box(page)
    before = main_scroll(page)
    x = box["x"] + box["width"] / 2
    swipe(x, box["y"] + 0.15 * box["height"], box["y"] + 0.85 * box["height"])
    heading = prediction_heading(page)
    expect(heading).to_have_text(re.compile(r"Prediction: 1"))
    assert main_scroll(page) == before, "the finger stroke scrolled the page"
    page.screenshot(path=str(screenshot_dir / "draw-phone-touch.png"))

    # The same swipe upwards on the text below the canvas scrolls the page: the canvas,
    # not the gesture, is what keeps the page still.
    below = page.get_by_text("What the network sees").first
    target = below.bounding_box()
    assert target is not None
    start = min(target["y"] + target["height"] / 2, PHONE["height"] - 20)
    swipe(20, start, start - 300)
    page.wait_for_timeout(800)
    assert main_scroll(page) > before
