"""The "How it works" panel in a real Chromium: every formula renders (no red KaTeX source),
and the panel follows the run: the real input size, the L2 term and the dropout mask."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

RAW_TEX = re.compile(r"\\(frac|hat|sum|odot|top|operatorname|tfrac|lVert|mathcal)|\$\$")


def _open_panel(app):
    """Open the "How it works" expander on the Training page; its locator."""
    panel = app.main.locator("[data-testid=stExpander]").filter(has_text="How it works")
    panel.locator("summary").click()
    expect(panel.locator(".katex").first).to_be_visible()
    app.settle()
    return panel


def _formulas(panel) -> dict:
    """What the panel shows: rendered formulas, KaTeX errors, and its visible text."""
    return {
        "katex": panel.locator(".katex").count(),
        "display": panel.locator(".katex-display").count(),
        "errors": panel.locator(".katex-error").count(),
        "text": panel.inner_text(),
    }


def _screenshot(app, panel, name: str) -> None:
    panel.scroll_into_view_if_needed()
    box = panel.bounding_box()
    app.page.set_viewport_size({"width": 1400, "height": int(box["height"]) + 400})
    try:
        panel.scroll_into_view_if_needed()
        panel.screenshot(path=str(app.screenshot_dir / f"{name}.png"))
    finally:
        app.page.set_viewport_size({"width": 1400, "height": 1000})


def test_every_formula_renders_before_any_run(page, open_app):
    app = open_app(page)
    panel = _open_panel(app)
    seen = _formulas(panel)
    _screenshot(app, panel, "how_it_works_no_run")
    assert seen["errors"] == 0, seen["text"]
    assert not RAW_TEX.search(seen["text"]), seen["text"]
    # forward (2), loss (1), backward (2), update (1) displayed, and inline symbols
    assert seen["display"] >= 6 and seen["katex"] >= 12, seen
    assert "784" in seen["text"]  # MNIST's 28x28 inputs


def test_the_panel_shows_l2_dropout_and_this_runs_shapes(page, open_app):
    app = open_app(page, "p=fast&h=32&e=1&d=0.3&l2=0.001")
    app.button("btn_step").click()
    app.settle()
    panel = _open_panel(app)
    seen = _formulas(panel)
    _screenshot(app, panel, "how_it_works_l2_dropout")
    assert seen["errors"] == 0, seen["text"]
    assert not RAW_TEX.search(seen["text"]), seen["text"]
    text = seen["text"]
    assert "L2" in text and "0.001" in text
    assert "dropout" in text.lower() and "0.3" in text
    assert "784-32-10" in text
    # the mask and the penalty are formulas too: M[l] in the forward and backward pass,
    # lambda in the loss and the weight gradient
    annotations = panel.locator(".katex annotation").evaluate_all(
        "(nodes) => nodes.map((n) => n.textContent)"
    )
    assert any("M^{[l]}" in a for a in annotations), annotations
    assert sum("\\lambda" in a for a in annotations) >= 2, annotations
