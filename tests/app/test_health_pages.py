"""AppTest: the Network page's tabs (health, hidden space, units), the "Show me" lessons
started by their buttons and by a link, and the Weights page's way into a unit."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from nn_core import hidden_space as hs
from nn_core.lessons import LESSONS
from tests.app.conftest import train_tiny, wait_for_run
from ui import health as health_ui
from ui import hidden_space as hidden_space_ui
from ui import share

NETWORK = "app_pages/network.py"
WEIGHTS = "app_pages/weights.py"


def open_network(at, tab: str | None = None) -> None:
    at.switch_page(NETWORK)
    if tab is not None:
        at.session_state["net_tab"] = tab
    at.run()
    assert not at.exception, at.exception
    assert "Network" in [h.value for h in at.header]


def charts(at) -> dict[str, dict]:
    """Every Plotly chart on the page by its key, as its figure JSON."""
    out = {}
    for chart in at.get("plotly_chart"):
        key = chart.proto.id.rsplit("-", 1)[-1]
        out[key] = json.loads(chart.proto.spec)
    return out


def array(field) -> np.ndarray:
    """A figure's array, written by Plotly as a list or as base64 ``{dtype, bdata, shape}``."""
    if isinstance(field, dict):
        flat = np.frombuffer(base64.b64decode(field["bdata"]), dtype=field["dtype"])
        shape = field.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.asarray(field)


def title(figure: dict) -> str:
    return figure["layout"]["title"]["text"]


def run_lesson(at, name: str) -> None:
    open_network(at)
    at.button(key=f"lesson_{name}").click().run()
    assert not at.exception, at.exception
    wait_for_run(at, timeout=600)
    assert not at.exception, at.exception


@pytest.fixture
def trained(app):
    train_tiny(app, epochs=2)
    return app


# -------------------------------------------------------------------------- health
def test_health_without_a_run_offers_the_lessons(app):
    open_network(app)
    keys = {b.key for b in app.button}
    assert {f"lesson_{name}" for name in LESSONS} <= keys
    assert any("run a lesson above" in i.value for i in app.info)
    assert not app.warning and "health_gradients" not in charts(app)


def test_the_dead_units_lesson_sets_the_sidebar_trains_and_points_at_the_evidence(app):
    run_lesson(app, "dead")
    ss = app.session_state
    lesson = LESSONS["dead"]
    assert (ss["cfg_lr"], ss["cfg_optimizer"], ss["cfg_subset"]) == (1.0, "sgd", 5000)
    assert ss["cfg_preset"] == "custom" and ss["run"].config == lesson.config
    assert app.query_params["lesson"] == "dead" and app.query_params["lr"] == "1"
    errors = [e.value for e in app.error]
    started = [e for e in errors if e.startswith("**Training diverged.** It started in layer")]
    assert started and "(#updates)" in started[0], errors
    assert any(
        w.value.startswith("**More than half of the units are dead.**") and "(#units)" in w.value
        for w in app.warning
    )
    assert any("Lesson: Dead ReLUs and divergence** (done)" in i.value for i in app.info)
    figures = charts(app)
    names = [t.get("name") for t in figures["health_updates"]["data"]]
    assert "divergence started" in names
    dead = [t for t in figures["health_units"]["data"] if t["name"].startswith("hidden layer")]
    assert max(array(t["y"]).max() for t in dead) > 0.5


def test_the_overfitting_lesson_warns_and_draws_the_losses(app):
    run_lesson(app, "overfitting")
    warnings = [w.value for w in app.warning]
    assert any(w.startswith("**The network is overfitting.**") for w in warnings), warnings
    assert any("(#losses)" in w for w in warnings)
    losses = charts(app)["health_losses"]["data"]
    assert [t["name"] for t in losses] == [
        "training loss", "validation loss", "lowest validation loss",
    ]  # fmt: skip
    assert app.session_state["run"].settings["training images"] == 1000


def test_health_panels_of_an_ordinary_run_and_the_histogram_slider(trained):
    at = trained
    open_network(at)
    assert any(s.value.startswith("No warning") for s in at.success)
    figures = charts(at)
    for key in ("health_gradients", "health_updates", "health_units", "health_losses",
                "health_histograms"):  # fmt: skip
        assert key in figures, figures.keys()
    assert [t["name"] for t in figures["health_gradients"]["data"]] == ["layer 1", "layer 2"]
    slider = at.select_slider(key="health_hist_at")
    assert slider.value == slider.options[-1]  # the newest record
    slider.set_value(slider.options[0]).run()
    at.radio(key="health_hist_kind").set_value("activations").run()
    figure = charts(at)["health_histograms"]
    assert title(figure).startswith("Activations A (probe images) at epoch 0.0")
    at.radio(key="health_grad_kind").set_value("raw").run()
    assert title(charts(at)["health_gradients"]).startswith("Gradient norm")


def test_a_lesson_link_restores_its_settings_and_offers_to_run_it(app):
    from streamlit.testing.v1 import AppTest

    from tests.app.conftest import APP

    at = AppTest.from_file(APP, default_timeout=60)
    query = health_ui.lesson_query(LESSONS["overfitting"])
    assert query["lesson"] == "overfitting" and query["n"] == "1000"
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    open_network(at)
    assert at.session_state["cfg_subset"] == 1000 and at.session_state["cfg_batch"] == 32
    assert any("This link opens a lesson: Overfitting" in i.value for i in at.info)
    assert "lesson_offered" in {b.key for b in at.button}
    # the link's settings are the lesson's, through the share link's own parser
    parsed = share.from_query(query, health_ui.keys.get_limits())
    assert not parsed.replaced and parsed.values["cfg_activation"] == "relu"


# --------------------------------------------------------------------- hidden space
def test_hidden_space_replays_epochs_and_marks_mistakes(trained):
    at = trained
    open_network(at, "Hidden space")
    replay = next(s for s in at.select_slider if s.key.startswith("hs_epoch_"))
    assert replay.options == ["epoch 0", "epoch 1", "epoch 2", "now"] and replay.value == "now"
    figure = charts(at)["hs_map"]
    names = [t["name"] for t in figure["data"]]
    assert [n for n in names if n.isdigit()] == [str(d) for d in range(10)]
    # the crosses are exactly the sample's images the network gets wrong now
    run = at.session_state["run"]
    _, images, labels = hidden_space_ui.sample(run.dataset)
    wrong = np.flatnonzero(run.model.predict(images) != labels)
    crosses = [t for t in figure["data"] if t["name"].endswith(": mistakes")]
    assert len(crosses) == 10 and all(t["marker"]["symbol"] == "x-thin-open" for t in crosses)
    shown = np.concatenate([array(t["customdata"]).ravel() for t in crosses])
    np.testing.assert_array_equal(np.sort(shown), wrong)
    assert f"mistakes ({wrong.size})" in names
    replay.set_value(1).run()
    assert title(charts(at)["hs_map"]).startswith("Hidden layer 1: PCA, end of epoch 1")
    assert not at.exception


def _thin_epoch_one(run) -> None:
    """What the training thread does when the budget fills: a new ``kept`` without the
    epoch at odd positions (here epoch 1)."""
    snapshots = run.watch.snapshots
    snapshots.kept = {e: p for e, p in snapshots.kept.items() if e != 1}
    snapshots.thinned = True


def _pick_epoch_one(at):
    replay = next(s for s in at.select_slider if s.key.startswith("hs_epoch_"))
    assert "epoch 1" in replay.options
    return replay.set_value(1)


def test_hidden_space_survives_epochs_thinned_after_the_frames_were_listed(trained, monkeypatch):
    # The page lists the snapshots for the frames, then builds the shown epoch's model:
    # the training thread may drop that epoch in between.
    at = trained
    open_network(at, "Hidden space")
    run, listed = at.session_state["run"], hidden_space_ui.frames_for

    def listed_then_thinned(*args, **kwargs):
        found = listed(*args, **kwargs)
        _thin_epoch_one(run)
        return found

    monkeypatch.setattr(hidden_space_ui, "frames_for", listed_then_thinned)
    _pick_epoch_one(at).run()
    assert not at.exception, at.exception
    assert title(charts(at)["hs_map"]).startswith("Hidden layer 1: PCA, end of epoch 1")


def test_hidden_space_shows_the_nearest_epoch_when_the_chosen_one_was_thinned(trained, monkeypatch):
    # The slider offered epoch 1; it was dropped before the frames were listed.
    at = trained
    open_network(at, "Hidden space")
    run, listed = at.session_state["run"], hidden_space_ui.frames_for

    def thinned_then_listed(*args, **kwargs):
        _thin_epoch_one(run)
        return listed(*args, **kwargs)

    monkeypatch.setattr(hidden_space_ui, "frames_for", thinned_then_listed)
    _pick_epoch_one(at).run()
    assert not at.exception, at.exception
    assert title(charts(at)["hs_map"]).startswith("Hidden layer 1: PCA, end of epoch 2")
    captions = [c.value for c in at.caption]
    assert any("epoch 1 were dropped" in c and "end of epoch 2 instead" in c for c in captions)


def test_hidden_space_shows_the_drawing(trained):
    at = trained
    at.session_state["inside_image"] = np.zeros((28, 28), np.uint8) + 200
    open_network(at, "Hidden space")
    drawing = [t for t in charts(at)["hs_map"]["data"] if t["name"] == "your drawing"]
    assert len(drawing) == 1 and drawing[0]["marker"]["symbol"] == "star"


def test_hidden_space_computes_tsne_on_request_in_stages(trained, monkeypatch):
    # t-SNE of 2,000 points takes seconds to minutes on a busy machine: here its stages are
    # PCA coordinates (nn_core.hidden_space's own tests run the real one).
    calls = []

    def stages(h, seed=0, stages=hs.TSNE_STAGES, perplexity=30.0, resume=None):
        calls.append((h.shape, resume))
        for stage in range(resume[0] if resume else 0, stages):
            yield h[:, :2] * (stage + 1)

    monkeypatch.setattr(hs, "tsne_stages", stages)
    at = trained
    open_network(at, "Hidden space")
    at.radio(key="hs_method").set_value("tsne").run()
    assert "hs_map" not in charts(at) and "hs_tsne_go" in {b.key for b in at.button}
    assert not calls  # nothing computed before the click
    at.button(key="hs_tsne_go").click().run()
    assert not at.exception, at.exception
    assert calls == [((2000, 16), None)]
    assert title(charts(at)["hs_map"]) == "Hidden layer 1: t-SNE, now"
    at.run()  # kept: not computed again
    assert len(calls) == 1 and "hs_map" in charts(at)


def test_hidden_space_of_the_starter_model_has_no_replay(app):
    open_network(app, "Hidden space")
    assert not [s for s in app.select_slider if s.key.startswith("hs_epoch")]
    assert any("Replay over epochs comes with a network trained" in c.value for c in app.caption)
    app.selectbox(key="hs_layer").set_value(1).run()
    assert title(charts(app)["hs_map"]).startswith("Hidden layer 2: PCA, now")


# --------------------------------------------------------------------------- units
def test_units_tab_shows_an_output_unit(app):
    open_network(app, "What units look for")
    app.selectbox(key="units_layer").set_value(2).run()
    app.number_input(key="units_unit").set_value(3).run()
    assert not app.exception, app.exception
    captions = [c.value for c in app.caption]
    assert any(c.startswith("Output unit 3 (class 3).") for c in captions), captions
    assert any("its response rose from" in c for c in captions)
    assert len(app.get("image")) == 2  # the synthesised input and the top-16 mosaic


def test_the_weights_page_opens_a_unit_in_the_units_tab(app):
    app.switch_page(WEIGHTS)
    app.run()
    app.number_input(key="w_unit").set_value(7).run()
    app.button(key="w_open_unit").click().run()
    assert not app.exception, app.exception
    assert "Network" in [h.value for h in app.header]
    ss = app.session_state
    assert (ss["net_tab"], ss["units_layer"], ss["units_unit"]) == ("What units look for", 0, 7)
    assert any(c.value.startswith("Unit 7 of hidden layer 1.") for c in app.caption)
