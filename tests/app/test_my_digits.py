"""AppTest: the My digits page (collect, the gallery, measure, teach, keep) and the Draw
page's "This was a ..." button, fed drawings through the canvas's session-state key."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nn_core.data import load_mnist
from nn_core.io import LoadedModel, load_model
from nn_core.metrics import evaluate
from nn_core.network import MLP
from nn_core.personal_set import PersonalSet, empty_set, raw_from_canvas
from nn_core.preprocess import preprocess_drawing
from tests.app.conftest import train_tiny
from tests.test_finetune import per_class, thick
from ui import my_digits as md
from ui import state as keys
from ui.run_history import HISTORY

PAGE = "app_pages/my_digits.py"
DRAW = "app_pages/draw.py"
STARTER = Path(__file__).resolve().parents[2] / "assets" / "starter_model.npz"


# ------------------------------------------------------------------ helpers
def canvas_with_stroke(column: int = 140) -> np.ndarray:
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[..., 3] = 255
    canvas[40:240, column - 10 : column + 10, :3] = 255  # a vertical stroke: a "1"
    return canvas


def feed(at, key: str, canvas: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(canvas, "RGBA").save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    at.session_state[key] = {"drawing": {"raw": {"objects": [{"type": "path"}]}, "data": url}}
    at.run()
    assert not at.exception, at.exception


def open_page(at) -> None:
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception


def texts(at) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success")
             for e in getattr(at, kind)]  # fmt: skip
    return "\n".join(str(p) for p in parts)


def felt_tip_set(per_digit: int, digits=range(10), seed: int = 0) -> PersonalSet:
    """MNIST test digits drawn with a thick pen: a personal style the starter misreads."""
    mnist = load_mnist()
    idx = per_class(mnist.y_test, per_digit, np.random.default_rng(seed))
    idx = idx[np.isin(mnist.y_test[idx], list(digits))]
    n = idx.size
    return PersonalSet(
        thick(mnist.x_test[idx]),
        mnist.y_test[idx].astype(np.int64),
        np.zeros((n, 140, 140), np.uint8),
    )


def with_set(at, personal: PersonalSet) -> None:
    at.session_state[md.SET] = personal
    at.session_state[md.VERSION] = at.session_state[md.VERSION] + 1
    at.run()
    assert not at.exception, at.exception


# ------------------------------------------------------------------ collect
def test_an_empty_page_asks_for_a_0_and_says_what_is_missing(app):
    open_page(app)
    shown = texts(app)
    assert "### Draw a **0**" in shown
    assert "Your set is empty: draw some digits above, or upload a set" in shown
    assert "Add at least two digits" in shown
    assert "Nothing to download yet." in shown
    assert app.button(key="my_digits_add").disabled


def test_a_drawing_is_added_with_its_corrected_label_and_its_canvas(app):
    open_page(app)
    canvas = canvas_with_stroke()
    feed(app, "my_digits_canvas_0", canvas)
    assert not app.button(key="my_digits_add").disabled
    app.selectbox(key="my_digits_label_0_0").set_value(1)  # asked for a 0, drew a 1
    app.run()
    app.button(key="my_digits_add").click()
    app.run()
    assert not app.exception, app.exception
    personal = app.session_state[md.SET]
    assert personal.labels.tolist() == [1]
    assert np.array_equal(personal.images[0], preprocess_drawing(canvas))
    assert np.array_equal(personal.raws[0], raw_from_canvas(canvas))
    assert app.session_state[md.CANVAS_N] == 1  # a fresh canvas for the next digit
    shown = texts(app)
    assert "Added a 1. Your set has 1 digit." in shown and "### Draw a **0**" in shown
    # the next drawing, labelled as asked
    feed(app, "my_digits_canvas_1", canvas_with_stroke(120))
    app.button(key="my_digits_add").click()
    app.run()
    assert app.session_state[md.SET].labels.tolist() == [1, 0]
    assert "### Draw a **2**" in texts(app)


def test_the_gallery_corrects_a_label_and_deletes_a_digit(app):
    open_page(app)
    with_set(app, felt_tip_set(1, digits=(3, 5, 8)))
    version = app.session_state[md.VERSION]
    assert app.session_state[md.SET].labels.tolist() == [3, 5, 8]
    app.selectbox(key=f"my_digits_relabel_{version}_1").set_value(6)
    app.run()
    assert app.session_state[md.SET].labels.tolist() == [3, 6, 8]
    assert "Digit #2 is now labelled 6." in texts(app)
    version = app.session_state[md.VERSION]
    app.button(key=f"my_digits_del_{version}_0").click()
    app.run()
    assert not app.exception, app.exception
    assert app.session_state[md.SET].labels.tolist() == [6, 8]
    assert "Deleted digit #1 (a 3)." in texts(app)


def test_the_set_is_capped_per_session(app, monkeypatch):
    monkeypatch.setenv("DIGITLAB_MAX_PERSONAL_SAMPLES", "1")
    open_page(app)
    feed(app, "my_digits_canvas_0", canvas_with_stroke())
    app.button(key="my_digits_add").click()
    app.run()
    feed(app, "my_digits_canvas_1", canvas_with_stroke(120))
    app.button(key="my_digits_add").click()
    app.run()
    assert len(app.session_state[md.SET]) == 1
    assert "Your set is full: this server keeps at most 1 digit per session" in texts(app)


def test_upload_problems_are_one_sentence_each():
    current = felt_tip_set(1, digits=(0, 1))
    small = PersonalSet(
        np.zeros((3, 16, 16), np.uint8), np.arange(3), np.zeros((3, 140, 140), np.uint8)
    )
    assert "holds 16x16 images, but My digits holds 28x28" in md.upload_problem(
        small, "s.npz", current
    )
    letters = PersonalSet(current.images, np.array([0, 12]), current.raws)
    assert "labels up to 12" in md.upload_problem(letters, "l.npz", current)
    assert md.upload_problem(current, "ok.npz", empty_set()) == ""


# ------------------------------------------------------------------ measure
def test_measure_shows_mnist_next_to_my_digits(app):
    open_page(app)
    personal = felt_tip_set(2)
    with_set(app, personal)
    starter = load_model(STARTER).model
    expected = evaluate(starter, personal.images, personal.labels)
    mnist = load_mnist()
    on_mnist = evaluate(starter, mnist.x_test, mnist.y_test)["accuracy"]
    line = f"**{100 * on_mnist:.1f}% on MNIST, {100 * expected['accuracy']:.1f}% on my digits.**"
    assert line in texts(app)
    assert expected["accuracy"] < 0.8  # the felt-tip pen fools the MNIST network
    misreads = int(np.sum(expected["y_pred"] != personal.labels))
    assert f"**Misreads: {misreads}** (the most confident first)" in texts(app)
    (chart,) = [c for c in app.get("plotly_chart") if "my_digits_confusion" in c.proto.id]
    text = json.loads(chart.proto.spec)["data"][0]["text"]
    shown = np.array([[int(v) if v else 0 for v in row] for row in text])
    assert np.array_equal(shown, expected["confusion"])


def test_a_digit_with_no_samples_is_named(app):
    open_page(app)
    with_set(app, felt_tip_set(2, digits=range(5)))
    shown = texts(app)
    assert "Your set has no 5, 6, 7, 8, 9: their rows of the matrix are empty" in shown
    assert "Your set has no 5, 6, 7, 8, 9: the network is not taught those" in shown


def test_a_network_of_another_input_size_gets_a_message_and_nothing_changes(app):
    open_page(app)
    personal = felt_tip_set(1)
    with_set(app, personal)
    small = MLP(64, (8,), 10)
    app.session_state[keys.UPLOADED_MODEL] = LoadedModel(small, tuple("0123456789"), (8, 8))
    app.run()
    app.radio(key=md.MODEL_CHOICE).set_value("uploaded")
    app.run()
    assert not app.exception, app.exception
    message = "The network reads 64-pixel images, but your digits are 28x28 (784 pixels)."
    assert sum(message in w.value for w in app.warning) == 1  # Measure
    assert any(message in i.value for i in app.info)  # Teach
    assert app.session_state[md.SET] is personal
    assert app.session_state[keys.UPLOADED_MODEL].model is small


# ------------------------------------------------------------------ teach and keep
def teach_quickly(at) -> None:
    at.slider(key="my_digits_steps").set_value(40)
    at.run()
    at.button(key="my_digits_teach").click()
    at.run()
    assert not at.exception, at.exception


def test_fine_tune_side_by_side_then_keep(app):
    open_page(app)
    personal = felt_tip_set(3)
    with_set(app, personal)
    starter_file = load_model(STARTER).model.params.copy()
    teach_quickly(app)
    results = app.session_state[md.RESULTS]
    assert [o.settings.replay for o in results.outcomes] == [0.5, 0.0]
    first = results.outcomes[0]
    assert first.mode == "per-digit" and first.held_out.size == 10  # one of 3 per digit
    shown = texts(app)
    assert "#### Before and after (10 held-out digits), starting from the starter model" in shown
    assert "Forgetting: with replay 50%, MNIST accuracy" in shown
    on_mnist = [m.value for m in app.metric if m.label == "MNIST test set"]
    after = [md._pct(o.after.test_accuracy) for o in results.outcomes]
    assert on_mnist == ["97.2%", "97.2%", *after]  # Measure, Before, the two Afters
    app.button(key="my_digits_keep_0").click()
    app.run()
    assert not app.exception, app.exception
    # a new run in the run history, and the model every page shows
    (entry,) = app.session_state[HISTORY].entries
    name = "the starter model fine-tuned on my digits (replay 50%)"
    assert entry.name == name and entry.record.origin == "finetune"
    assert np.array_equal(entry.record.model.params, first.model.params)
    assert entry.record.metrics["test_accuracy"] == first.after.test_accuracy
    assert entry.record.history["batch_loss"] == first.losses.tolist()
    kept = app.session_state[keys.UPLOADED_MODEL]
    assert np.array_equal(kept.model.params, first.model.params)
    assert app.session_state[md.MODEL_CHOICE] == "uploaded"
    assert (
        f"Kept the fine-tuned model (replay 50%) as '{name}' in the run history; every page "
        "now shows it." in texts(app)
    )
    # the starter the page started from is untouched
    assert np.array_equal(md.starter_model().model.params, starter_file)
    options = app.radio(key=md.MODEL_CHOICE).options
    assert options[0] == "the fine-tuned model you kept (784-128-64-10)", options
    assert len(options) == 2  # the kept run is not offered twice


def test_fine_tuning_waits_for_a_training_slot_and_says_when_the_server_is_full(app, monkeypatch):
    from ui import runner

    full = runner.TrainingGate(capacity=1, max_waiting=0)
    assert full.enqueue(99) and full.acquire(99, lambda: False)  # another visitor trains
    monkeypatch.setattr(runner, "gate", lambda: full)
    open_page(app)
    with_set(app, felt_tip_set(3))
    teach_quickly(app)
    assert any(
        e.value.startswith("The server is busy: 1 trainings are running")
        and e.value.endswith("Your network is unchanged.")
        for e in app.error
    ), [e.value for e in app.error]
    assert app.session_state[md.RESULTS] is None
    full.release(99)  # the slot frees: the same click fine-tunes, and gives the slot back
    app.button(key="my_digits_teach").click()
    app.run()
    assert app.session_state[md.RESULTS] is not None
    assert full.active == 0 and full.waiting == 0


def test_keeping_after_training_keeps_the_run_in_the_history(app):
    train_tiny(app)
    run = app.session_state[keys.RUN]
    open_page(app)
    with_set(app, felt_tip_set(3))
    assert app.radio(key=md.MODEL_CHOICE).value == "run"
    teach_quickly(app)
    app.button(key="my_digits_keep_0").click()
    app.run()
    assert not app.exception, app.exception
    assert app.session_state[keys.RUN] is None
    entries = app.session_state[HISTORY].entries
    assert [e.run for e in entries] == [None, None]  # the run, frozen; the fine-tuned one
    assert entries[0].record.model.sizes == run.model.sizes
    assert entries[1].name == f"{entries[0].name} fine-tuned on my digits (replay 50%)"
    assert "Your earlier run stays in the run history." in texts(app)
    # both can be measured again
    options = app.radio(key=md.MODEL_CHOICE).options
    assert f"{entries[0].name} from the run history (784-16-10)" in options


def test_keeping_asks_before_replacing_an_uploaded_model(app):
    open_page(app)
    with_set(app, felt_tip_set(3))
    uploaded = load_model(STARTER)
    app.session_state[keys.UPLOADED_MODEL] = uploaded
    app.run()
    teach_quickly(app)
    app.button(key="my_digits_keep_1").click()
    app.run()
    assert any("Keeping it replaces this session's uploaded model" in w.value for w in app.warning)
    assert app.session_state[keys.UPLOADED_MODEL] is uploaded
    app.button(key="my_digits_confirm_no").click()
    app.run()
    assert app.session_state[keys.UPLOADED_MODEL] is uploaded
    assert not any("Keeping it replaces" in w.value for w in app.warning)
    app.button(key="my_digits_keep_1").click()
    app.run()
    app.button(key="my_digits_confirm_yes").click()
    app.run()
    assert not app.exception, app.exception
    results = app.session_state[md.RESULTS]
    kept = app.session_state[keys.UPLOADED_MODEL].model
    assert np.array_equal(kept.params, results.outcomes[1].model.params)
    assert results.kept == 1


def test_results_say_when_they_are_stale_and_discard_forgets_them(app):
    open_page(app)
    with_set(app, felt_tip_set(3))
    teach_quickly(app)
    stale = "Your set or the network changed since: these figures are for the earlier one."
    assert stale not in texts(app)
    with_set(app, felt_tip_set(2))
    assert stale in texts(app)
    app.button(key="my_digits_discard").click()
    app.run()
    assert app.session_state[md.RESULTS] is None
    assert app.session_state[keys.UPLOADED_MODEL] is None
    assert "Discarded the fine-tuned networks; the original is unchanged." in texts(app)


def test_a_single_digit_of_each_kind_is_taught_by_leave_one_out(app):
    open_page(app)
    with_set(app, felt_tip_set(1, digits=(1, 4, 7)))
    assert "With 3 digits, each is tested by leave-one-out: 3 fine-tunes" in texts(app)


# ------------------------------------------------------------------ the Draw page
def test_this_was_a_4_adds_the_drawing_from_the_draw_page(app):
    app.switch_page(DRAW)
    app.run()
    canvas = canvas_with_stroke()
    feed(app, "draw_canvas_0", canvas)
    (box,) = [s for s in app.selectbox if s.key and s.key.startswith("draw_this_was_")]
    box.set_value(4)
    app.run()
    app.button(key="draw_add_to_my_digits").click()
    app.run()
    assert not app.exception, app.exception
    personal = app.session_state[md.SET]
    assert personal.labels.tolist() == [4]
    assert np.array_equal(personal.images[0], app.session_state["inside_image"])
    assert np.array_equal(personal.raws[0], raw_from_canvas(canvas))
    assert any("Added a 4. Your set has 1 digit." in s.value for s in app.success)


@pytest.fixture(autouse=True)
def _no_personal_cap(monkeypatch):
    monkeypatch.delenv("DIGITLAB_MAX_PERSONAL_SAMPLES", raising=False)
