"""The Network page in a real browser: a "Show me" lesson run by clicking, its warning and
the link to its panel; the hidden space clicked, with the drawing on it; a lesson's share
link; the Weights page opening a unit's view.

Each test has its own browser session. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from playwright.sync_api import expect

from nn_core.lessons import LESSONS

pytestmark = pytest.mark.browser

LESSON_TIMEOUT = 240_000  # ms: the lesson trains 3 epochs; a busy machine is slow

# Names, point counts and first points of the traces of a main-area chart with key `key`.
_TRACES_JS = """
(key) => {
  const el = document.querySelector(`[data-testid=stMain] .st-key-${key} .js-plotly-plot`);
  if (!el || !el._fullData) return null;
  return el._fullData.map((t) => ({name: t.name, n: (t.x || []).length,
    x0: t.x && t.x.length ? Number(t.x[0]) : null, y0: t.y && t.y.length ? Number(t.y[0]) : null,
    visible: t.visible}));
}
"""


@pytest.fixture
def app(browser, browser_context_args, open_app):
    context = browser.new_context(**browser_context_args)
    page = context.new_page()
    try:
        yield open_app(page)
    finally:
        context.close()


def _traces(app, key: str, timeout: float = 60.0) -> list[dict]:
    app.plot(key)  # waits for the chart to be drawn
    deadline = app.page.evaluate("() => Date.now()") + timeout * 1000
    while True:
        traces = app.page.evaluate(_TRACES_JS, key)
        if traces or app.page.evaluate("() => Date.now()") > deadline:
            return traces or []
        app.page.wait_for_timeout(250)


def _tab(app, name: str) -> None:
    app.main.get_by_role("tab", name=name).click()
    expect(app.main.get_by_role("tab", name=name)).to_have_attribute("aria-selected", "true")
    app.settle()


def _in_viewport(locator) -> bool:
    return locator.evaluate(
        "(el) => { const r = el.getBoundingClientRect();"
        " return r.top >= 0 && r.top < window.innerHeight; }"
    )


def test_the_vanishing_gradients_lesson_shows_its_warning_and_the_panel(app):
    app.nav("Network")
    app.main.get_by_role("button", name=LESSONS["vanishing"].button).click()

    card = app.main.get_by_text("Lesson: Vanishing gradients")
    expect(card).to_be_visible(timeout=30_000)
    warning = app.main.get_by_text("Gradients vanish in the early layers")
    expect(warning).to_be_visible(timeout=LESSON_TIMEOUT)
    # the sidebar holds the lesson's settings, and the address bar is its share link
    query = parse_qs(urlparse(app.page.url).query)
    assert query["a"] == ["sigmoid"] and query["h"] == ["64-64-64-64"], query
    assert query["lesson"] == ["vanishing"], query

    # the evidence: one line per layer, layer 1's far below layer 5's
    traces = _traces(app, "health_gradients")
    assert [t["name"] for t in traces] == [f"layer {i}" for i in range(1, 6)], traces
    assert traces[0]["y0"] < 0.05 * traces[-1]["y0"], traces

    # the warning's link brings its panel into view
    heading = app.main.get_by_role("heading", name="Gradient size per layer")
    app.main.get_by_role("link", name=re.compile("See: Gradient size per layer")).first.click()
    expect(heading).to_be_visible()
    app.page.wait_for_timeout(500)
    assert _in_viewport(heading)

    expect(app.main.get_by_text("Lesson: Vanishing gradients (done)")).to_be_visible(
        timeout=LESSON_TIMEOUT
    )
    app.settle()
    app.page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollTo(0, 0)")
    app.screenshot("network_health_vanishing")


def test_a_lesson_link_offers_the_lesson_with_its_settings(app):
    from ui.health import lesson_query

    lesson = LESSONS["overfitting"]
    # the link the lesson card shares: the Network page's address and the lesson's query
    app.page.goto(f"{app.url}/network?{urlencode(lesson_query(lesson))}")
    expect(app.main.get_by_role("heading", name="Network", exact=True)).to_be_visible()
    app.settle()
    expect(app.main.get_by_text("This link opens a lesson: Overfitting")).to_be_visible()
    expect(app.main.get_by_role("button", name="Run this lesson: Overfitting")).to_be_visible()
    subset = app.widget("cfg_subset").locator("input[role=combobox]")
    expect(subset).to_have_value("1,000")


def test_the_hidden_space_shows_the_drawing_and_a_clicked_image(app):
    app.nav("Draw")
    app.draw_vertical_stroke()
    app.prediction()
    app.nav("Network")
    _tab(app, "Hidden space")

    traces = _traces(app, "hs_map")
    names = [t["name"] for t in traces]
    assert [n for n in names if n.isdigit()] == [str(d) for d in range(10)], names
    assert "your drawing" in names, names
    points = [t for t in traces if t["name"].isdigit() or t["name"].endswith(": mistakes")]
    assert sum(t["n"] for t in points) == 2000, traces
    first = traces[0]  # the correctly classified 0s
    app.click_plot("hs_map", first["x0"], first["y0"])
    expect(app.main.get_by_text(re.compile(r"test image #\d+"))).to_be_visible()
    expect(app.main.get_by_text(re.compile(r"True 0, predicted \d"))).to_be_visible()
    app.screenshot("network_hidden_space")


def test_the_weights_page_opens_what_a_unit_looks_for(app):
    app.nav("Weights")
    unit_box = app.main.locator(".st-key-w_unit input")
    unit_box.fill("5")
    unit_box.press("Enter")
    app.settle()
    app.main.get_by_role("button", name="What does this unit look for?").click()
    expect(app.main.get_by_role("heading", name="Network", exact=True)).to_be_visible()
    tab = app.main.get_by_role("tab", name="What units look for")
    expect(tab).to_have_attribute("aria-selected", "true")
    expect(app.main.locator(".st-key-units_unit input")).to_have_value("5")
    expect(app.main.get_by_text("The input it likes best")).to_be_visible(timeout=30_000)
    expect(app.main.get_by_text("Unit 5 of hidden layer 1.")).to_be_visible()
    images = app.main.locator("[data-testid=stImage] img")
    expect(images).to_have_count(2)
    app.screenshot("network_units")
