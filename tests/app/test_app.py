"""AppTest: the entry point and every page, fresh and after a short training, and the
sidebar's effect on the trained network."""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest
from conftest import APP, tiny_settings, train_tiny, wait_for_run
from streamlit.testing.v1 import AppTest

from nn_core import PRESETS
from ui import state as keys

PAGES = {
    "app_pages/training.py": "Training",
    "app_pages/weights.py": "Weights",
    "app_pages/evaluation.py": "Evaluation",
    "app_pages/mistakes.py": "Mistakes",
    "app_pages/draw.py": "Draw",
    "app_pages/models.py": "Models",
}


def _headers(at: AppTest) -> list[str]:
    return [h.value for h in at.header]


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_runs_fresh(app, path):
    app.switch_page(path)
    app.run()
    assert not app.exception, app.exception
    assert PAGES[path] in _headers(app)
    assert app.sidebar.button(key="btn_start").disabled is False


def test_every_page_after_a_short_training(app):
    train_tiny(app)
    run = app.session_state["run"]
    assert run.finished and run.trainer.epochs_done == 1
    assert any("Test accuracy" in s.value for s in app.success)
    assert len(app.get("plotly_chart")) >= 2
    for path, title in PAGES.items():
        app.switch_page(path)
        app.run()
        assert not app.exception, (path, app.exception)
        assert title in _headers(app)
    # The run survives the page changes.
    assert app.session_state["run"] is run


def test_sidebar_controls_change_the_network(app):
    app.sidebar.selectbox(key="cfg_subset").set_value(2000)
    app.sidebar.number_input(key="cfg_layers").set_value(2)
    app.run()
    app.sidebar.number_input(key="cfg_h0").set_value(24)
    app.sidebar.number_input(key="cfg_h1").set_value(8)
    app.sidebar.selectbox(key="cfg_activation").set_value("tanh")
    app.sidebar.selectbox(key="cfg_optimizer").set_value("sgd")
    app.sidebar.selectbox(key="cfg_batch").set_value(64)
    app.run()
    assert app.session_state["cfg_preset"] == "custom"
    app.sidebar.button(key="btn_step").click()
    app.run()
    assert not app.exception, app.exception
    run = app.session_state["run"]
    assert run.model.sizes == (784, 24, 8, 10)
    assert run.model.activation == "tanh"
    assert run.config.optimizer == "sgd" and run.config.batch_size == 64
    assert len(run.trainer.history.batch_loss) == 1
    assert len(run.trainer.train_idx) + len(run.trainer.y_val) == 2000


def test_preset_sets_the_widgets(app):
    app.sidebar.selectbox(key="cfg_preset").set_value("notebook")
    app.run()
    ss = app.session_state
    assert ss["cfg_layers"] == 1 and ss["cfg_h0"] == 10
    assert ss["cfg_optimizer"] == "gd" and ss["cfg_batch"] == 0
    assert ss["cfg_lr"] == pytest.approx(0.1) and ss["cfg_epochs"] == 500
    assert ss["cfg_val"] == pytest.approx(0.4)
    assert app.sidebar.number_input(key="cfg_val_every").value == 10
    assert keys.config_from_state(ss) == PRESETS["notebook"]


def test_stop_keeps_the_model_and_continue_resumes(app):
    tiny_settings(app, hidden=32, epochs=30, subset=20000)
    app.sidebar.button(key="btn_start").click()
    app.run()
    run = app.session_state["run"]
    deadline = time.monotonic() + 30
    while not run.trainer.history.batch_loss and time.monotonic() < deadline:
        time.sleep(0.1)
    app.sidebar.button(key="btn_stop").click()
    started = time.monotonic()
    app.run()
    while run.active and time.monotonic() - started < 5:
        time.sleep(0.05)
    assert not run.active
    done = len(run.trainer.history.batch_loss)
    assert done > 0 and not run.finished
    app.run()
    assert app.session_state["run"] is run  # kept, not reset
    weights = run.model.weights[0].copy()
    app.sidebar.button(key="btn_continue").click()
    app.run()
    time.sleep(0.5)
    app.sidebar.button(key="btn_stop").click()
    app.run()
    wait_for_run(app)
    assert len(run.trainer.history.batch_loss) > done
    assert not np.array_equal(weights, run.model.weights[0])


def test_reset_drops_the_run(app):
    train_tiny(app)
    app.sidebar.button(key="btn_reset").click()
    app.run()
    assert app.session_state["run"] is None
    assert not app.exception


def test_bad_dataset_upload_shows_message_and_keeps_model(app):
    train_tiny(app)
    run = app.session_state["run"]
    app.sidebar.radio(key="data_source").set_value("upload")
    app.run()
    uploader = app.sidebar.get("file_uploader")[0]
    uploader.set_value(("broken.csv", b"label,pixel0\n3,abc\n", "text/csv"))
    app.run()
    assert not app.exception, app.exception
    errors = [e.value for e in app.sidebar.error]
    assert errors and "broken.csv" in errors[0]
    assert app.session_state["run"] is run
    for path in PAGES:
        app.switch_page(path)
        app.run()
        assert not app.exception, (path, app.exception)


def test_good_csv_upload_trains_on_it(app):
    rng = np.random.default_rng(0)
    rows = ["label," + ",".join(f"pixel{i}" for i in range(784))]
    for k in range(60):
        pixels = rng.integers(0, 256, 784)
        rows.append(f"{k % 3}," + ",".join(map(str, pixels)))
    app.sidebar.radio(key="data_source").set_value("upload")
    app.run()
    app.sidebar.get("file_uploader")[0].set_value(
        ("three.csv", "\n".join(rows).encode(), "text/csv")
    )
    app.run()
    assert not app.exception, app.exception
    assert app.session_state["uploaded_dataset"].n_classes == 3
    app.sidebar.button(key="btn_step").click()
    app.run()
    assert app.session_state["run"].model.sizes[-1] == 3


def test_bad_model_upload_shows_message_and_keeps_model(app):
    train_tiny(app)
    run = app.session_state["run"]
    app.switch_page("app_pages/models.py")
    app.run()
    app.get("file_uploader")[0].set_value(("model.npz", b"not a zip at all", "application/zip"))
    app.run()
    assert not app.exception, app.exception
    assert any("model.npz" in e.value for e in app.error)
    assert app.session_state["run"] is run
    assert app.session_state["uploaded_model"] is None


def test_model_download_then_upload_round_trip(app):
    train_tiny(app)
    from ui.models import model_bytes

    data = model_bytes(app.session_state["run"])
    fresh = AppTest.from_file(APP, default_timeout=60)
    fresh.run()
    fresh.switch_page("app_pages/models.py")
    fresh.run()
    fresh.get("file_uploader")[0].set_value(("mine.npz", data, "application/zip"))
    fresh.run()
    assert not fresh.exception, fresh.exception
    assert fresh.session_state["uploaded_model"].model.sizes == (784, 16, 10)
    fresh.switch_page("app_pages/evaluation.py")
    fresh.run()
    assert not fresh.exception
    assert any("uploaded model" in c.value for c in fresh.caption)


def test_share_link_restores_settings():
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"h": "32-16", "a": "sigmoid", "o": "sgd", "lr": "0.1", "e": "4"})
    at.run()
    assert not at.exception, at.exception
    ss = at.session_state
    assert ss["cfg_layers"] == 2 and ss["cfg_h0"] == 32 and ss["cfg_h1"] == 16
    assert ss["cfg_activation"] == "sigmoid" and ss["cfg_optimizer"] == "sgd"
    assert ss["cfg_lr"] == pytest.approx(0.1) and ss["cfg_epochs"] == 4
    assert ss["cfg_preset"] == "custom"


def _png_data_url(image: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image, "RGBA").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_draw_page_predicts_a_drawing(app):
    app.switch_page("app_pages/draw.py")
    app.run()
    assert not app.exception, app.exception
    assert any("Prediction: –" in m.value for m in app.markdown)
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[..., 3] = 255
    canvas[40:240, 130:150, :3] = 255  # a vertical stroke: a "1"
    app.session_state["draw_canvas_0"] = {
        "drawing": {"raw": {"objects": [{"type": "path"}]}, "data": _png_data_url(canvas)}
    }
    app.run()
    assert not app.exception, app.exception
    predictions = [m.value for m in app.markdown if m.value.startswith("### Prediction")]
    assert predictions and predictions[0] != "### Prediction: –"


def test_share_link_with_a_preset_sets_its_widgets():
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"p": "notebook", "e": "20"})
    at.run()
    assert not at.exception, at.exception
    ss = at.session_state
    assert ss["cfg_preset"] == "notebook" and ss["cfg_optimizer"] == "gd"
    assert ss["cfg_h0"] == 10 and ss["cfg_epochs"] == 20


def _heatmap_z(at: AppTest, key: str) -> np.ndarray:
    """The z values of the heatmap chart with this key (plotly sends them base64-packed)."""
    for chart in at.get("plotly_chart"):
        if chart.proto.id.endswith(key) or key in chart.proto.id:
            z = json.loads(chart.proto.spec)["data"][0]["z"]
            if isinstance(z, dict):
                shape = [int(s) for s in str(z["shape"]).split(",")]
                return np.frombuffer(base64.b64decode(z["bdata"]), z["dtype"]).reshape(shape)
            return np.asarray(z, dtype=float)
    raise AssertionError(f"no chart {key}")


def test_weights_page_shows_unit_and_change_since_init(app):
    train_tiny(app)
    app.switch_page("app_pages/weights.py")
    app.run()
    run = app.session_state["run"]
    live = run.model.weights[0][:, 0].reshape(28, 28)
    unit = _heatmap_z(app, "unit_in_chart")
    np.testing.assert_allclose(unit, live, atol=1e-3)
    app.radio(key="w_view").set_value("change")
    app.run()
    assert not app.exception, app.exception
    change = live - run.trainer.snapshots[0][:, 0].reshape(28, 28).astype(np.float32)
    np.testing.assert_allclose(_heatmap_z(app, "unit_in_chart"), change, atol=1e-3)


def test_share_link_with_bad_values_works_and_names_them():
    at = AppTest.from_file(APP, default_timeout=60)
    bad = {"e": "inf", "b": "1e400", "seed": "nan", "n": "9" * 400, "ve": "-1", "sh": "1e999"}
    at.query_params.update({**bad, "lr": "abc", "h": "64"})
    at.run()
    assert not at.exception, at.exception
    assert at.sidebar.button(key="btn_start").disabled is False
    ss = at.session_state
    assert (ss["cfg_epochs"], ss["cfg_batch"], ss["cfg_seed"]) == (500, 1024, 0)
    assert (ss["cfg_subset"], ss["cfg_val_every"], ss["cfg_shift"]) == (20000, 1, 4)
    assert ss["cfg_lr"] == pytest.approx(1e-3) and ss["cfg_h0"] == 64
    (warning,) = [w.value for w in at.sidebar.warning]
    for key, raw in {**bad, "lr": "abc"}.items():
        assert f"{key}={raw[:24]}" in warning, key
    assert "e=inf is above this server's cap, 500, so 500 is used" in warning
    assert "lr=abc is not a number, so 0.001 is used" in warning
    assert at.query_params["e"] == "500"  # the link in the address bar is the one in use


def test_a_typed_number_out_of_bounds_is_replaced_and_said(app):
    epochs = app.sidebar.number_input(key="cfg_epochs")
    epochs.set_value(-3)
    app.run()
    assert not app.exception, app.exception
    assert app.sidebar.number_input(key="cfg_epochs").value == 1
    assert [w.value for w in app.sidebar.warning] == [
        "Epochs: -3 is below the minimum, 1; it is set to 1."
    ]
    app.sidebar.number_input(key="cfg_h0").set_value(100000)
    app.run()
    assert app.sidebar.number_input(key="cfg_h0").value == 512
    assert [w.value for w in app.sidebar.warning] == [
        "Units in hidden layer 1: 100000 is above this server's cap, 512; it is set to 512."
    ]
    app.sidebar.selectbox(key="cfg_subset").set_value(2000)
    app.sidebar.button(key="btn_step").click()
    app.run()
    run = app.session_state["run"]
    assert run.config.epochs == 1 and run.model.sizes[1] == 512  # what the boxes show
    app.sidebar.number_input(key="more_epochs").set_value(0)
    app.run()
    assert app.sidebar.number_input(key="more_epochs").value == 1
    assert [w.value for w in app.sidebar.warning] == [
        "More epochs (Continue): 0 is below the minimum, 1; it is set to 1."
    ]


def test_the_address_follows_the_settings_so_a_reload_keeps_them():
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"p": "notebook", "e": "20"})
    at.run()
    at.sidebar.number_input(key="cfg_epochs").set_value(7)
    at.run()
    assert at.query_params["e"] == "7" and at.query_params["p"] == "custom"
    reloaded = AppTest.from_file(APP, default_timeout=60)
    reloaded.query_params.update(dict(at.query_params))
    reloaded.run()
    assert not reloaded.exception, reloaded.exception
    ss = reloaded.session_state
    assert ss["cfg_epochs"] == 7 and ss["cfg_optimizer"] == "gd" and ss["cfg_h0"] == 10
    assert not reloaded.sidebar.warning  # the synced link holds only usable values
