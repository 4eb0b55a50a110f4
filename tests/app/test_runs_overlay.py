"""The Runs page's overlaid training-loss curves, from a real training's history."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from nn_core import TrainConfig
from nn_core.training import Trainer
from tests.synthetic import bar_images
from ui import charts, runs_view
from ui.run_history import RunEntry

N_TRAIN, BATCH = 300, 64  # 4 full batches and one of 44 images an epoch
SHORT = N_TRAIN % BATCH


def _entry(epochs: int, batch_size: int = BATCH) -> tuple[RunEntry, Trainer]:
    x, y = bar_images(N_TRAIN)
    config = TrainConfig(
        hidden=(8,), batch_size=batch_size, epochs=epochs, val_fraction=0.0, lr=3e-2
    )
    trainer = Trainer(config, x, y, n_classes=4)
    trainer.fit()
    assert trainer.n_train == N_TRAIN
    run = SimpleNamespace(trainer=trainer)  # what curves() reads of a live run
    return RunEntry(1, "run 1", "", {}, run=run), trainer


def _loss_curve(entry: RunEntry, axis: str = "images seen") -> tuple[np.ndarray, np.ndarray]:
    trace = runs_view.overlay_figure([entry], axis).data[0]
    return np.asarray(trace.x, float), np.asarray(trace.y, float)


def test_no_point_of_a_few_leftover_images_ends_the_loss_curve():
    entry, trainer = _entry(epochs=1)
    losses = trainer.history.batch_loss
    assert len(losses) == 5  # 64, 64, 64, 64 and the short 44
    x, y = _loss_curve(entry)
    np.testing.assert_allclose(x, [64, 128, 192, N_TRAIN])
    # every point stands for at least a full batch of images
    assert np.diff(np.concatenate([[0.0], x])).min() >= BATCH
    # the last point: the last two batches' loss, weighted by their images
    last = (losses[-2] * BATCH + losses[-1] * SHORT) / (BATCH + SHORT)
    assert y[-1] == pytest.approx(last)
    np.testing.assert_allclose(y[:-1], losses[:3])


def test_merged_curve_keeps_each_epochs_mean_loss():
    entry, trainer = _entry(epochs=3)
    x, y = _loss_curve(entry)
    assert len(x) == 3 * 4  # one short batch merged per epoch
    span = np.diff(np.concatenate([[0.0], x]))
    for epoch, mean in enumerate(trainer.history.train_loss):
        rows = (x > epoch * N_TRAIN) & (x <= (epoch + 1) * N_TRAIN)
        assert np.average(y[rows], weights=span[rows]) == pytest.approx(mean, rel=1e-6)


def test_equal_batches_are_drawn_as_they_are():
    entry, trainer = _entry(epochs=2, batch_size=N_TRAIN)  # full batch: nothing short
    x, y = _loss_curve(entry, "epoch")
    np.testing.assert_allclose(x, [1, 2])
    np.testing.assert_allclose(y, trainer.history.batch_loss)


def test_a_rollback_is_not_taken_for_a_short_batch():
    # After a divergence the epoch in progress restarts: progress steps back.
    progress = np.array([0.25, 0.5, 0.25, 0.5, 0.75, 1.0])
    loss = np.arange(6.0)
    x, y = charts.merge_short_batches(progress, loss)
    np.testing.assert_array_equal(x, progress)
    np.testing.assert_array_equal(y, loss)


@pytest.mark.parametrize("metric", ["loss", "accuracy"])
def test_the_training_pages_curves_merge_the_short_batch_too(metric):
    from ui.runner import history_view

    _, trainer = _entry(epochs=2)
    history = history_view(trainer.history)
    trace = charts.curve_figure(history, metric).data[0]  # the per-batch curve
    assert len(trace.x) == 2 * 4  # 5 batches an epoch, the short one merged
    values = np.asarray(getattr(trainer.history, f"batch_{metric}"), float)
    first_epoch_end = (values[3] * BATCH + values[4] * SHORT) / (BATCH + SHORT)
    assert trace.y[3] == pytest.approx(first_epoch_end)
    assert trace.x[3] == pytest.approx(1.0)
