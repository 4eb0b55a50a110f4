"""The Streamlit-free helpers: charts, share links, limits, the training queue."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from nn_core import PRESETS, TrainConfig
from ui import charts, share
from ui import state as keys
from ui.how_it_works import shapes_rows
from ui.limits import ENV_DEFAULTS, get_limits
from ui.runner import TrainingGate, history_view


def test_weight_tiles_layout_and_scaling():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(784, 10)).astype(np.float32)
    grid, limit, cols = charts.weight_tiles(w, (28, 28), "shared")
    rows, cols2 = charts.grid_shape(10)
    assert cols == cols2 == 4 and rows == 3
    assert grid.shape == (3 * 29 - 1, 4 * 29 - 1)
    assert limit == pytest.approx(np.abs(w).max())
    # Unit 5 sits in row 1, column 1.
    np.testing.assert_allclose(grid[29:57, 29:57], w[:, 5].reshape(28, 28))
    per_unit, limit_u, _ = charts.weight_tiles(w, (28, 28), "unit")
    assert limit_u == pytest.approx(1.0)
    assert np.abs(per_unit[29:57, 29:57]).max() == pytest.approx(1.0)


def test_unit_at_inverts_the_tiling():
    for unit in range(10):
        r, c = divmod(unit, 4)
        assert charts.unit_at(c * 29 + 3, r * 29 + 27, (28, 28), 4, 10) == unit
    assert charts.unit_at(28, 0, (28, 28), 4, 10) is None  # the gap
    assert charts.unit_at(3 * 29 + 1, 2 * 29 + 1, (28, 28), 4, 10) is None  # past unit 9


def test_weights_grid_figure_is_light_and_centred():
    w = np.random.default_rng(1).normal(size=(784, 128)).astype(np.float32)
    fig = charts.weights_grid_figure(w, (28, 28), "shared", selected=3)
    heatmap = fig.data[0]
    assert heatmap.zmid == 0 and heatmap.colorscale[0][1] != heatmap.colorscale[-1][1]
    assert np.asarray(heatmap.z).dtype == np.int8
    assert len(fig.to_json()) < 400_000
    assert fig.layout.shapes  # the selected unit is outlined


def test_confusion_figure_normalises_rows():
    cm = np.array([[8, 2], [1, 9]])
    fig = charts.confusion_figure(cm, ["a", "b"], normalise=True)
    assert fig.data[0].text[0][0] == "80.0%"
    counts = charts.confusion_figure(cm, ["a", "b"])
    assert counts.data[0].text[1][1] == "9"


def test_downsample_keeps_the_mean():
    x = np.arange(10_000, dtype=float)
    y = np.sin(x)
    xs, ys = charts.downsample(x, y, 100)
    assert len(xs) == 100 and ys.mean() == pytest.approx(y.mean(), abs=1e-9)
    xs, _ = charts.downsample(x[:50], y[:50], 100)
    assert len(xs) == 50


def test_curve_and_probability_figures():
    class H:
        batch_progress = np.linspace(0.1, 2, 20)
        batch_loss = np.linspace(2, 0.2, 20)
        batch_accuracy = np.linspace(0.1, 0.9, 20)
        epoch = np.array([1.0, 2.0])
        train_loss = np.array([1.0, 0.3])
        val_loss = np.array([np.nan, np.nan])
        train_accuracy = np.array([0.5, 0.9])
        val_accuracy = np.array([0.6, 0.9])

    loss = charts.curve_figure(H, "loss")
    assert [t.name for t in loss.data] == ["train loss (per batch)", "train loss (epoch)"]
    acc = charts.curve_figure(H, "accuracy")
    assert len(acc.data) == 3
    H.epoch = np.array([1.0, 2.0, 3.0])
    H.train_accuracy = np.array([0.5, 0.8, 0.9])
    H.val_accuracy = np.array([np.nan, 0.7, 0.85])  # epoch 1 not validated (val_every)
    val = charts.curve_figure(H, "accuracy").data[-1]
    assert list(val.x) == [2.0, 3.0] and list(val.y) == [0.7, 0.85]
    probs = charts.probability_figure(np.array([0.1, 0.7, 0.2]), ["0", "1", "2"], true=2)
    assert list(probs.data[0].marker.color) == ["#9ecae1", "#d62728", "#2ca02c"]


def test_share_round_trip():
    limits = get_limits({})
    state = keys.widget_values(PRESETS["accurate"], limits)
    state.update(cfg_preset="accurate", cfg_subset=5000)
    found = share.from_query(share.to_query(state), limits)
    assert found.replaced == ()
    assert found.values["cfg_layers"] == 2 and found.values["cfg_h1"] == 128
    for key, value in found.values.items():
        assert state[key] == value, key
    linked = {s.key for s in share.LINKED} | {"cfg_preset", "cfg_h0", "cfg_h1"}
    assert set(found.values) == linked  # every setting of the table travels in the link


@pytest.mark.parametrize(
    ("url", "raw", "key", "used", "problem"),
    [
        ("e", "inf", "cfg_epochs", 500, "above this server's cap, 500"),
        ("e", "1e400", "cfg_epochs", 500, "above this server's cap, 500"),
        ("e", "9" * 400, "cfg_epochs", 500, "above this server's cap, 500"),
        ("e", "-3", "cfg_epochs", 1, "below the minimum, 1"),
        ("b", "inf", "cfg_batch", 1024, "above the maximum, 1024"),
        ("seed", "1e400", "cfg_seed", 2**31 - 1, "above the maximum"),
        ("n", "inf", "cfg_subset", 20000, "above the maximum"),
        ("ve", "-inf", "cfg_val_every", 1, "below the minimum, 1"),
        ("sh", "99999999999999999999", "cfg_shift", 4, "above the maximum, 4"),
        ("rot", "1e308", "cfg_rotation", 20.0, "above the maximum, 20"),
        ("lr", "0.0002", "cfg_lr", 3e-4, "not offered"),
        ("d", "0.23", "cfg_dropout", 0.25, "slider's steps"),
    ],
)
def test_share_clamps_every_number_and_says_so(url, raw, key, used, problem):
    limits = get_limits({})
    found = share.from_query({url: raw}, limits)
    assert found.values[key] == used
    (replaced,) = found.replaced
    assert replaced.url == url and replaced.raw == raw and problem in replaced.problem


def test_share_names_each_unusable_value_and_what_is_used():
    limits = get_limits({})
    state = keys.widget_values(PRESETS["fast"], limits)
    found = share.from_query(
        {"a": "evil", "e": "inf", "h": "10-x", "lr": "abc", "d": "0.3", "p": "nope"}, limits
    )
    assert found.values == {"cfg_epochs": 500, "cfg_dropout": 0.3}
    state.update(found.values)
    message = share.replaced_message(found.replaced, state)
    for part in (
        "p=nope is not one of custom",
        "a=evil is not one of relu",
        "so relu is used",
        "e=inf is above this server's cap, 500, so 500 is used",
        "h=10-x is not a list of layer widths such as 128-64, so 128-64 is used",
        "lr=abc is not a number, so 0.001 is used",
    ):
        assert part in message, part
    assert "d=" not in message  # 0.3 was used as given
    assert share.replaced_message((), state) is None


def test_share_shortens_a_long_bad_value_in_the_message():
    found = share.from_query({"e": "x" * 5000}, get_limits({}))
    message = share.replaced_message(found.replaced, {"cfg_epochs": 3})
    assert len(message) < 200 and "e=" + "x" * share.SHOWN_CHARS + "…" in message


def test_config_from_state_matches_the_preset():
    limits = get_limits({})
    for name in ("notebook", "fast", "accurate"):
        state = keys.widget_values(PRESETS[name], limits)
        config = keys.config_from_state(state)
        assert config == PRESETS[name], name


def test_limits_from_environment():
    assert get_limits({}).max_epochs == ENV_DEFAULTS["DIGITLAB_MAX_EPOCHS"]
    limits = get_limits({"DIGITLAB_MAX_CONCURRENT": "5", "DIGITLAB_MAX_WIDTH": "-3"})
    assert limits.max_concurrent == 5
    assert limits.max_width == ENV_DEFAULTS["DIGITLAB_MAX_WIDTH"]
    assert get_limits({"DIGITLAB_MAX_UPLOAD_MB": "2"}).max_upload_bytes == 2 * 1024 * 1024
    # nice 0 is "trainings at the pages' priority", not "unset"
    assert get_limits({"DIGITLAB_TRAINING_NICE": "0"}).training_nice == 0
    assert get_limits({"DIGITLAB_TRAINING_NICE": "-5"}).training_nice == 10
    assert (
        get_limits({"DIGITLAB_MAX_EPOCHS": "0"}).max_epochs == ENV_DEFAULTS["DIGITLAB_MAX_EPOCHS"]
    )


def test_gate_caps_and_queues_in_order():
    gate = TrainingGate(1)
    assert gate.acquire(1, lambda: False)
    order = []

    def wait(token):
        if gate.acquire(token, lambda: False):
            order.append(token)
            time.sleep(0.05)
            gate.release(token)

    second = threading.Thread(target=wait, args=(2,))
    second.start()
    time.sleep(0.05)
    third = threading.Thread(target=wait, args=(3,))
    third.start()
    time.sleep(0.1)
    assert gate.position(2) == 1 and gate.position(3) == 2
    gate.release(1)
    second.join(2)
    third.join(2)
    assert order == [2, 3]
    assert gate.active == 0  # both released their slot
    assert gate.acquire(5, lambda: False) and gate.active == 1
    assert not gate.acquire(6, lambda: True)  # gave up while the slot was taken
    assert gate.active == 1 and gate.position(6) == 0  # and left the queue
    gate.release(5)
    assert gate.active == 0


def test_history_view_is_consistent():
    from nn_core import History

    h = History(batch_progress=[0.1, 0.2, 0.3], batch_loss=[1.0, 0.9], batch_accuracy=[0.1, 0.2])
    view = history_view(h)
    assert len(view.batch_progress) == len(view.batch_loss) == 2


def test_shapes_rows():
    rows = shapes_rows((784, 10, 10), batch=128)
    assert rows[1]["shape"].startswith("W (784, 10)") and rows[1]["parameters"] == 7850
    assert rows[2]["parameters"] == 110


def test_every_train_config_field_is_in_the_settings_table():
    from nn_core.settings import SETTINGS

    assert [s.name for s in SETTINGS] == list(TrainConfig().to_dict())
    widgets = {s.name for s in SETTINGS if s.widget}
    assert set(TrainConfig().to_dict()) - widgets == {
        "nesterov", "step_epochs", "gamma", "early_stopping", "augment_elastic_sigma", "dtype",
    }  # fmt: skip
    for s in SETTINGS:
        assert bool(s.widget) == bool(s.key) == bool(s.url), s.name  # a widget is linked
    urls = [s.url for s in share.LINKED]
    assert len(urls) == len(set(urls)) and share.PRESET_URL not in urls


def test_widget_values_clamp_to_the_servers_caps():
    limits = get_limits({"DIGITLAB_MAX_EPOCHS": "20", "DIGITLAB_MAX_WIDTH": "100"})
    config = TrainConfig(hidden=(300, 50), epochs=99)
    values = keys.widget_values(config, limits)
    assert values["cfg_epochs"] == 20
    assert (values["cfg_layers"], values["cfg_h0"], values["cfg_h1"]) == (2, 100, 50)
    assert keys.config_from_state(values) == config.replace(hidden=(100, 50), epochs=20)


def test_blas_threads_cap_from_environment_is_applied():
    from threadpoolctl import threadpool_info

    from ui.runner import limit_blas_threads

    assert get_limits({}).blas_threads == 0  # follow the trainings (ui.blas_threads)
    assert get_limits({"DIGITLAB_BLAS_THREADS": "2"}).blas_threads == 2
    policy = limit_blas_threads(1)
    try:
        blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
        assert blas and all(p["num_threads"] == 1 for p in blas)
    finally:
        policy.configure(0)  # the server's default: follow the trainings
