"""Divergence as a person means it (issue 8): the runs the issue names are stopped and
said in plain words with the fix; the presets and ordinary runs never are."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

from nn_core.config import PRESETS, TrainConfig
from nn_core.data import load_mnist
from nn_core.divergence import DivergenceWatch, suggested_lr
from nn_core.training import Trainer

ROOT = __file__.rsplit("/tests/", 1)[0]


@pytest.fixture(scope="module")
def digits():
    """3,000 MNIST training images (divergence is about real data and real settings)."""
    mnist = load_mnist()
    return mnist.x_train[:3000], mnist.y_train[:3000]


def fit_without_warnings(config: TrainConfig, x, y) -> Trainer:
    """Train to the end; any RuntimeWarning (an overflow nobody expected) fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer = Trainer(config, x, y, n_classes=10)
        trainer.fit()
    return trainer


@pytest.mark.parametrize(
    ("optimizer", "lr"), [("sgd", 3.0), ("gd", 3.0), ("gd", 99.0), ("adam", 3.0)]
)
def test_a_blown_up_loss_stops_the_run_with_the_fix_and_the_initial_weights(digits, optimizer, lr):
    config = TrainConfig(hidden=(128, 64), optimizer=optimizer, lr=lr, epochs=3)
    initial = Trainer(config, *digits, n_classes=10).model.params.copy()
    trainer = fit_without_warnings(config, *digits)
    seen = trainer.divergence
    assert seen is not None and seen.sign == "loss" and trainer.finished
    assert seen.epoch == 1 and 1 <= seen.started_batch <= seen.batch
    assert seen.loss > 10 * np.log(10) and np.isfinite(seen.start_loss)
    assert seen.suggested_lr < lr and f"lower it, e.g. to {seen.suggested_lr:g}" in seen.sentence
    assert trainer.stop_reason == seen.message and "initial weights" in seen.message
    np.testing.assert_array_equal(trainer.model.params, initial)
    assert trainer.snapshots and all(np.isfinite(s).all() for s in trainer.snapshots.values())


def test_full_batch_descent_at_lr_99_goes_back_to_weights_whose_loss_was_sound(digits):
    # The weights at the end of epoch 1 are the ones that blew up: their loss, measured in
    # epoch 2, is far too high, so the run goes back to the start, not to epoch 1.
    config = TrainConfig(hidden=(10,), optimizer="gd", lr=99.0, batch_size=0, epochs=30)
    initial = Trainer(config, *digits, n_classes=10).model.params.copy()
    trainer = fit_without_warnings(config, *digits)
    assert trainer.divergence.sign == "loss" and trainer.divergence.epoch == 2
    assert trainer.divergence.kept_epoch == 0
    np.testing.assert_array_equal(trainer.model.params, initial)


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(hidden=(10,), optimizer="gd", lr=1.0, batch_size=0, epochs=30),
        TrainConfig(hidden=(128, 64), optimizer="sgd", lr=3.0, activation="sigmoid", epochs=3),
    ],
    ids=["relu-gd-1-full-batch", "sigmoid-sgd-3"],
)
def test_a_network_giving_one_answer_at_chance_after_a_rising_loss_has_diverged(digits, config):
    trainer = fit_without_warnings(config, *digits)
    seen = trainer.divergence
    assert seen is not None and seen.sign == "one answer", trainer.stop_reason
    assert trainer.epochs_done == config.epochs and seen.kept_epoch is None
    assert "same answer" in seen.sentence and "no better than chance" in seen.sentence
    assert f"lower it, e.g. to {seen.suggested_lr:g}" in seen.sentence
    predictions = trainer.model.predict(digits[0])
    assert np.bincount(predictions).max() / predictions.size >= 0.9


def test_a_too_small_learning_rate_is_not_called_divergence(digits):
    # Accuracy stays near chance, but the answers vary and the loss never rose.
    trainer = fit_without_warnings(TrainConfig(optimizer="gd", lr=1e-5, epochs=2), *digits)
    assert trainer.divergence is None and trainer.stop_reason is None
    assert trainer.history.val_accuracy[-1] < 0.3


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_no_preset_is_ever_flagged(digits, name):
    trainer = fit_without_warnings(PRESETS[name], digits[0][:1000], digits[1][:1000])
    assert trainer.divergence is None and trainer.stop_reason is None
    assert trainer.epochs_done == PRESETS[name].epochs


@pytest.mark.parametrize(
    ("optimizer", "lr", "changes"),
    [
        ("adam", 1e-4, {}),
        ("adam", 1e-2, {}),
        ("adam", 0.05, {}),
        ("sgd", 0.01, {}),
        ("sgd", 0.3, {}),
        ("sgd", 1.0, {"activation": "sigmoid"}),
        ("sgd", 0.1, {"activation": "tanh", "l2": 1e-3}),
        ("gd", 0.5, {}),
        ("gd", 0.5, {"hidden": (10,), "batch_size": 0, "epochs": 30}),
        ("adam", 1e-3, {"batch_size": 1, "epochs": 1, "dropout": 0.5}),
    ],
)
def test_ordinary_runs_are_never_flagged(digits, optimizer, lr, changes):
    config = TrainConfig(optimizer=optimizer, lr=lr, epochs=3).replace(**changes)
    trainer = fit_without_warnings(config, digits[0][:2000], digits[1][:2000])
    assert trainer.divergence is None, trainer.stop_reason


def test_continue_after_a_divergence_trains_again_from_the_kept_weights(digits):
    config = TrainConfig(hidden=(32,), optimizer="sgd", lr=3.0, epochs=2)
    trainer = fit_without_warnings(config, *digits)
    assert trainer.divergence is not None
    trainer.extend(1)
    assert trainer.divergence is None and not trainer.finished
    trainer.run(max_batches=1)
    assert len(trainer.history.batch_loss) >= 1


def test_the_command_line_says_it_in_one_line_and_exits_3(tmp_path):
    out = tmp_path / "model.npz"
    result = subprocess.run(
        [sys.executable, "-m", "nn_core", "train", "--data", "mnist", "--train-subset", "2000",
         "--optimizer", "sgd", "--lr", "3", "--epochs", "2", "--quiet", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: Training diverged: the loss rose from")
    assert "lower it, e.g. to 0.05" in lines[0]
    assert "Warning" not in result.stderr and not out.exists()


# ------------------------------------------------------------------ the watch itself
def test_one_high_batch_is_smoothed_away_but_a_lasting_rise_is_not():
    watch = DivergenceWatch(10, [np.ones((4, 3))])
    assert not watch.loss_diverged(2.3, 128, 1, 1)
    assert not watch.loss_diverged(60.0, 128, 1, 2)  # one bad batch among good ones
    assert not any(watch.loss_diverged(2.0, 128, 1, b) for b in range(3, 20))
    assert watch.rising_since is None
    flagged = [watch.loss_diverged(40.0, 128, 2, b) for b in range(1, 10)]
    assert flagged.index(True) >= 1 and watch.rising_since == (2, 1)
    assert watch.loss_diverged(float("nan"), 128, 3, 1)


def test_the_reference_loss_is_at_least_that_of_a_network_that_knows_nothing():
    watch = DivergenceWatch(10, [np.ones((4, 3))])
    watch.loss_diverged(0.05, 128, 1, 1)  # a trained network, resumed
    assert watch.reference == pytest.approx(np.log(10))
    assert not watch.loss_diverged(2.0, 128, 1, 2)


def test_weights_explode_when_not_finite_or_a_thousand_times_their_size():
    start = [np.full((4, 3), 0.1), np.full((3, 2), 0.1)]
    watch = DivergenceWatch(2, start)
    grown = [np.full((4, 3), 50.0), np.full((3, 2), 0.1)]
    assert not watch.weights_exploded(np.concatenate([w.ravel() for w in grown]), grown)
    grown[1][0, 0] = 1e4
    assert watch.weights_exploded(np.concatenate([w.ravel() for w in grown]), grown)
    params = np.array([1.0, np.inf])
    assert watch.weights_exploded(params, start)


def test_one_answer_needs_a_rising_loss_and_chance_accuracy():
    labels = np.repeat(np.arange(10), 100)
    one_answer = np.full(1000, 7)
    watch = DivergenceWatch(10, [np.ones((4, 3))])
    watch.loss_diverged(2.3, 128, 1, 1)
    assert watch.one_answer(one_answer, labels) is None  # the loss never rose
    watch.loss_diverged(4.0, 128, 1, 2)
    answer, share, accuracy = watch.one_answer(one_answer, labels)
    assert (answer, share, accuracy) == (7, 1.0, 0.1)
    varied = np.random.default_rng(0).integers(0, 10, 1000)
    assert watch.one_answer(varied, labels) is None  # at chance, but not one answer
    skewed = np.where(np.arange(1000) < 950, 0, 1)  # 95% of one class, all right
    assert watch.one_answer(skewed, skewed) is None


@pytest.mark.parametrize(
    ("optimizer", "lr", "expected"),
    [("adam", 3.0, 0.001), ("sgd", 3.0, 0.05), ("sgd", 0.2, 0.02), ("gd", 99.0, 0.1)],
)
def test_the_suggested_learning_rate_is_lower_and_usual(optimizer, lr, expected):
    assert suggested_lr(optimizer, lr) == expected
