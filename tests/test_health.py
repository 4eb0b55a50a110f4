"""Training health: the probe pass, dead and saturated units, the recorder, the warnings,
and the "Show me" lessons (each run for real shows the failure it promises)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from nn_core import TrainConfig, Trainer
from nn_core import health as hl
from nn_core.data import load_mnist
from nn_core.divergence import Divergence
from nn_core.lessons import LESSONS
from nn_core.network import MLP, layer_views
from nn_core.settings import BY_NAME, TRAIN_SUBSET, check, check_hidden
from nn_core.training import Callbacks
from tests.gradcheck import numerical_gradient, relative_error


def small_model(activation: str = "relu", hidden=(7, 5), seed: int = 1) -> MLP:
    return MLP(12, hidden, 4, activation=activation, dtype="float64", seed=seed, input_scale=0.5)


def small_data(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 2, (n, 12)), rng.integers(0, 4, n)


def tiny_trainer(seed: int = 0, n: int = 600, **changes) -> Trainer:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 6, 6), dtype=np.uint8)
    y = (x.reshape(n, -1)[:, :4].argmax(axis=1)).astype(np.int64)  # learnable labels
    config = TrainConfig(hidden=(16, 8), batch_size=16, epochs=2, seed=seed, **changes)
    return Trainer(config, x, y, n_classes=4)


# ------------------------------------------------------------------------ probe pass
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "sigmoid", "tanh"])
def test_probe_gradient_matches_finite_differences(activation):
    model = small_model(activation)
    x, y = small_data()
    stats = hl.probe_statistics(model, model.prepare_inputs(x), y)
    numeric = numerical_gradient(model, model.prepare_inputs(x), y)
    numeric_weights, _ = layer_views(numeric, model.sizes)
    for mine, oracle in zip(stats.weight_grads, numeric_weights):
        assert relative_error(mine, oracle) < 1e-7
    probs = model.predict_proba(x)
    assert stats.loss == pytest.approx(-np.mean(np.log(probs[np.arange(len(y)), y])), rel=1e-12)


def test_probe_loss_stays_finite_for_a_confident_mistake():
    model = small_model()
    x, y = small_data()
    model.weights[-1] *= 1e4  # probabilities of 0 (in float) for some true classes
    stats = hl.probe_statistics(model, model.prepare_inputs(x), y)
    logits = model.logits(x).astype(np.float64)
    expected = np.mean(np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1))
                       + logits.max(1) - logits[np.arange(len(y)), y])  # fmt: skip
    assert np.isfinite(stats.loss) and stats.loss == pytest.approx(expected, rel=1e-6)
    assert stats.loss > 100


def test_probe_pass_leaves_the_training_buffers_alone():
    model = small_model()
    x, y = small_data()
    prepared = model.prepare_inputs(x)
    model.loss_and_gradient(prepared, y)
    grads = model.grads.copy()
    hl.probe_statistics(model, prepared[:9], y[:9])
    np.testing.assert_array_equal(model.grads, grads)


def test_probe_rows_are_fixed_and_keep_each_class_share():
    labels = np.repeat(np.arange(10), [500, 300, 200, 1000, 100, 400, 600, 700, 800, 900])
    rows = hl.probe_rows(labels, 256)
    np.testing.assert_array_equal(rows, hl.probe_rows(labels, 256))
    assert rows.size == 256 and np.all(np.diff(rows) > 0)
    counts = np.bincount(labels[rows], minlength=10)
    np.testing.assert_allclose(counts, np.bincount(labels) * 256 / labels.size, atol=1)
    np.testing.assert_array_equal(hl.probe_rows(labels[:100], 256), np.arange(100))


# ------------------------------------------------------------------ dead, saturated
def test_dead_units_are_those_never_active_on_the_probe():
    a = np.array([[0.0, 0.0, 3.0, 0.0], [0.0, 0.2, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(hl.dead_units(a, "relu"), [True, False, False, True])
    leaky = np.array([[-0.01, 0.5], [-0.02, -0.01]])
    np.testing.assert_array_equal(hl.dead_units(leaky, "leaky_relu"), [True, False])
    assert not hl.dead_units(np.zeros((3, 2)), "sigmoid").any()


def test_saturated_units_sit_on_the_flat_parts_for_most_images():
    n = 20
    flat = np.full(n, 0.995)  # slope 0.005 < 5% of 0.25
    mostly = np.r_[np.full(18, 0.001), np.full(2, 0.5)]  # 90% flat: saturated
    often = np.r_[np.full(17, 0.999), np.full(3, 0.5)]  # 85% flat: not
    middle = np.full(n, 0.5)
    a = np.stack([flat, mostly, often, middle], axis=1)
    np.testing.assert_array_equal(hl.saturated_units(a, "sigmoid"), [True, True, False, False])
    t = np.stack([np.full(n, -0.999), np.full(n, 0.3)], axis=1)
    np.testing.assert_array_equal(hl.saturated_units(t, "tanh"), [True, False])
    assert not hl.saturated_units(a, "relu").any()


def test_unit_shares_are_nan_where_the_activation_cannot_die_or_saturate():
    acts = [np.array([[0.0, 1.0], [0.0, 2.0]]), np.zeros((2, 4))]
    dead, saturated = hl.unit_shares(acts, "relu")
    np.testing.assert_array_equal(dead, [0.5, 1.0])
    assert np.isnan(saturated).all()
    dead, saturated = hl.unit_shares([np.full((2, 4), 0.5)], "sigmoid")
    assert np.isnan(dead).all() and saturated.tolist() == [0.0]


def test_the_recorder_counts_units_killed_by_a_huge_negative_bias():
    trainer = tiny_trainer()
    killed = [0, 3, 5, 6]
    trainer.model.biases[0][:] = 5.0  # every other unit fires for every image
    trainer.model.biases[0][killed] = -1e4
    recorder = hl.HealthRecorder.for_trainer(trainer)
    trainer.callbacks = recorder.callbacks()
    trainer.step()
    record = recorder.records[0]
    assert record.dead[0] == len(killed) / 16
    assert record.dead[1] < 1  # a dead unit outputs 0; layer 2 still gets its bias
    assert np.isnan(record.saturated).all()


# ------------------------------------------------------------------------- recorder
def test_records_come_at_batches_1_2_4_then_every_n():
    recorder = hl.HealthRecorder(np.zeros((2, 4)), np.zeros(2), every=10)
    due = [b for b in range(1, 45) if recorder.due(b, 10)]
    assert due == [1, 2, 4, 8, 10, 20, 30, 40]


def test_the_default_cadence_keeps_records_within_the_cost_budget():
    recorder = hl.HealthRecorder(np.zeros((256, 4)), np.zeros(256))
    for batch_size in (16, 64, 128, 512, 36_000):
        every = recorder.cadence(batch_size)
        cost = (256 + hl.HISTOGRAM_ROWS) / batch_size
        assert cost / every <= hl.COST_BUDGET
        assert every == 1 or cost / (every - 1) > hl.COST_BUDGET  # no sparser than needed


def test_update_ratio_is_the_step_just_taken_over_the_weights_before_it():
    trainer = tiny_trainer()
    recorder = hl.HealthRecorder.for_trainer(trainer, every=3)
    before_each = {}

    def keep(t, info):
        before_each[len(t.history.batch_loss)] = [w.copy() for w in t.model.weights]

    trainer.callbacks = Callbacks(on_batch=(recorder.on_batch, keep))
    initial = [w.copy() for w in trainer.model.weights]
    trainer.run(max_batches=7)
    batches = [r.batch for r in recorder.records]
    assert batches == [1, 2, 3, 6]
    for record in recorder.records:
        before = initial if record.batch == 1 else before_each[record.batch - 1]
        after = before_each[record.batch]
        expected = [np.linalg.norm(a - b) / np.linalg.norm(b) for a, b in zip(after, before)]
        np.testing.assert_allclose(record.update_ratio, expected, rtol=1e-5)
        np.testing.assert_allclose(
            record.weight_norm, [np.linalg.norm(w) for w in after], rtol=1e-5
        )


def test_recording_does_not_change_the_training_and_is_deterministic():
    plain = tiny_trainer()
    plain.fit()
    runs = []
    for _ in range(2):
        trainer = tiny_trainer()
        watch = hl.watch_training(trainer)
        trainer.fit()
        runs.append((trainer, watch))
    np.testing.assert_array_equal(plain.model.params, runs[0][0].model.params)
    first, second = (w.health.records for _, w in runs)
    assert len(first) == len(second) > 3
    for a, b in zip(first, second):
        assert a.batch == b.batch and a.loss == b.loss
        np.testing.assert_array_equal(a.grad_norm, b.grad_norm)
        np.testing.assert_array_equal(a.histograms["weights"][0].counts,
                                      b.histograms["weights"][0].counts)  # fmt: skip


def test_records_hold_per_layer_figures_and_histograms_of_every_value_sampled():
    trainer = tiny_trainer()
    recorder = hl.HealthRecorder.for_trainer(trainer, every=4)
    trainer.callbacks = recorder.callbacks()
    trainer.fit()
    record = recorder.records[-1]
    assert record.batch == len(trainer.history.batch_loss) == 68  # the last batch
    n_layers, n_hidden = trainer.model.n_layers, trainer.model.n_layers - 1
    assert record.grad_norm.shape == record.update_ratio.shape == (n_layers,)
    assert record.dead.shape == record.saturated.shape == (n_hidden,)
    hists = record.histograms
    assert len(hists["weights"]) == len(hists["gradients"]) == n_layers
    assert len(hists["activations"]) == n_hidden
    for w, h in zip(trainer.model.weights, hists["weights"]):
        assert h.counts.sum() == w.size  # small layers: every weight
        assert h.edges[0] == pytest.approx(w.min()) and h.edges[-1] == pytest.approx(w.max())
    n_probe = recorder.y_probe.shape[0]
    assert [h.counts.sum() for h in hists["activations"]] == [n_probe * 16, n_probe * 8]
    assert record.epoch == 2 and 0 < record.progress <= 2
    assert record.grad_norm.tolist() == pytest.approx(
        [np.linalg.norm(g) for g in hl.probe_statistics(
            trainer.model, trainer.model.prepare_inputs(recorder.x_probe), recorder.y_probe
        ).weight_grads]
    )  # fmt: skip


def test_histogram_of_a_constant_and_of_non_finite_values():
    h = hl.histogram(np.full(10, 3.0), bins=4)
    assert h.counts.sum() == 10 and h.edges[0] < 3 < h.edges[-1]
    h = hl.histogram(np.array([np.inf, np.nan, 1.0, 2.0]), bins=2)
    assert h.counts.tolist() == [1, 1]


def test_records_are_thinned_past_the_cap_keeping_the_first_and_last():
    trainer = tiny_trainer(n=2000)
    recorder = hl.HealthRecorder.for_trainer(trainer, every=1, max_records=10)
    trainer.callbacks = recorder.callbacks()
    trainer.run(max_batches=40)
    batches = [r.batch for r in recorder.records]
    assert len(batches) <= 10 and batches[0] == 1 and batches[-1] == 40
    assert batches == sorted(batches)


# ------------------------------------------------------------------------- warnings
def record(
    batch=1,
    relative=(1.0, 1.0, 1.0),
    dead=(0.0, 0.0),
    update=(1e-3, 1e-3, 1e-3),
    epoch=1,
) -> hl.HealthRecord:
    relative = np.asarray(relative, float)
    return hl.HealthRecord(
        batch=batch,
        progress=batch / 10,
        epoch=epoch,
        batch_in_epoch=batch,
        loss=2.3,
        grad_norm=relative * 2.0,
        weight_norm=np.full(relative.shape, 2.0),
        update_ratio=np.asarray(update, float),
        dead=np.asarray(dead, float),
        saturated=np.full(len(dead), np.nan),
        histograms={},
    )


def test_vanishing_gradients_are_flagged_from_the_median_of_recent_records():
    vanishing = [record(b, (1e-4, 1e-2, 0.1)) for b in (1, 2, 4)]
    warning = hl.vanishing_warning(vanishing)
    assert warning.kind == "vanishing" and warning.panel == "gradients"
    assert "Layer 1 learns 1,000 times slower than layer 3" in warning.text
    healthy = [record(b, (0.5, 0.8, 1.0)) for b in (1, 2, 4)]
    assert hl.vanishing_warning(healthy) is None
    one_outlier = [*healthy, record(8, (1e-4, 1e-2, 0.1))]
    assert hl.vanishing_warning(one_outlier) is None
    # one hidden layer: nothing "early" to vanish in
    assert hl.vanishing_warning([record(1, (1e-4, 0.1), dead=(0.0,))]) is None


def test_more_than_half_dead_is_flagged_per_layer_from_the_latest_record():
    assert hl.dead_warning([record(dead=(0.5, 0.2))]) is None
    warning = hl.dead_warning([record(dead=(0.1, 0.1)), record(8, dead=(0.8, 0.95), epoch=1)])
    assert warning.kind == "dead" and warning.panel == "units"
    assert "80% of layer 1, 95% of layer 2's units" in warning.text
    assert "epoch 1, batch 8" in warning.text
    assert hl.dead_warning([record(dead=(np.nan, np.nan))]) is None


def test_overfitting_needs_a_rising_validation_loss_and_a_falling_training_loss():
    epochs = np.arange(1, 11)
    train = np.linspace(1.0, 0.01, 10)
    val = np.array([0.8, 0.6, 0.5, 0.45, 0.46, 0.48, 0.5, 0.52, 0.55, 0.6])
    warning = hl.overfitting_warning(epochs, train, val)
    assert warning.kind == "overfitting" and warning.panel == "losses"
    assert "risen for 6 epochs, from 0.450 at epoch 4 to 0.600" in warning.text
    # still falling: no warning; a short rise: no warning; training loss up too: no warning
    assert hl.overfitting_warning(epochs, train, np.linspace(0.8, 0.3, 10)) is None
    short = val.copy()
    short[4:8] = [0.44, 0.43, 0.42, 0.41]
    assert hl.overfitting_warning(epochs, train, short) is None
    assert hl.overfitting_warning(epochs, train[::-1], val) is None


def test_overfitting_counts_only_validated_epochs():
    epochs = np.arange(1, 11)
    train = np.linspace(1.0, 0.01, 10)
    val = np.full(10, np.nan)
    val[[1, 3, 5, 7, 9]] = [0.5, 0.4, 0.45, 0.5, 0.55]  # every 2nd epoch
    warning = hl.overfitting_warning(epochs, train, val)
    assert warning is not None and "risen for 3 epochs, from 0.400 at epoch 4" in warning.text


def divergence(layer=2, started=(1, 3)) -> Divergence:
    return Divergence(
        sign="loss", epoch=1, batch=10, started_epoch=started[0], started_batch=started[1],
        layer=layer, layer_change=20.0, start_loss=2.4, loss=300.0, lr=1.0, suggested_lr=0.05,
        kept_epoch=0, sentence="Training diverged: ...", message="Training diverged: ... kept.",
    )  # fmt: skip


def test_divergence_origin_is_the_first_record_where_an_update_outgrew_its_weights():
    records = [
        record(1, update=(np.nan, np.nan, np.nan)),
        record(2, update=(0.1, 0.2, 0.3)),
        record(4, update=(0.2, 0.4, 1.05)),
        record(8, update=(2.0, 3.0, 0.9)),
    ]
    origin = hl.divergence_origin(records, divergence())
    assert (origin.layer, origin.epoch, origin.batch) == (3, 1, 4)
    assert origin.ratio == pytest.approx(1.05)
    warning = hl.divergence_warning(records, divergence())
    assert warning.panel == "updates"
    assert warning.text.startswith("It started in layer 3 in epoch 1, batch 4")
    assert "105% of their size" in warning.text and warning.text.endswith("kept.")


def test_divergence_origin_without_a_step_that_large():
    records = [record(1, update=(0.1, 0.2, 0.3)), record(4, update=(0.5, 0.2, 0.1))]
    origin = hl.divergence_origin(records, divergence(started=(1, 3)))
    assert (origin.layer, origin.batch) == (1, 4)  # largest ratio since the loss rose
    origin = hl.divergence_origin([], divergence(layer=2, started=(1, 3)))
    assert (origin.layer, origin.epoch, origin.batch, origin.ratio) == (2, 1, 3, None)
    assert "where the loss began to rise" in hl.divergence_warning([], divergence()).text


def test_warnings_put_the_divergence_first():
    history = SimpleNamespace(epoch=[1], train_loss=[1.0], val_loss=[1.0])
    records = [record(8, dead=(0.9, 0.9))]
    kinds = [w.kind for w in hl.warnings(records, history, divergence())]
    assert kinds == ["diverged", "dead"]
    assert hl.warnings([], None, None) == []


# -------------------------------------------------------------------------- lessons
def test_every_lesson_is_within_the_dashboard_settings():
    for lesson in LESSONS.values():
        config = lesson.config
        assert check_hidden(config.hidden).problem is None
        for name, setting in BY_NAME.items():
            if setting.widget and setting.kind is not tuple:
                assert check(setting, getattr(config, name)).problem is None, (lesson.name, name)
        assert check(TRAIN_SUBSET, lesson.train_images).problem is None


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def run_lesson(mnist, name: str, **changes):
    lesson = LESSONS[name]
    data = mnist.subset(lesson.train_images, seed=lesson.config.seed)
    trainer = Trainer(lesson.config.replace(**changes), data.x_train, data.y_train, n_classes=10)
    watch = hl.watch_training(trainer)
    trainer.fit()
    return trainer, hl.warnings(watch.health.records, trainer.history, trainer.divergence)


def test_the_vanishing_lesson_shows_vanishing_gradients(mnist):
    trainer, found = run_lesson(mnist, "vanishing", epochs=1)  # it shows from the start
    assert [w.kind for w in found] == ["vanishing"]
    assert trainer.history.train_loss[-1] > 2.25  # it does not learn


def test_the_dead_lesson_kills_units_and_diverges(mnist):
    trainer, found = run_lesson(mnist, "dead")
    assert trainer.divergence is not None
    assert [w.kind for w in found] == ["diverged", "dead"]
    assert "layer 3 in epoch 1, batch 4" in found[0].text


def test_the_overfitting_lesson_overfits(mnist):
    trainer, found = run_lesson(mnist, "overfitting")
    assert [w.kind for w in found] == ["overfitting"]
    assert trainer.history.train_loss[-1] < 0.01
    assert math.isfinite(trainer.history.val_loss[-1])
