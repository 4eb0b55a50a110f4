"""The sidebar's settings in a real Chromium: share links, reloads, number boxes, the share box.

Each test does what a person does (open a link, type in a box, press Enter, reload, open
the share expander) and checks what they would see.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def target_epochs(n: int) -> re.Pattern:
    """The progress text's target, "epoch 0.5 of 3" (or "/ 3"), never "of 30"."""
    return re.compile(rf"(?:of|/) {n}\b")


def _query(page) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlparse(page.url).query).items()}


def _type_number(app, key: str, text: str) -> None:
    """Type ``text`` into the sidebar number box ``key`` and press Enter, as a person does."""
    app.expand(key)
    field = app.widget(key).locator("input")
    field.fill(text)
    field.press("Enter")
    app.settle()


def _screenshot(page, locators, path) -> None:
    """One screenshot of the page region that holds every locator (scrolled into view)."""
    locators[-1].scroll_into_view_if_needed()
    boxes = [loc.bounding_box() for loc in locators]
    left, top = min(b["x"] for b in boxes), min(b["y"] for b in boxes)
    right = max(b["x"] + b["width"] for b in boxes)
    bottom = max(b["y"] + b["height"] for b in boxes)
    clip = {"x": left - 8, "y": top - 8, "width": right - left + 16, "height": bottom - top + 16}
    page.screenshot(path=str(path), clip=clip)


def test_reload_keeps_an_edit_made_after_opening_a_share_link(page, open_app, screenshot_dir):
    app = open_app(page, "p=fast&h=32&e=4")
    _type_number(app, "cfg_epochs", "9")
    expect(page).to_have_url(re.compile(r"[?&]e=9(&|$)"))
    page.reload()
    app.button("btn_start").wait_for(state="visible")
    app.settle()
    app.expand("cfg_epochs")
    expect(app.widget("cfg_epochs").locator("input")).to_have_value("9")
    expect(app.widget("cfg_h0").locator("input")).to_have_value("32")  # the link's own value
    assert _query(page)["e"] == "9"


def test_a_link_with_bad_values_works_and_names_them(page, open_app, screenshot_dir):
    app = open_app(page, "e=inf&lr=abc&b=1e400&seed=nan")
    alert = app.sidebar.locator("[data-testid=stAlert]").filter(has_text="This link had values")
    expect(alert).to_be_visible()
    text = alert.inner_text()
    assert "e=inf is above this server's cap, 500, so 500 is used" in text
    assert "lr=abc is not a number, so 0.001 is used" in text
    assert "b=1e400 is above the maximum, 1024, so 1024 is used" in text
    assert "seed=nan is not a number, so 0 is used" in text
    app.expand("cfg_epochs")
    expect(app.widget("cfg_epochs").locator("input")).to_have_value("500")
    _screenshot(page, [alert, app.widget("cfg_epochs")], screenshot_dir / "settings_bad_link.png")
    # The page works: one batch trains with the settings shown.
    app.select("cfg_subset", "2,000")
    app.button("btn_step").click()
    app.settle()
    expect(app.sidebar.locator("[data-testid=stProgress]")).to_contain_text(target_epochs(500))
    assert _query(page)["e"] == "500"  # the address now holds what is used


def test_typing_minus_three_in_epochs_shows_and_trains_one(page, open_app, screenshot_dir):
    app = open_app(page)
    _type_number(app, "cfg_epochs", "-3")
    field = app.widget("cfg_epochs").locator("input")
    expect(field).to_have_value("1")
    notice = app.sidebar.locator("[data-testid=stAlert]").filter(has_text="Epochs: -3")
    expect(notice).to_have_text(re.compile(r"Epochs: -3 is below the minimum, 1; it is set to 1\."))
    _screenshot(page, [app.widget("cfg_epochs"), notice], screenshot_dir / "settings_epochs.png")
    app.select("cfg_subset", "2,000")
    app.button("btn_step").click()
    app.settle()
    expect(app.sidebar.locator("[data-testid=stProgress]")).to_contain_text(target_epochs(1))
    _type_number(app, "cfg_epochs", "3")  # a good value clears the message
    expect(notice).to_have_count(0)


def test_the_share_box_shows_the_whole_link(page, open_app, screenshot_dir):
    app = open_app(page)
    expander = app.sidebar.locator("[data-testid=stExpander]").filter(
        has_text="Share these settings"
    )
    expander.locator("summary").click()
    code = expander.locator("[data-testid=stCode] pre")
    expect(code).to_be_visible()
    shown = code.inner_text().strip()
    assert shown.startswith(app.url), shown
    for part in ("p=fast", "h=128-64", "e=3", "seed=0", "rot=0", "n=0"):  # first to last
        assert part in shown, part
    sizes = code.evaluate(
        "(el) => [el.scrollWidth, el.clientWidth, el.querySelector('code').scrollWidth]"
    )
    assert sizes[0] <= sizes[1] + 1 and sizes[2] <= sizes[1] + 1, sizes  # nothing scrolls away
    box = code.bounding_box()
    sidebar = app.sidebar.bounding_box()
    assert box["x"] + box["width"] <= sidebar["x"] + sidebar["width"]
    code.scroll_into_view_if_needed()
    expander.screenshot(path=str(screenshot_dir / "settings_share_box.png"))
