import math

import numpy as np
import pytest

from nn_core.config import TrainConfig
from nn_core.lr_finder import (
    SUGGESTION_METHOD,
    find_learning_rate,
    find_learning_rate_for,
    smooth_losses,
    suggest_index,
)
from nn_core.training import Trainer


def blobs(n=800, d=16, k=3, seed=0):
    """Separable classes: each a Gaussian around its own centre, as uint8 'pixels'."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(40, 215, (k, d))
    y = rng.integers(0, k, n)
    x = np.clip(centres[y] + rng.normal(0, 25, (n, d)), 0, 255).astype(np.uint8)
    return x, y


def settings(**changes):
    base = TrainConfig(hidden=(16,), batch_size=32, epochs=3, val_fraction=0.2, seed=0)
    return base.replace(**changes)


def state_bytes(trainer: Trainer) -> dict[str, bytes]:
    out = {"params": trainer.model.params.tobytes()}
    out.update({k: v.tobytes() for k, v in trainer.optimizer.state.items()})
    return out


def test_the_callers_trainer_is_left_bit_identical_and_trains_on_as_if_untouched():
    x, y = blobs()
    trainer = Trainer(settings(epochs=1), x, y)
    twin = Trainer(settings(epochs=1), x, y)
    trainer.fit()
    twin.fit()
    before = state_bytes(trainer)
    history_before = trainer.history.to_dict()

    result = find_learning_rate_for(trainer, n_batches=60)

    assert result.losses.size > 10
    assert state_bytes(trainer) == before
    assert trainer.history.to_dict() == history_before
    assert trainer.epochs_done == 1
    # Nothing hidden (batch order, dropout draws, buffers) moved either: training on gives
    # exactly what the twin that never ran the test gives.
    trainer.fit(1)
    twin.fit(1)
    assert state_bytes(trainer) == state_bytes(twin)


def test_a_model_passed_in_is_copied_not_trained():
    x, y = blobs()
    trainer = Trainer(settings(), x, y)
    model = trainer.model
    before = model.params.copy()
    find_learning_rate(settings(), x, y, model=model, n_batches=30)
    assert model.params.tobytes() == before.tobytes()


def test_rates_grow_by_one_factor_from_start_to_end():
    x, y = blobs()
    result = find_learning_rate(settings(), x, y, start_lr=1e-5, end_lr=1e-2, n_batches=50)
    assert result.lrs.shape == result.losses.shape == result.smoothed.shape == (50,)
    assert result.lrs[0] == pytest.approx(1e-5)
    assert result.lrs[-1] == pytest.approx(1e-2)
    ratios = result.lrs[1:] / result.lrs[:-1]
    np.testing.assert_allclose(ratios, (1e3) ** (1 / 49), rtol=1e-9)
    assert "all 50 batches" in result.stop_reason


def test_same_settings_give_the_same_curve():
    x, y = blobs()
    a = find_learning_rate(settings(), x, y, n_batches=40)
    b = find_learning_rate(settings(), x, y, n_batches=40)
    np.testing.assert_array_equal(a.losses, b.losses)
    assert a.suggested_lr == b.suggested_lr


def test_the_loss_at_each_rate_is_the_loss_after_that_rate_was_applied():
    # With rates so small nothing moves, every measured loss is the untrained network's
    # loss on its batch, and the first one is the second batch's loss.
    x, y = blobs()
    config = settings(optimizer="gd")
    result = find_learning_rate(config, x, y, start_lr=1e-12, end_lr=1e-11, n_batches=10)
    reference = Trainer(config.replace(lr=1e-30), x, y)
    first = reference.step()["loss"]
    second = reference.step()["loss"]
    assert result.losses[0] == pytest.approx(second, rel=1e-5)
    assert result.losses[0] != pytest.approx(first, rel=1e-9)


def test_a_rate_far_too_large_ends_the_test_early():
    # Random labels: no rate brings the loss near zero, and huge ones make it explode.
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (800, 16)).astype(np.uint8), rng.integers(0, 3, 800)
    config = settings(optimizer="sgd", momentum=0.9)
    result = find_learning_rate(config, x, y, start_lr=1e-4, end_lr=90.0, n_batches=300)
    assert "blew up" in result.stop_reason
    assert result.losses.size < 300
    assert result.suggested_lr is not None
    assert result.suggested_lr < result.lrs[-1]


def test_the_suggested_rate_trains_far_better_than_the_ends_of_the_range():
    x, y = blobs(n=1200)
    config = settings(optimizer="sgd", momentum=0.9, epochs=2)
    result = find_learning_rate(config, x, y, start_lr=1e-6, end_lr=50.0, n_batches=150)
    assert result.method == SUGGESTION_METHOD

    def final_loss(lr):
        trainer = Trainer(config.replace(lr=lr), x, y)
        trainer.fit()
        loss = trainer.history.train_loss[-1] if trainer.history.train_loss else math.inf
        return loss if trainer.stop_reason is None else math.inf

    suggested = final_loss(result.suggested_lr)
    assert suggested < 0.5 * final_loss(1e-6)
    assert suggested < final_loss(float(result.lrs[-1]))
    assert suggested < 0.3


def test_steepest_descent_of_a_known_curve():
    # A loss falling as a logistic in log10(lr), steepest at 1e-3, then rising past 1e-1.
    lrs = np.geomspace(1e-6, 1.0, 241)
    t = np.log10(lrs)
    curve = 2.0 - 1.5 / (1 + np.exp(-3 * (t + 3))) + np.where(t > -1, (t + 1) ** 2, 0.0)
    index = suggest_index(lrs, curve)
    assert lrs[index] == pytest.approx(1e-3, rel=0.06)


def test_no_suggestion_when_the_loss_never_falls():
    lrs = np.geomspace(1e-6, 1.0, 100)
    assert suggest_index(lrs, np.linspace(1.0, 2.0, 100)) is None
    assert suggest_index(lrs[:4], np.array([2.0, 1.0, 0.5, 0.2])) is None


def test_smoothing_is_a_bias_corrected_moving_average():
    losses = np.array([2.0, 1.0, 3.0, 0.5])
    beta = 0.9
    expected, average = [], 0.0
    for i, loss in enumerate(losses, start=1):
        average = beta * average + (1 - beta) * loss
        expected.append(average / (1 - beta**i))
    np.testing.assert_allclose(smooth_losses(losses, beta), expected)
    assert smooth_losses(np.full(5, 1.7))[0] == pytest.approx(1.7)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"start_lr": 1e-2, "end_lr": 1e-3}, "0 < start < end < 100"),
        ({"start_lr": 0.0}, "0 < start < end < 100"),
        ({"end_lr": 500.0}, "0 < start < end < 100"),
        ({"n_batches": 3}, "10 to 2000 batches"),
    ],
)
def test_a_bad_range_gets_one_clear_message(kwargs, words):
    x, y = blobs(n=100)
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        find_learning_rate(settings(), x, y, **kwargs)


def test_result_is_json_able():
    import json

    from nn_core.io import jsonable

    x, y = blobs(n=200)
    result = find_learning_rate(settings(), x, y, n_batches=20)
    document = json.loads(json.dumps(jsonable(result.to_dict())))
    assert len(document["lrs"]) == len(document["losses"]) == result.losses.size
    assert document["method"] == SUGGESTION_METHOD


# ----------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def npz_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("lrdata") / "blobs.npz"
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 600)
    x = rng.integers(0, 30, (600, 8, 8)).astype(np.uint8)
    for i, label in enumerate(y):
        x[i, 2 * label : 2 * label + 2, 1:7] = 220
    np.savez(path, x_train=x, y_train=y)
    return path


def test_the_command_line_prints_the_curve_and_the_suggestion(npz_path, tmp_path, capsys):
    from nn_core.cli import main

    curve = tmp_path / "curve.csv"
    status = main(
        [
            "lr-find", "--data", str(npz_path), "--hidden", "16", "--batch-size", "32",
            "--batches", "80", "--csv", str(curve),
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0
    assert "<- suggested" in out
    suggested = float(out.split("Suggested learning rate: ")[1].split(" ")[0])
    rows = np.loadtxt(curve, delimiter=",", skiprows=1)
    assert rows.shape[1] == 3 and 10 < rows.shape[0] <= 80
    assert np.all(np.diff(rows[:, 0]) > 0)
    assert rows[0, 0] <= suggested <= rows[-1, 0]
    assert f"--lr {suggested:.3g}" in out


def test_the_command_line_json_matches_the_library(npz_path, capsys):
    import json

    from nn_core.cli import main

    args = ["--data", str(npz_path), "--hidden", "16", "--batch-size", "32", "--batches", "40"]
    assert main(["lr-find", *args, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    from nn_core.data import load_dataset

    dataset = load_dataset(str(npz_path), test_fraction=0.15)
    config = TrainConfig(hidden=(16,), batch_size=32)
    result = find_learning_rate(
        config, dataset.x_train, dataset.y_train, n_classes=dataset.n_classes, n_batches=40
    )
    assert document["losses"] == pytest.approx(result.losses.tolist())
    assert document["suggested_lr"] == result.suggested_lr


def test_the_command_line_refuses_a_bad_range_in_one_line(npz_path, capsys):
    from nn_core.cli import main

    status = main(["lr-find", "--data", str(npz_path), "--start-lr", "1", "--end-lr", "0.1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and "0 < start < end < 100" in err[0]
