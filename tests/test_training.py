import numpy as np
import pytest

from nn_core.config import PRESETS, TrainConfig
from nn_core.network import MLP
from nn_core.training import Callbacks, Trainer
from tests.synthetic import bar_images


def blobs(n=600, d=16, k=3, seed=0):
    """Separable classes: each a Gaussian around its own centre, as uint8 'pixels'."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(40, 215, (k, d))
    y = rng.integers(0, k, n)
    x = np.clip(centres[y] + rng.normal(0, 25, (n, d)), 0, 255).astype(np.uint8)
    return x, y


def small(**changes):
    base = TrainConfig(hidden=(16,), batch_size=32, epochs=3, val_fraction=0.2, seed=0)
    return base.replace(**changes)


def test_loss_decreases_and_blobs_are_learned():
    x, y = blobs()
    trainer = Trainer(small(epochs=8, lr=0.01), x, y)
    history = trainer.fit()
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.val_accuracy[-1] > 0.95
    assert len(history.epoch) == 8
    assert len(history.batch_loss) == 8 * trainer.batches_per_epoch


def test_same_seed_gives_identical_weights_and_history():
    x, y = bar_images(300)
    config = small(dropout=0.2, augment_shift=1)
    a, b = Trainer(config, x, y), Trainer(config, x, y)
    a.fit(), b.fit()
    np.testing.assert_array_equal(a.model.params, b.model.params)
    assert a.history.batch_loss == b.history.batch_loss
    c = Trainer(config.replace(seed=1), x, y)
    c.fit()
    assert not np.array_equal(a.model.params, c.model.params)


def test_validation_split_is_stratified_and_disjoint():
    x, y = blobs(n=1000)
    trainer = Trainer(small(val_fraction=0.25), x, y)
    assert trainer.n_train + trainer.y_val.shape[0] == 1000
    for label in range(3):
        share = np.mean(trainer.y_val == label) / np.mean(y == label)
        assert share == pytest.approx(1.0, abs=0.05)


def test_callback_can_stop_and_training_resumes_where_it_stopped():
    x, y = blobs()

    def stop_at_batch_5(trainer, info):
        return len(trainer.history.batch_loss) == 5

    stopped = Trainer(small(), x, y, callbacks=Callbacks(on_batch=[stop_at_batch_5]))
    stopped.fit()
    assert len(stopped.history.batch_loss) == 5 and stopped.epochs_done == 0
    stopped.callbacks = Callbacks()
    stopped.fit()
    straight = Trainer(small(), x, y)
    straight.fit()
    np.testing.assert_array_equal(stopped.model.params, straight.model.params)
    assert stopped.history.batch_loss == straight.history.batch_loss


def test_callbacks_get_loss_accuracy_time_and_throughput():
    x, y = blobs()
    batches, epochs = [], []
    callbacks = Callbacks(
        on_batch=[lambda t, info: batches.append(info)],
        on_epoch=[lambda t, info: epochs.append(info)],
    )
    trainer = Trainer(small(epochs=2), x, y, callbacks=callbacks)
    trainer.fit()
    assert len(batches) == 2 * trainer.batches_per_epoch and len(epochs) == 2
    elapsed = [b["elapsed"] for b in batches]
    assert elapsed == sorted(elapsed) and elapsed[0] > 0
    assert all(b["samples_per_second"] > 0 and 0 <= b["accuracy"] <= 1 for b in batches)
    assert epochs[-1]["elapsed"] == pytest.approx(sum(trainer.history.seconds_per_epoch))
    assert 0 <= epochs[-1]["val_accuracy"] <= 1 and np.isfinite(epochs[-1]["val_loss"])


def test_continue_adds_epochs():
    x, y = blobs()
    trainer = Trainer(small(epochs=2), x, y)
    trainer.fit()
    trainer.fit(epochs=3)
    assert trainer.epochs_done == 5 and trainer.history.epoch == [1, 2, 3, 4, 5]


def test_step_trains_exactly_one_batch():
    x, y = blobs()
    trainer = Trainer(small(), x, y)
    before = trainer.model.params.copy()
    info = trainer.step()
    assert info["batch"] == 1 and len(trainer.history.batch_loss) == 1
    assert not np.array_equal(before, trainer.model.params)


def test_run_respects_a_batch_budget():
    x, y = blobs()
    trainer = Trainer(small(), x, y)
    assert trainer.run(max_batches=4) == 4


def test_divergence_stops_with_a_message_and_restores_last_good_weights():
    x, y = blobs()
    good_after_epoch = {}

    def remember(trainer, info):
        good_after_epoch[info["epoch"]] = trainer.model.params.copy()

    def blow_up_in_epoch_3(trainer, info):
        if info["epoch"] == 3 and info["batch"] == 4:
            trainer.model.weights[0][0, 0] = np.inf

    callbacks = Callbacks(on_batch=[blow_up_in_epoch_3], on_epoch=[remember])
    trainer = Trainer(small(epochs=10), x, y, callbacks=callbacks)
    trainer.fit()
    assert "diverged" in trainer.stop_reason and "learning rate" in trainer.stop_reason
    assert trainer.epochs_done == 2 and trainer.finished
    np.testing.assert_array_equal(trainer.model.params, good_after_epoch[2])


def test_a_huge_learning_rate_is_caught_not_propagated():
    x, y = blobs()
    trainer = Trainer(small(optimizer="sgd", lr=90.0, epochs=30, activation="tanh"), x, y)
    trainer.fit()
    assert np.all(np.isfinite(trainer.model.params))
    assert all(np.isfinite(trainer.history.train_loss))


def test_early_stopping_restores_the_best_epoch():
    x, y = blobs(n=200)
    y = np.random.default_rng(3).permutation(y)  # noise labels: validation loss must rise
    config = small(hidden=(64,), epochs=200, early_stopping=3, lr=0.01, val_fraction=0.3)
    trainer = Trainer(config, x, y)
    trainer.fit()
    assert trainer.stop_reason is not None and "Early stopping" in trainer.stop_reason
    best = int(np.argmin(trainer.history.val_loss))
    assert trainer.epochs_done == best + 1 + 3
    loss, _ = trainer.evaluate(trainer.x_val, trainer.y_val)
    assert loss == pytest.approx(trainer.history.val_loss[best], rel=1e-5)


def test_val_every_skips_epochs_but_always_validates_the_last():
    x, y = blobs()
    trainer = Trainer(small(epochs=7, val_every=3, lr=0.01), x, y)
    history = trainer.fit()
    validated = [e for e, v in zip(history.epoch, history.val_loss) if np.isfinite(v)]
    assert validated == [3, 6, 7]
    assert trainer.summary()["final_val_accuracy"] == history.val_accuracy[-1] > 0.9
    trainer.extend(2)
    trainer.fit()
    assert np.isfinite(trainer.history.val_accuracy[-1])  # the new last epoch, 9


def test_early_stopping_patience_counts_epochs_when_validating_less_often():
    x, y = blobs(n=200)
    y = np.random.default_rng(3).permutation(y)
    config = small(hidden=(64,), epochs=200, early_stopping=4, val_every=2, lr=0.01)
    trainer = Trainer(config.replace(val_fraction=0.3), x, y)
    trainer.fit()
    assert "Early stopping" in trainer.stop_reason
    val = np.array(trainer.history.val_loss)
    best_epoch = int(np.nanargmin(val)) + 1
    assert best_epoch % 2 == 0 and trainer.epochs_done == best_epoch + 4
    loss, _ = trainer.evaluate(trainer.x_val, trainer.y_val)
    assert loss == pytest.approx(val[best_epoch - 1], rel=1e-5)


def test_full_batch_gradient_descent_is_the_notebook_loop():
    x, y = blobs()
    trainer = Trainer(small(optimizer="gd", batch_size=0, lr=0.5, epochs=30), x, y)
    trainer.fit()
    assert trainer.batches_per_epoch == 1
    assert len(trainer.history.batch_loss) == 30
    assert trainer.history.train_loss[-1] < trainer.history.train_loss[0]


def test_finished_full_batch_run_frees_its_float_copies_and_can_continue():
    x, y = blobs()
    trainer = Trainer(small(optimizer="gd", batch_size=0, lr=0.5, epochs=3), x, y)
    trainer.run(max_batches=1)
    assert trainer._full_batch is not None
    trainer.fit()
    assert trainer._full_batch is None and trainer._val_batch is None
    assert trainer.model._buffers is None
    straight = Trainer(small(optimizer="gd", batch_size=0, lr=0.5, epochs=5), x, y)
    straight.fit()
    trainer.fit(epochs=2)
    np.testing.assert_array_equal(trainer.model.params, straight.model.params)


def test_first_layer_snapshots_per_epoch():
    x, y = bar_images(300)
    trainer = Trainer(small(epochs=3), x, y)
    trainer.fit()
    assert sorted(trainer.snapshots) == [0, 1, 2, 3]
    assert trainer.snapshots[3].shape == (64, 16)
    # float32, exactly the weights: float16 rounded them and overflowed past 65504
    np.testing.assert_array_equal(trainer.snapshots[3], trainer.model.weights[0])
    assert not np.allclose(trainer.snapshots[0], trainer.snapshots[3])


def test_evaluation_loss_is_right_for_very_confident_mistakes():
    # Two inputs, two classes, logits 600 apart: the true class's probability underflows
    # to 0 in float32, and a loss taken from probabilities said 708 (-log of the smallest
    # float64) instead of 600.
    model = MLP(2, (), 2, dtype="float32", input_scale=1.0)
    model.weights[0][...] = [[600.0, 0.0], [0.0, 600.0]]
    model.biases[0][...] = 0.0
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    y = np.array([1, 0, 0])  # two confident mistakes, one confident right answer
    trainer = Trainer(small(hidden=()), x, y, model=model, input_scale=1.0)
    loss, accuracy = trainer.evaluate(x, y)
    assert loss == pytest.approx(400.0, rel=1e-6)
    assert accuracy == pytest.approx(1 / 3)


@pytest.mark.parametrize("n", [300, 9000])  # 9,000 rows: the gradient is taken in chunks
def test_batch_accuracy_is_that_of_the_weights_before_the_update(n):
    x, y = blobs(n=n)
    trainer = Trainer(small(optimizer="gd", batch_size=0, lr=0.5, val_fraction=0.0), x, y)
    before = trainer.model.copy()
    info = trainer.step()
    assert info["accuracy"] == np.mean(before.predict(x) == y)
    assert trainer.history.batch_accuracy == [info["accuracy"]]


@pytest.mark.parametrize(
    "changes",
    [
        {"lr": -1},
        {"dropout": 1.0},
        {"hidden": (0,)},
        {"optimizer": "lbfgs"},
        {"early_stopping": 2, "val_fraction": 0.0},
        {"batch_size": -1},
        {"val_every": 0},
    ],
)
def test_bad_settings_are_refused_up_front(changes):
    with pytest.raises(ValueError):
        small(**changes)


def test_config_round_trips_through_a_dict():
    config = PRESETS["accurate"]
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_notebook_preset_is_the_notebooks_setup():
    nb = PRESETS["notebook"]
    assert (nb.hidden, nb.optimizer, nb.batch_size, nb.lr, nb.epochs, nb.val_fraction) == (
        (10,),
        "gd",
        0,
        0.1,
        500,
        0.4,
    )


@pytest.mark.slow
def test_full_mnist_two_epochs_reaches_95_percent():
    from nn_core.data import load_mnist

    mnist = load_mnist()
    trainer = Trainer(TrainConfig(hidden=(128, 64), epochs=2), mnist.x_train, mnist.y_train)
    trainer.fit()
    _, test_accuracy = trainer.evaluate(mnist.x_test, mnist.y_test)
    assert test_accuracy >= 0.95
