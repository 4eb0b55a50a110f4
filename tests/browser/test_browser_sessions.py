"""A new visitor in a real browser: the starter model, share links, and session isolation."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def new_context(browser, browser_context_args):
    """Fresh browser contexts (separate cookies and Streamlit sessions), closed at the end."""
    contexts = []

    def _new():
        context = browser.new_context(**browser_context_args)
        contexts.append(context)
        return context

    yield _new
    for context in contexts:
        context.close()


def test_visitor_can_draw_before_training(new_context, open_app):
    app = open_app(new_context().new_page())
    expect(app.sidebar).to_contain_text("No training yet")
    app.screenshot("00-welcome")
    app.nav("Draw")
    model = app.main.locator(".st-key-draw_model")
    starter = model.get_by_role("radio", name="the starter model shipped with the app")
    expect(starter).to_be_checked()
    expect(model.get_by_role("radio")).to_have_count(1)
    expect(app.main).to_contain_text("Prediction: –")
    app.draw_vertical_stroke()
    # The shipped starter model reads a vertical bar as a one.
    assert app.prediction() == 1
    app.screenshot("07-draw-starter")


def test_share_link_restores_settings(new_context, open_app):
    first = open_app(new_context().new_page())
    first.select("cfg_subset", "5,000")
    first.number("cfg_layers", 1)
    first.number("cfg_h0", 48)
    first.expand("cfg_epochs")
    first.number("cfg_epochs", 7)
    first.select("cfg_optimizer", "sgd")

    share = first.sidebar.locator("[data-testid=stExpander]").filter(
        has_text="Share these settings"
    )
    share.locator("summary").click()
    code = share.locator("[data-testid=stCode]")
    expect(code).to_be_visible()
    expect(code).to_contain_text("h=48")
    link = code.inner_text().strip()
    parsed = urlparse(link)
    assert f"{parsed.scheme}://{parsed.netloc}" == first.url, link
    query = parse_qs(parsed.query)
    assert query["h"] == ["48"] and query["e"] == ["7"] and query["o"] == ["sgd"], query
    assert query["n"] == ["5000"] and query["p"] == ["custom"], query

    # A new visitor opening the link sees the same settings in the sidebar.
    second = open_app(new_context().new_page(), parsed.query)
    expect(second.widget("cfg_layers").locator("input")).to_have_value("1")
    expect(second.widget("cfg_h0").locator("input")).to_have_value("48")
    expect(second.widget("cfg_h1")).to_have_count(0)
    expect(second.widget("cfg_subset").locator("input")).to_have_value("5,000")
    expect(second.widget("cfg_preset").locator("input")).to_have_value("Custom")
    expect(second.widget("cfg_epochs").locator("input")).to_have_value("7")
    expect(second.widget("cfg_optimizer").locator("input")).to_have_value("sgd")
    expect(second.sidebar).to_contain_text("No training yet")


def test_two_sessions_are_isolated(new_context, open_app):
    # Session A trains a tiny network to the end (settings from a share link).
    a = open_app(new_context().new_page(), "n=2000&h=16&e=2&b=128")
    expect(a.widget("cfg_h0").locator("input")).to_have_value("16")
    a.button("btn_start").click()
    expect(a.sidebar.locator("[data-testid=stProgress]")).to_contain_text(
        "finished", timeout=60_000
    )
    a.nav("Models")
    expect(a.main).to_contain_text("The network trained in this session: 784-16-10")

    # Session B, another visitor at the same time, has no trained model.
    b = open_app(new_context().new_page())
    expect(b.sidebar).to_contain_text("No training yet")
    expect(b.button("btn_stop")).to_be_disabled()
    expect(b.widget("cfg_h0").locator("input")).not_to_have_value("16")
    expect(b.main).to_contain_text("press Start")
    assert not b.plots(key="loss_chart")
    b.nav("Weights")
    expect(b.main).to_contain_text("Showing the starter model shipped with the app")
    expect(b.main).not_to_contain_text("trained in this session")
    b.nav("Models")
    expect(b.main).to_contain_text("Train a network first")
    expect(b.main.locator(".st-key-download_model")).to_have_count(0)
    b.nav("Draw")
    expect(b.main.locator(".st-key-draw_model").get_by_role("radio")).to_have_count(1)

    # A still has its own model after B's visit.
    a.nav("Weights")
    expect(a.main).to_contain_text("the network trained in this session (784-16-10)")
