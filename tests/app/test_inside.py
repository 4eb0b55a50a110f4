"""AppTest: the Inside page with each image source, and its one-sentence answers to bad input."""

from __future__ import annotations

import base64
import io
import json
import re
import types

import numpy as np
import pytest
from conftest import train_tiny  # tests/app/conftest.py: imported while this folder is collected
from PIL import Image

from nn_core.io import LoadedModel
from nn_core.network import MLP, layer_views
from ui import inside
from ui import state as keys

INSIDE = "app_pages/inside.py"
DRAW = "app_pages/draw.py"
CHARTS = ("inside_probs", "inside_layer_0", "inside_logits", "inside_contrib", "inside_saliency")


def chart_keys(at) -> set[str]:
    return {chart.proto.id for chart in at.get("plotly_chart")}


def has_chart(at, key: str) -> bool:
    return any(key in chart_id for chart_id in chart_keys(at))


def chart_spec(at, key: str) -> dict:
    for chart in at.get("plotly_chart"):
        if key in chart.proto.id:
            return json.loads(chart.proto.spec)
    raise AssertionError(f"no chart {key}")


def values(field) -> np.ndarray:
    """A figure's array, written by Plotly as a list or as base64 ``{dtype, bdata}``."""
    if isinstance(field, dict):
        return np.frombuffer(base64.b64decode(field["bdata"]), dtype=field["dtype"])
    return np.asarray(field)


def changing(widgets, key: str):
    """The widget of ``ui.views.changing_choice`` named ``key`` (its key has a suffix)."""
    return next(w for w in widgets if w.key and w.key.startswith(f"{key}_"))


def warnings_text(at) -> list[str]:
    return [w.value for w in at.warning]


def png_bytes(pixels: np.ndarray, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def a_seven(size: int = 140) -> np.ndarray:
    """A photo-like '7': dark ink on a light page."""
    page = np.full((size, size), 235, np.uint8)
    s = size // 10
    page[2 * s : 3 * s, 2 * s : 8 * s] = 20  # the bar
    for row in range(3 * s, 9 * s):  # the stem, leaning left as it goes down
        col = 8 * s - (row - 3 * s) // 2
        page[row, col - s : col] = 20
    return page


def canvas_url(canvas: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(canvas, "RGBA").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def draw_a_one(at) -> None:
    at.switch_page(DRAW)
    at.run()
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[..., 3] = 255
    canvas[40:240, 130:150, :3] = 255  # a vertical stroke
    at.session_state["draw_canvas_0"] = {
        "drawing": {"raw": {"objects": [{"type": "path"}]}, "data": canvas_url(canvas)}
    }
    at.run()
    assert not at.exception, at.exception


def open_inside(at) -> None:
    at.switch_page(INSIDE)
    at.run()
    assert not at.exception, at.exception
    assert "Inside" in [h.value for h in at.header]


def assert_every_panel(at) -> None:
    for key in CHARTS:
        assert has_chart(at, key), (key, chart_keys(at))
    assert has_chart(at, "inside_contrast")
    assert any(m.value.startswith("### Prediction: **") for m in at.markdown)


def test_the_drawing_from_the_draw_page_is_explained(app):
    draw_a_one(app)
    open_inside(app)
    assert app.radio(key="inside_source").value == "drawing"
    assert not warnings_text(app)
    assert_every_panel(app)
    # the image shown is the drawing the Draw page preprocessed
    drawn = app.session_state["inside_image"]
    assert drawn is not None and drawn.shape == (28, 28) and drawn.max() > 0


def test_a_test_image_by_number_is_explained_with_its_label(app):
    open_inside(app)
    app.radio(key="inside_source").set_value("test").run()
    app.number_input(key="inside_test_index").set_value(3).run()
    assert not app.exception, app.exception
    assert_every_panel(app)
    assert "Showing test image #3 of MNIST (labelled 0)." in [c.value for c in app.caption]
    # the probability chart marks the true class (MNIST's test image 3 is a 0)
    bars = chart_spec(app, "inside_probs")["data"][0]
    predicted = int(np.argmax(bars["y"]))
    assert bars["marker"]["color"][0] == ("#1f77b4" if predicted == 0 else "#2ca02c")


def test_an_uploaded_png_is_preprocessed_and_explained(app):
    open_inside(app)
    app.radio(key="inside_source").set_value("upload").run()
    assert any("Upload a PNG or JPG" in w for w in warnings_text(app))
    app.file_uploader(key="inside_upload").set_value(
        ("seven.png", png_bytes(a_seven()), "image/png")
    ).run()
    assert not app.exception, app.exception
    assert not warnings_text(app)
    assert_every_panel(app)


def test_an_image_sent_by_another_page_is_explained(app):
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 12:16] = 255
    app.session_state[inside.SENT_KEY] = {"image": image, "label": "a bar", "source": "a test"}
    app.session_state[inside.SOURCE_PREF] = "sent"
    open_inside(app)
    assert app.radio(key="inside_source").value == "sent"
    assert_every_panel(app)


def test_the_counterfactual_reaches_its_target_and_shows_before_change_after(app):
    open_inside(app)
    app.radio(key="inside_source").set_value("test").run()
    changing(app.selectbox, "inside_target").set_value(inside.RUNNER_UP).run()
    app.button(key="inside_cf_go").click().run()
    assert not app.exception, app.exception
    assert any(s.value.startswith("Reached: the network now says") for s in app.success)
    assert has_chart(app, "inside_cf_path")
    # a different image forgets the old result
    app.number_input(key="inside_test_index").set_value(1).run()
    assert not app.success and not has_chart(app, "inside_cf_path")


def test_the_saliency_method_and_the_rival_can_be_chosen(app):
    open_inside(app)
    app.radio(key="inside_source").set_value("test").run()
    first = chart_spec(app, "inside_saliency")["data"][1]["z"]
    app.radio(key="inside_method").set_value("occlusion").run()
    assert not app.exception, app.exception
    assert chart_spec(app, "inside_saliency")["data"][1]["z"] != first
    assert any("blacked out" in c.value for c in app.caption)
    changing(app.selectbox, "inside_rival").set_value(3).run()
    assert "rather than 3" in chart_spec(app, "inside_contrast")["layout"]["title"]["text"]


# ------------------------------------------------------------------------ bad input
def test_an_empty_drawing_gets_one_sentence(app):
    app.session_state["inside_image"] = None
    open_inside(app)
    app.radio(key="inside_source").set_value("drawing").run()
    assert warnings_text(app) == [
        "The drawing on the Draw page is empty: draw a digit there, then come back."
    ]
    assert not app.get("plotly_chart")


def test_a_file_that_is_not_an_image_gets_one_sentence_and_nothing_is_lost(app):
    open_inside(app)
    app.radio(key="inside_source").set_value("upload").run()
    app.file_uploader(key="inside_upload").set_value(
        ("digit.png", b"this is text, not a PNG", "image/png")
    ).run()
    assert not app.exception, app.exception
    assert warnings_text(app) == [
        "“digit.png” is not an image this page can read: upload a PNG or JPG of one digit."
    ]
    app.radio(key="inside_source").set_value("test").run()
    assert_every_panel(app)


def test_a_decompression_bomb_is_refused_from_its_header(app):
    bomb = png_bytes(np.zeros((5000, 5000), np.uint8))  # 25 megapixels, ~25 kB on disk
    assert len(bomb) < 100_000
    open_inside(app)
    app.radio(key="inside_source").set_value("upload").run()
    app.file_uploader(key="inside_upload").set_value(("bomb.png", bomb, "image/png")).run()
    assert not app.exception, app.exception
    (message,) = warnings_text(app)
    assert message.startswith("“bomb.png” is 5,000 x 5,000 pixels, over this page's limit")


def test_a_model_with_another_input_size_gets_one_sentence(app):
    small = MLP(64, (8,), 10, seed=0)
    app.session_state[keys.UPLOADED_MODEL] = LoadedModel(small, tuple("0123456789"), (8, 8))
    open_inside(app)
    app.radio(key="inside_source").set_value("test").run()
    assert warnings_text(app) == [
        "This model takes 64 inputs per image (8x8 images), but this image has 28x28 = 784 "
        "pixels: use a model trained on 28x28 images (train one, or upload one on the "
        "Models page)."
    ]
    assert app.session_state[keys.UPLOADED_MODEL].model is small


# ----------------------------------------------------------------- plain functions
def test_read_image_bytes_refuses_a_bomb_before_decoding(monkeypatch):
    bomb = png_bytes(np.zeros((3000, 3000), np.uint8))
    loads = []
    monkeypatch.setattr(Image.Image, "load", lambda self: loads.append(1))
    with pytest.raises(ValueError, match="3,000 x 3,000 pixels"):
        inside.read_image_bytes(bomb, "b.png", max_pixels=1_000_000)
    assert not loads


def test_read_image_bytes_reads_png_and_jpg_and_refuses_other_formats():
    seven = a_seven()
    assert inside.read_image_bytes(png_bytes(seven), "a.png").shape == seven.shape
    buffer = io.BytesIO()
    Image.fromarray(seven).save(buffer, format="JPEG")
    assert inside.read_image_bytes(buffer.getvalue(), "a.jpg").shape == seven.shape
    buffer = io.BytesIO()
    Image.fromarray(seven).save(buffer, format="GIF")
    with pytest.raises(ValueError, match="is a GIF file, not a PNG or JPG"):
        inside.read_image_bytes(buffer.getvalue(), "a.png")
    with pytest.raises(ValueError, match="damaged or cut short"):
        inside.read_image_bytes(png_bytes(seven)[:200], "cut.png")


def test_show_in_inside_stores_the_image_and_switches_page(monkeypatch):
    fake = types.SimpleNamespace(session_state={"inside_source": "test"}, switched=[])
    fake.switch_page = fake.switched.append
    monkeypatch.setattr(inside, "st", fake)
    image = np.arange(784, dtype=np.uint8).reshape(28, 28)
    inside.show_in_inside(image, "test image #5", "Mistakes")
    sent = fake.session_state[inside.SENT_KEY]
    np.testing.assert_array_equal(sent["image"], image)
    assert sent["label"] == "test image #5" and sent["source"] == "Mistakes"
    assert fake.session_state[inside.SOURCE_PREF] == "sent"
    assert "inside_source" not in fake.session_state
    assert fake.switched == [inside.INSIDE_PAGE]


def test_size_problem_is_none_when_the_sizes_match():
    assert inside.size_problem(MLP(784, (4,), 10), np.zeros((28, 28))) is None
    assert "(8x8 images)" in inside.size_problem(MLP(64, (4,), 10), np.zeros((28, 28)))
    assert "images)" not in inside.size_problem(MLP(50, (4,), 10), np.zeros((28, 28)))


def test_the_network_trained_in_this_session_is_the_one_explained(app):
    train_tiny(app)
    run = app.session_state["run"]
    open_inside(app)
    app.radio(key="inside_source").set_value("test").run()
    assert not app.exception, app.exception
    captions = [c.value for c in app.caption]
    assert any(
        c.startswith("Showing the network trained in this session (784-16-10)") for c in captions
    )
    # one hidden layer of 16 units: every unit drawn, in order
    layer = chart_spec(app, "inside_layer_0")["data"][0]
    assert layer["x"] == [f"u{i}" for i in range(16)]
    # and the first-layer units' images are their weights
    assert any("first-layer weights as an image" in c for c in captions)
    assert app.session_state["run"] is run


def test_a_wide_layer_shows_its_strongest_units_and_summarises_the_rest():
    from ui import inside_figures as figs

    values = np.zeros(512)
    values[[7, 300, 41]] = [3.0, -5.0, 1.0]
    values[100:140] = 0.01
    view = figs.layer_view(values, strongest=3)
    assert view.units.tolist() == [300, 7, 41]
    assert view.values.tolist() == [-5.0, 3.0, 1.0]
    assert view.summary == (
        "512 units, 43 of them not zero. The 3 strongest are drawn; the other 509 are at most "
        "0.01 (mean 0.00079) in size."
    )
    narrow = figs.layer_view(np.array([0.0, 2.0, -1.0]))
    assert narrow.units.tolist() == [0, 1, 2] and narrow.summary == "3 units, 2 of them not zero."


def test_diverging_images_are_red_for_positive_blue_for_negative_white_at_zero():
    from ui import inside_figures as figs

    rgb = figs.diverging_rgb(np.array([[2.0, 0.0, -2.0]]), factor=2)
    assert rgb.shape == (2, 6, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [178, 24, 43]
    assert rgb[0, 2].tolist() == [255, 255, 255]
    assert rgb[0, 4].tolist() == [33, 102, 172]


def test_the_gradient_equation_has_one_factor_per_layer_with_its_shape():
    from ui import inside_figures as figs

    latex = figs.gradient_equation([784, 512, 512, 10])
    for shape in (r"784\times512", r"512\times512", r"512\times 1"):
        assert shape in latex
    assert latex.count("W^{[") == 3 and latex.count("diag") == 2


# ----------------------------------------------------------- from Mistakes and Evaluation
def shown_label(at) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Showing test image #"))


def test_look_inside_on_a_mistake_explains_that_test_image(app):
    app.switch_page("app_pages/mistakes.py").run()
    assert not app.exception, app.exception
    card = next(m.value for m in app.markdown if m.value.startswith("true **"))
    true, predicted = re.match(r"true \*\*(\d)\*\* → predicted \*\*(\d)\*\*", card).groups()
    first = next(b for b in app.button if b.key and b.key.startswith("mistake_inside_"))
    index = int(first.key.rsplit("_", 1)[1])
    first.click().run()
    assert not app.exception, app.exception
    assert "Inside" in [h.value for h in app.header]
    assert app.radio(key="inside_source").value == "sent"
    assert shown_label(app) == (
        f"Showing test image #{index}, a {true} predicted as {predicted} (from Mistakes)."
    )
    assert_every_panel(app)
    assert any(m.value.startswith(f"### Prediction: **{predicted}**") for m in app.markdown)
    # its label travelled with it: the probability bars mark the true class
    assert any("green: the true class" in c.value for c in app.caption)


def test_look_inside_on_evaluation_explains_the_chosen_sample_of_the_cell(app):
    app.switch_page("app_pages/evaluation.py").run()
    assert not app.exception, app.exception
    true = app.selectbox(key="cm_true").value
    predicted = app.selectbox(key="cm_pred").value
    box = app.selectbox(key="cm_inside_index")
    index = box.options[-1]
    box.set_value(int(index.split()[0][1:])).run()
    app.button(key="cm_inside_go").click().run()
    assert not app.exception, app.exception
    assert app.radio(key="inside_source").value == "sent"
    assert shown_label(app) == (
        f"Showing {index.split()[0].replace('#', 'test image #')}, a {true} predicted as "
        f"{predicted} (from Evaluation)."
    )
    assert_every_panel(app)


# --------------------------------------------------------------------------- replay
def test_the_replay_shows_this_image_at_the_end_of_every_epoch(app):
    train_tiny(app, epochs=3)
    run = app.session_state["run"]
    open_inside(app)
    app.radio(key="inside_source").set_value("test").run()
    app.number_input(key="inside_test_index").set_value(7).run()
    assert not app.exception, app.exception
    path = chart_spec(app, "inside_replay_path")["data"]
    assert len(path) == 10 and values(path[0]["x"]).tolist() == [0, 1, 2, 3]
    # Oracle: the kept weights of each epoch, run through a fresh network here.
    image = run.dataset.x_test[7]
    snapshots = run.watch.snapshots
    assert run.model.activation == "relu" and run.model.sizes == (784, 16, 10)
    for epoch in (0, 3):
        (w1, w2), (b1, b2) = layer_views(snapshots.kept[epoch].astype(np.float64), (784, 16, 10))
        z = np.maximum(image.reshape(-1) * run.model.input_scale @ w1 + b1, 0) @ w2 + b2
        expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        got = [values(trace["y"])[epoch] for trace in path]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    # The slider starts at the last epoch; epoch 0 is the untrained network.
    assert changing(app.select_slider, "inside_replay_epoch").value == inside.LATEST
    assert any(c.value.startswith("At the end of epoch 3 it said") for c in app.caption)
    changing(app.select_slider, "inside_replay_epoch").set_value(0).run()
    said = int(np.argmax([values(trace["y"])[0] for trace in path]))
    assert any(c.value.startswith(f"At the end of epoch 0 it said {said} (") for c in app.caption)
    assert has_chart(app, "inside_replay_saliency")
    assert not any("Replay is limited" in i.value for i in app.info)


def test_the_replay_says_when_it_is_limited(app, monkeypatch):
    import functools

    from nn_core.health import watch_training
    from ui import runner

    one = 4 * (784 * 16 + 16 + 16 * 10 + 10)
    monkeypatch.setattr(
        runner, "watch_training", functools.partial(watch_training, snapshot_budget=int(2.5 * one))
    )
    train_tiny(app, epochs=5)
    open_inside(app)
    app.radio(key="inside_source").set_value("test").run()
    assert not app.exception, app.exception
    note = next(i.value for i in app.info if "Replay is limited" in i.value)
    kept = values(chart_spec(app, "inside_replay_path")["data"][0]["x"]).tolist()
    assert kept[0] == 0 and kept[-1] == 5 and len(kept) < 6
    assert f"it kept {len(kept)} of the 6 epoch ends" in note


def test_a_model_from_a_file_says_the_replay_needs_a_run(app):
    open_inside(app)
    app.radio(key="inside_source").set_value("test").run()
    assert any(c.value.startswith("The replay comes with a network trained") for c in app.caption)
