"""AppTest of the Runs page: runs kept, compared, made current, trained again, exported,
imported, deleted; the learning-rate finder and Use this rate."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from nn_core.run_record import load_run
from tests.app.conftest import tiny_settings, train_tiny, wait_for_run
from ui import runs_view

PAGE = "app_pages/runs.py"


class _Upload:
    def __init__(self, name: str, data: bytes) -> None:
        self.name, self._data = name, data

    def getvalue(self) -> bytes:
        return self._data


def _two_runs(app):
    app.sidebar.select_slider(key="cfg_lr").set_value(0.1)
    train_tiny(app)
    app.sidebar.select_slider(key="cfg_lr").set_value(0.01)
    app.sidebar.button(key="btn_start").click()
    app.run()
    wait_for_run(app)
    app.switch_page(PAGE)
    app.run()
    assert not app.exception, app.exception
    return app.session_state["run_history"]


def _spec(app, index: int = 0) -> dict:
    return json.loads(app.get("plotly_chart")[index].proto.spec)


@pytest.fixture
def two(app):
    return app, _two_runs(app)


def test_two_starts_keep_two_runs_overlaid_with_a_settings_diff(two):
    app, history = two
    assert [e.status for e in history.entries] == ["finished", "finished"]
    first, second = history.entries
    assert first.run is None and first.record.model is not None  # frozen, network kept
    assert second.run is app.session_state["run"]  # the current run stays live
    table = app.dataframe[0].value
    assert list(table["status"]) == ["finished", "finished"]
    assert table["test acc"].iloc[0].endswith("%")
    names = [t["name"] for t in _spec(app)["data"]]
    assert names == [first.name, first.name, second.name, second.name]  # loss, accuracy
    diff = app.table[0].value
    assert "lr" in diff.index and list(diff.loc["lr"]) == ["0.1", "0.01"]
    assert "epochs" not in diff.index  # only what differs
    app.radio(key="runs_x_axis").set_value("images seen").run()
    xs = _spec(app)["data"][1]["x"]  # the first run's validation points, one per epoch
    assert xs[-1] == pytest.approx(first.record.metrics["n_train"])


def test_train_again_gives_the_same_numbers_and_make_current(two):
    app, history = two
    first = history.entries[0]
    app.selectbox(key="run_pick").set_value(first.id).run()
    app.button(key="btn_run_again").click().run()
    wait_for_run(app)
    again = history.entries[-1]
    assert len(history.entries) == 3 and app.session_state["cfg_lr"] == pytest.approx(0.1)
    rerun = again.run.trainer.history
    assert rerun.batch_loss == first.record.history["batch_loss"]
    # Make the first run current: the other pages show its network.
    app.selectbox(key="run_pick").set_value(first.id).run()
    app.button(key="btn_run_current").click().run()
    assert app.session_state["run"] is None
    shown = app.session_state["uploaded_model"].model
    x = np.random.default_rng(0).integers(0, 255, (20, 784)).astype(np.uint8)
    np.testing.assert_array_equal(shown.predict(x), first.record.model.predict(x))
    assert "current model" in app.success[0].value


def test_rename_export_import_and_delete(two):
    app, history = two
    first = history.entries[0]
    app.selectbox(key="run_pick").set_value(first.id).run()
    app.text_input(key=f"run_name_{first.id}").input("fast one").run()
    assert first.name == "fast one" and "fast one" in list(app.dataframe[0].value["name"])
    exported = runs_view.run_file(first)
    assert load_run(exported).name == "fast one"
    kind, _ = runs_view.import_into(history, [_Upload("fast.zip", exported)], 10**9)
    assert kind == "success" and len(history.entries) == 3
    assert history.entries[-1].record.metrics == first.record.metrics
    kind, text = runs_view.import_into(history, [_Upload("notes.zip", b"PK\x03\x04 bad")], 10**9)
    assert kind == "error" and "notes.zip" in text and len(history.entries) == 3
    kind, text = runs_view.import_into(history, [_Upload("cat.zip", b"GIF89a")], 10**9)
    assert kind == "error" and "not a digitlab run file" in text
    app.run()
    assert len(app.dataframe[0].value) == 3
    app.multiselect(key="runs_selected").set_value([first.id]).run()
    app.button(key="btn_runs_delete").click().run()
    assert history.entries[-1].name == "fast one"  # the imported copy stays
    assert first.id not in [e.id for e in history.entries] and len(history.entries) == 2


def test_learning_rate_finder_and_use_this_rate(app):
    app.sidebar.selectbox(key="cfg_subset").set_value(2000).run()
    app.switch_page(PAGE)
    app.run()
    app.button(key="btn_find_lr").click().run()
    assert not app.exception, app.exception
    result = app.session_state["lr_finder_result"]
    assert result.suggested_lr is not None
    fig = _spec(app)
    assert fig["layout"]["xaxis"]["type"] == "log"
    assert any(t["name"].startswith("suggested") for t in fig["data"])
    app.button(key="btn_use_lr").click().run()
    lr = app.session_state["cfg_lr"]
    assert lr in runs_view.LR_SETTING.choices
    assert abs(np.log10(lr) - np.log10(result.suggested_lr)) <= 0.5
    assert "learning rate is set to" in app.success[0].value


def _sweep_done(app, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.run()
        job = app.session_state["sweep_job"]
        if job.done and job.collected == len(job.results):
            app.run()
            return
        time.sleep(0.3)
    raise AssertionError("the sweep did not finish in time")


def test_a_small_sweep_lands_in_the_history_with_a_line_per_setting(app):
    tiny_settings(app)
    app.switch_page(PAGE)
    app.run()
    app.text_input(key="sweep_grid").input("lr=0.01,0.1").run()
    app.text_input(key="sweep_seeds").input("0,1").run()
    app.button(key="btn_sweep_start").click().run()
    assert not app.exception, app.exception
    _sweep_done(app)
    history = app.session_state["run_history"]
    names = sorted(e.name for e in history.entries)
    assert names == [f"sweep: lr={lr} seed={s}" for lr in ("0.01", "0.1") for s in (0, 1)]
    assert all(e.status == "finished" and e.record.model is not None for e in history.entries)
    results = app.dataframe[-1].value  # the sweep's results, below the runs table
    assert len(results) == 4 and set(results["lr"]) == {"0.01", "0.1"}
    trace = json.loads(app.get("plotly_chart")[-1].proto.spec)["data"][0]
    assert trace["x"] == ["0.01", "0.1"] and len(trace["error_y"]["array"]) == 2
    # Each run trained with its own learning rate and seed.
    configs = {(e.record.config.lr, e.record.config.seed) for e in history.entries}
    assert configs == {(0.01, 0), (0.01, 1), (0.1, 0), (0.1, 1)}


@pytest.mark.parametrize(
    ("grid", "needle"),
    [
        ("lr=0.001,0.01,0.1 hidden=8,16,32,64,128", "the cap is 12 runs"),
        ("lr=abc", "lr=abc: not a number."),
        ("lr=50", "learning rate must be between"),
        ("colour=red", "'colour' is not a setting"),
    ],
)
def test_a_bad_sweep_grid_gets_one_message_and_trains_nothing(app, grid, needle):
    app.switch_page(PAGE)
    app.run()
    app.text_input(key="sweep_grid").input(grid).run()
    app.button(key="btn_sweep_start").click().run()
    assert not app.exception, app.exception
    assert any(needle in e.value for e in app.error), [e.value for e in app.error]
    assert "sweep_job" not in app.session_state
