"""My digits as a person uses it, in a real Chromium: draw and label digits on the canvas,
download the set, upload it again, measure the network and fine-tune it; add a drawing
from the Draw page; a damaged upload gets one sentence and changes nothing.

The page measures the starter model shipped with the app (784-128-64-10, MNIST).
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
from playwright.sync_api import expect

from nn_core.data import load_dataset, load_mnist
from nn_core.io import load_model
from nn_core.metrics import evaluate, misclassified
from nn_core.personal_set import PersonalSet, to_npz_bytes
from tests.test_finetune import STARTER, per_class, thick

WAIT = 45_000  # ms: a rerun and a redraw on a busy two-core machine

# Shapes in canvas coordinates (0..1): a person's 1, 0 and 7, each drawn in one stroke.
SHAPES = {
    1: [(0.5, 0.18), (0.5, 0.82)],
    0: [
        (0.5 + 0.22 * math.sin(2 * math.pi * t / 24), 0.5 - 0.32 * math.cos(2 * math.pi * t / 24))
        for t in range(25)
    ],
    7: [(0.28, 0.22), (0.72, 0.22), (0.42, 0.82)],
}


@pytest.fixture()
def app(page, open_app):
    application = open_app(page)
    application.nav("My digits", slug="my_digits")
    return application


def _stroke(app, points, dx: float = 0.0, scale: float = 1.0) -> None:
    """One stroke through ``points`` (canvas fractions), moved by ``dx`` and scaled about
    the centre, in small mouse moves."""
    canvas = app.page.locator("canvas.upper-canvas")
    expect(canvas).to_be_visible(timeout=WAIT)
    box = canvas.bounding_box()
    assert box and box["width"] > 50, box

    def at(p):
        x = 0.5 + (p[0] - 0.5) * scale + dx
        y = 0.5 + (p[1] - 0.5) * scale
        return box["x"] + x * box["width"], box["y"] + y * box["height"]

    mouse = app.page.mouse
    mouse.move(*at(points[0]))
    mouse.down()
    for a, b in itertools.pairwise(points):
        for i in range(1, 9):
            f = i / 8
            mouse.move(*at((a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f)))
    mouse.up()


def _choose(app, selector: str, option: str) -> None:
    """Pick ``option`` in the main-area select box matched by ``selector``."""
    box = app.main.locator(f"{selector} input[role=combobox]")
    box.click()
    app.page.get_by_role("option", name=option, exact=True).click()
    expect(box).to_have_value(option)


def _draw_and_add(app, digit: int, dx: float, scale: float, expected_total: int) -> None:
    # .first: while the page reruns, the old button and the new one can both be there
    add = app.main.locator(".st-key-my_digits_add button").first
    expect(add).to_be_disabled(timeout=WAIT)  # a fresh, empty canvas
    _stroke(app, SHAPES[digit], dx, scale)
    expect(add).to_be_enabled(timeout=WAIT)  # the stroke reached Python
    app.settle()
    _choose(app, "[class*='st-key-my_digits_label_']", str(digit))
    app.settle()
    add.click()
    expect(_success(app, "Added a")).to_contain_text(
        f"Added a {digit}. Your set has {expected_total} digit", timeout=WAIT
    )
    app.settle()


def _success(app, text: str):
    """The green message holding ``text`` (the page may show others)."""
    return app.main.locator("[data-testid=stAlertContentSuccess]").filter(has_text=text)


def _counts(app) -> list[int]:
    plots = app.wait_plots(lambda p: any(x["key"] == "my_digits_counts" for x in p))
    bars = next(p for p in plots if p["key"] == "my_digits_counts")["traces"][0]
    assert bars["x"] == [str(d) for d in range(10)], bars
    return [int(v) for v in bars["y"]]


def test_draw_label_download_upload_and_finetune(app, tmp_path):
    expect(app.main).to_contain_text("Draw a 0")
    drawn = [(0, -0.05, 1.0), (1, -0.08, 1.0), (7, 0.0, 1.0), (0, 0.06, 0.8)]
    drawn += [(1, 0.1, 0.8), (7, -0.06, 0.85), (0, 0.0, 0.9), (1, 0.0, 0.9), (7, 0.05, 1.0)]
    for total, (digit, dx, scale) in enumerate(drawn, start=1):
        _draw_and_add(app, digit, dx, scale, total)
    assert _counts(app) == [3, 3, 0, 0, 0, 0, 0, 3, 0, 0]
    expect(app.main).to_contain_text("Your set (9 digits)")
    expect(app.main).to_contain_text("No 2, 3, 4, 5, 6, 8, 9 yet.")
    # what the network reads them as, next to MNIST
    expect(app.main).to_contain_text(re.compile(r"97\.2% on MNIST, \d+\.\d% on my digits"))
    app.screenshot("my_digits_collected")

    # download the set: the data loaders read it back, labels and all
    with app.page.expect_download() as info:
        app.main.locator(".st-key-my_digits_download button").click()
    saved = tmp_path / "my_digits.npz"
    info.value.save_as(saved)
    dataset = load_dataset(saved)
    assert sorted(dataset.y_test.tolist()) == [0, 0, 0, 1, 1, 1, 7, 7, 7]
    assert dataset.x_test.shape == (9, 28, 28) and dataset.x_test.max() > 200

    # start again empty, then upload the file
    app.main.locator(".st-key-my_digits_delete_all button").click()
    expect(app.main).to_contain_text("Your set (0 digits)", timeout=WAIT)
    app.settle()
    assert _counts(app) == [0] * 10
    upload = app.main.locator("[class*='st-key-my_digits_upload_'] input[type=file]")
    upload.set_input_files(str(saved))
    expect(app.main).to_contain_text("Added 9 digits from my_digits.npz", timeout=WAIT)
    app.settle()
    assert _counts(app) == [3, 3, 0, 0, 0, 0, 0, 3, 0, 0]

    # fine-tune: 9 digits, so leave-one-out; replay 50% beside replay 0%
    app.main.locator(".st-key-my_digits_teach button").click()
    before = app.main.locator(".st-key-my_digits_before")
    expect(before).to_contain_text("Before", timeout=90_000)
    app.settle(timeout=120)
    expect(app.main).to_contain_text("leave-one-out over all your digits")
    expect(before).to_contain_text("97.2%")  # the starter's MNIST accuracy
    with_replay = app.main.locator(".st-key-my_digits_after_0")
    without = app.main.locator(".st-key-my_digits_after_1")
    expect(with_replay).to_contain_text("After, replay 50%")
    expect(without).to_contain_text("After, replay 0%")
    expect(app.main).to_contain_text(re.compile(r"Forgetting: with replay 50%, MNIST accuracy"))
    app.screenshot("my_digits_finetuned")

    # keep the replayed one: it becomes the network the page measures
    with_replay.get_by_role("button", name="Keep this model").click()
    expect(_success(app, "Kept the")).to_contain_text(
        "Kept the fine-tuned model (replay 50%)", timeout=WAIT
    )
    expect(app.main.get_by_text("the fine-tuned model you kept (784-128-64-10)")).to_be_visible()
    expect(with_replay).to_contain_text("Kept: this session's model now.")


def test_this_was_a_4_on_the_draw_page_adds_the_drawing(page, open_app):
    app = open_app(page)
    app.nav("Draw")
    app.draw_vertical_stroke()
    app.prediction()
    app.settle()
    _choose(app, "[class*='st-key-draw_this_was_']", "4")
    app.settle()
    app.main.locator(".st-key-draw_add_to_my_digits button").click()
    expect(_success(app, "Added a")).to_contain_text(
        "Added a 4. Your set has 1 digit.", timeout=WAIT
    )
    app.settle()
    app.nav("My digits", slug="my_digits")
    expect(app.main).to_contain_text("Your set (1 digit)")
    assert _counts(app) == [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]


def test_a_damaged_upload_says_so_and_keeps_the_set(app, tmp_path):
    _draw_and_add(app, 1, 0.0, 1.0, 1)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    app.main.locator("[class*='st-key-my_digits_upload_'] input[type=file]").set_input_files(
        str(broken)
    )
    error = app.main.locator("[data-testid=stAlertContentError]")
    expect(error).to_contain_text("broken.npz", timeout=WAIT)
    expect(error).to_have_count(1)
    app.settle()
    expect(app.main).to_contain_text("Your set (1 digit)")
    assert _counts(app) == [0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    # a set of another image size: refused in one sentence too
    small = PersonalSet(
        np.zeros((4, 16, 16), np.uint8), np.array([0, 1, 0, 1]), np.zeros((4, 140, 140), np.uint8)
    )
    other = tmp_path / "small_digits.npz"
    other.write_bytes(to_npz_bytes(small))
    app.main.locator("[class*='st-key-my_digits_upload_'] input[type=file]").set_input_files(
        str(other)
    )
    expect(error).to_contain_text(
        "small_digits.npz holds 16x16 images, but My digits holds 28x28", timeout=WAIT
    )
    expect(error).to_have_count(1)
    app.settle()
    expect(app.main).to_contain_text("Your set (1 digit)")
    # the measured network is still the starter
    expect(app.main.get_by_text("the starter model (784-128-64-10)")).to_be_visible()
    app.screenshot("my_digits_damaged_upload")


def test_an_uploaded_set_shows_its_misreads_and_gallery(app, tmp_path):
    mnist = load_mnist()
    idx = per_class(mnist.y_test, 3, np.random.default_rng(0))
    personal = PersonalSet(
        thick(mnist.x_test[idx]), mnist.y_test[idx], np.zeros((idx.size, 140, 140), np.uint8)
    )
    path = tmp_path / "felt_tip.npz"
    path.write_bytes(to_npz_bytes(personal))
    app.main.locator("[class*='st-key-my_digits_upload_'] input[type=file]").set_input_files(
        str(path)
    )
    expect(app.main).to_contain_text("Added 30 digits from felt_tip.npz", timeout=WAIT)
    app.settle()
    result = evaluate(load_model(STARTER).model, personal.images, personal.labels)
    wrong = misclassified(personal.labels, result["probs"])
    expect(app.main).to_contain_text(f"Misreads: {wrong.size} (the most confident first)")
    worst = wrong[0]
    true, read = int(personal.labels[worst]), int(result["y_pred"][worst])
    expect(app.main).to_contain_text(
        f"a {true} read as {read} ({result['probs'][worst, read]:.0%})"
    )
    accuracy = f"{100 * result['accuracy']:.1f}% on my digits"
    expect(app.main).to_contain_text(accuracy)
    app.main.get_by_text("Gallery: look at your digits, correct a label, delete").click()
    tiles = app.main.locator("[class*='st-key-my_digits_tile_']")
    expect(tiles).to_have_count(24)  # the first page
    tiles.first.get_by_role("button", name="Delete").click()
    expect(_flash_info(app)).to_contain_text(
        f"Deleted digit #1 (a {int(personal.labels[0])}).", timeout=WAIT
    )
    expect(app.main).to_contain_text("Your set (29 digits)")
    app.settle()
    expect(tiles).to_have_count(24)  # the gallery stays open for the next correction
    app.screenshot("my_digits_misreads_gallery")


def _flash_info(app):
    return app.main.locator("[data-testid=stAlertContentInfo]").filter(has_text="Deleted")
