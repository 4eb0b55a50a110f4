"""nn_core.finetune: replay mixing, the splits, fine-tuning on a synthetic personal style
(MNIST digits drawn thick), forgetting with and without replay, and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from nn_core.cli import main
from nn_core.data import load_mnist
from nn_core.finetune import (
    LEAVE_ONE_OUT_BELOW,
    FinetuneError,
    FinetuneSettings,
    batch_shares,
    check_fits,
    finetune,
    leave_one_out,
    mixed_batches,
    per_digit_split,
    score,
    split_mode,
    steps_for_epochs,
    teach,
)
from nn_core.io import load_model, save_model
from nn_core.network import MLP
from nn_core.personal_set import PersonalSet, empty_set, to_npz_bytes

STARTER = Path(__file__).resolve().parents[1] / "assets" / "starter_model.npz"


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def starter() -> MLP:
    return load_model(STARTER).model


def thick(images: np.ndarray, pen: int = 5) -> np.ndarray:
    """Digits drawn with a felt-tip pen: each pixel the brightest of its pen x pen
    neighbourhood (MNIST's strokes are about 2 pixels wide; these about 6)."""
    r = pen // 2
    padded = np.pad(images, ((0, 0), (r, r), (r, r)))
    windows = sliding_window_view(padded, (pen, pen), axis=(1, 2))
    return np.ascontiguousarray(windows.max(axis=(3, 4)))


def per_class(labels: np.ndarray, n: int, rng: np.random.Generator, skip: int = 0) -> np.ndarray:
    """``n`` indices of each class (after skipping the first ``skip`` of each)."""
    picks = [np.flatnonzero(labels == c)[skip : skip + 10 * n] for c in range(10)]
    return np.concatenate([rng.choice(p, n, replace=False) for p in picks])


@pytest.fixture(scope="module")
def thick_style(mnist):
    """A synthetic "personal style": 50 felt-tip test digits to learn from (5 per class), 300
    others to score on, and 3,000 plain test digits to see forgetting on (all disjoint)."""
    rng = np.random.default_rng(0)
    learn = per_class(mnist.y_test, 5, rng)
    score_on = per_class(mnist.y_test, 30, rng, skip=100)
    assert not set(learn) & set(score_on)
    plain = np.setdiff1d(np.arange(len(mnist.y_test)), np.concatenate([learn, score_on]))[:3000]
    return {
        "x": thick(mnist.x_test[learn]),
        "y": mnist.y_test[learn],
        "x_eval": thick(mnist.x_test[score_on]),
        "y_eval": mnist.y_test[score_on],
        "x_plain": mnist.x_test[plain],
        "y_plain": mnist.y_test[plain],
    }


# ------------------------------------------------------------------ replay mixing
@pytest.mark.parametrize(
    ("batch", "replay", "expected"),
    [(32, 0.5, (16, 16)), (32, 0.0, (32, 0)), (32, 0.25, (24, 8)), (2, 0.95, (1, 1))],
)
def test_batch_shares(batch, replay, expected):
    assert batch_shares(batch, replay) == expected


def test_every_batch_holds_the_replay_share_and_every_personal_sample_equally_often():
    rng = np.random.default_rng(3)
    batches = list(mixed_batches(10, 1000, steps=8, batch_size=10, replay=0.5, rng=rng))
    assert len(batches) == 8
    seen = np.concatenate([mine for mine, _ in batches])
    assert all(mine.size == 5 and replayed.size == 5 for mine, replayed in batches)
    # 8 batches of 5 personal samples = 4 whole shuffled passes over the 10
    assert np.array_equal(np.bincount(seen, minlength=10), np.full(10, 4))
    for start in range(0, 40, 10):
        assert sorted(seen[start : start + 10]) == list(range(10))
    replayed = np.concatenate([r for _, r in batches])
    assert replayed.min() >= 0 and replayed.max() < 1000
    assert len(np.unique(replayed)) > 30  # fresh images every batch


def test_mixing_is_seeded_and_without_replay_takes_no_pool_image():
    def draw(seed):
        rng = np.random.default_rng(seed)
        return [np.concatenate(b) for b in mixed_batches(7, 50, 5, 8, 0.25, rng)]

    assert all(np.array_equal(a, b) for a, b in zip(draw(1), draw(1), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(draw(1), draw(2), strict=True))
    rng = np.random.default_rng(0)
    assert all(r.size == 0 for _, r in mixed_batches(7, 0, 5, 8, 0.0, rng))


def test_mixing_needs_personal_samples_and_a_pool_to_replay():
    rng = np.random.default_rng(0)
    with pytest.raises(FinetuneError, match="no personal samples"):
        next(mixed_batches(0, 100, 1, 8, 0.5, rng))
    with pytest.raises(FinetuneError, match="original training images"):
        next(mixed_batches(5, 0, 1, 8, 0.5, rng))


def test_epochs_become_steps_over_the_personal_share_of_a_batch():
    assert steps_for_epochs(1, 40, 32, 0.5) == 3  # 16 personal per batch: ceil(40 / 16)
    assert steps_for_epochs(10, 40, 32, 0.0) == 13  # ceil(400 / 32)
    assert steps_for_epochs(0.01, 3, 32, 0.5) == 1


# ------------------------------------------------------------------ splits
def test_per_digit_split_keeps_each_digit_on_both_sides():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 2 + [3] * 1)
    train, test = per_digit_split(labels, 0.3, np.random.default_rng(0))
    assert not set(train) & set(test)
    assert sorted(np.concatenate([train, test])) == list(range(labels.size))
    assert np.bincount(labels[test], minlength=4).tolist() == [3, 2, 1, 0]  # round(0.3 n), >=1
    assert np.bincount(labels[train], minlength=4).tolist() == [7, 3, 1, 1]  # singles teach
    again = per_digit_split(labels, 0.3, np.random.default_rng(0))
    assert np.array_equal(again[1], test)


def test_per_digit_split_refuses_a_share_outside_0_1():
    with pytest.raises(FinetuneError, match="between 0 and 1"):
        per_digit_split(np.array([0, 0, 1, 1]), 1.0, np.random.default_rng(0))


def test_leave_one_out_holds_out_each_sample_once():
    folds = list(leave_one_out(5))
    assert [held.tolist() for _, held in folds] == [[0], [1], [2], [3], [4]]
    assert all(sorted([*train, *held]) == list(range(5)) for train, held in folds)
    assert split_mode(LEAVE_ONE_OUT_BELOW - 1) == "leave-one-out"
    assert split_mode(LEAVE_ONE_OUT_BELOW) == "per-digit"


# ------------------------------------------------------------------ fine-tuning
def test_finetuning_learns_a_thick_pen_and_replay_limits_forgetting(starter, mnist, thick_style):
    s = thick_style
    before = score(starter, s["x_eval"], s["y_eval"], s["x_plain"], s["y_plain"])
    after = {}
    with threadpool_limits(1, "blas"):
        for replay in (0.0, 0.5):
            settings = FinetuneSettings(replay=replay, steps=150)
            tuned = finetune(starter, s["x"], s["y"], settings, mnist.x_train, mnist.y_train)
            after[replay] = score(tuned.model, s["x_eval"], s["y_eval"], s["x_plain"], s["y_plain"])
    print(
        f"thick digits {before.personal_accuracy:.3f} -> {after[0.5].personal_accuracy:.3f} "
        f"(replay 50%), {after[0.0].personal_accuracy:.3f} (no replay); MNIST "
        f"{before.test_accuracy:.4f} -> {after[0.5].test_accuracy:.4f} (replay 50%), "
        f"{after[0.0].test_accuracy:.4f} (no replay)"
    )
    # the style is hard for the MNIST network, and 50 samples teach it, with or without replay
    assert before.personal_accuracy < 0.6
    for replay in (0.0, 0.5):
        assert after[replay].personal_accuracy > before.personal_accuracy + 0.2
    drop_without = before.test_accuracy - after[0.0].test_accuracy
    drop_with = before.test_accuracy - after[0.5].test_accuracy
    assert drop_without > 0.03  # forgetting is real...
    assert drop_with < drop_without / 3  # ...and replay keeps most of it away


def test_finetuning_leaves_the_original_alone_and_is_seeded(starter, mnist, thick_style):
    s = thick_style
    original = starter.params.copy()
    settings = FinetuneSettings(steps=20, seed=4)
    a = finetune(starter, s["x"], s["y"], settings, mnist.x_train, mnist.y_train)
    b = finetune(starter, s["x"], s["y"], settings, mnist.x_train, mnist.y_train)
    c = finetune(
        starter, s["x"], s["y"], FinetuneSettings(steps=20, seed=5), mnist.x_train, mnist.y_train
    )
    assert np.array_equal(starter.params, original)
    assert np.array_equal(a.model.params, b.model.params)
    assert not np.array_equal(a.model.params, c.model.params)
    assert not np.array_equal(a.model.params, original)
    assert a.losses.shape == (20,) and np.all(np.isfinite(a.losses))


def test_teach_per_digit_scores_the_held_out_digits_before_and_after(starter, mnist, thick_style):
    s = thick_style
    outcome = teach(
        starter, s["x"], s["y"], FinetuneSettings(steps=60),
        replay_set=(mnist.x_train, mnist.y_train), test_set=(s["x_plain"], s["y_plain"]),
    )  # fmt: skip
    assert outcome.mode == "per-digit"  # 50 samples
    held = outcome.held_out
    assert held.size == 20 and np.array_equal(outcome.labels, s["y"][held])  # 2 of 5 per digit
    plain = starter.predict(s["x"][held])
    assert np.array_equal(outcome.before.personal_pred, plain)
    assert np.array_equal(outcome.after.personal_pred, outcome.model.predict(s["x"][held]))
    assert outcome.before.personal_accuracy == pytest.approx(np.mean(plain == s["y"][held]))
    changed = np.flatnonzero(plain != outcome.model.predict(s["x"][held]))
    assert np.array_equal(outcome.changed, changed)
    summary = outcome.summary()
    assert summary["held_out"] == 20 and len(summary["changed"]) == changed.size
    json.dumps(summary)  # plain values


def test_leave_one_out_scores_each_digit_with_the_fold_that_did_not_see_it(starter, mnist):
    rng = np.random.default_rng(2)
    pick = per_class(mnist.y_test, 1, rng)[:6]
    x, y = thick(mnist.x_test[pick]), mnist.y_test[pick]
    settings = FinetuneSettings(steps=15)
    replay = (mnist.x_train, mnist.y_train)
    outcome = teach(starter, x, y, settings, replay_set=replay)
    assert outcome.mode == "leave-one-out" and np.array_equal(outcome.held_out, np.arange(6))
    for i in (0, 4):  # the oracle: fine-tune without sample i by hand, then read sample i
        others = np.delete(np.arange(6), i)
        fold = finetune(starter, x[others], y[others], settings, *replay)
        assert outcome.after.personal_pred[i] == fold.model.predict(x[i : i + 1])[0]
    whole = finetune(starter, x, y, settings, *replay)
    assert np.array_equal(outcome.model.params, whole.model.params)  # the kept one saw all


# ------------------------------------------------------------------ bad input
def test_bad_input_gets_one_clear_sentence(starter, mnist):
    x = mnist.x_test[:10]
    y = mnist.y_test[:10]
    with pytest.raises(FinetuneError, match="none of your digits yet"):
        check_fits(starter, np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64))
    with pytest.raises(FinetuneError, match=r"reads 784-pixel images, but your digits are 16x16"):
        teach(starter, np.zeros((5, 16, 16), np.uint8), np.arange(5), FinetuneSettings(replay=0))
    with pytest.raises(FinetuneError, match="class 12, but the network has only 10 outputs"):
        check_fits(starter, x, np.full(10, 12))
    with pytest.raises(FinetuneError, match="single sample"):
        teach(starter, x[:3], np.array([0, 1, 2]), FinetuneSettings(replay=0), mode="per-digit")
    with pytest.raises(FinetuneError, match="Replay needs"):
        teach(starter, x, y, FinetuneSettings(replay=0.5))
    with pytest.raises(FinetuneError, match="learning rate"):
        FinetuneSettings(lr=0)
    with pytest.raises(FinetuneError, match="replay must be between"):
        FinetuneSettings(replay=1.0)


def test_a_diverging_finetune_says_so_and_returns_nothing(starter, mnist):
    wild = starter.copy()
    wild.params *= np.float32(1e19)  # logits overflow: the loss is no longer a number
    with pytest.raises(FinetuneError, match=r"diverged at step 1.*smaller learning rate"):
        finetune(wild, mnist.x_test[:20], mnist.y_test[:20], FinetuneSettings(replay=0))


# ------------------------------------------------------------------ command line
def _personal_file(tmp_path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    personal = PersonalSet(
        images, labels.astype(np.int64), np.zeros((len(labels), 140, 140), np.uint8)
    )
    path = tmp_path / "my_digits.npz"
    path.write_bytes(to_npz_bytes(personal))
    return path


def test_cli_finetune_prints_before_and_after_and_saves_a_new_model(
    tmp_path, capsys, mnist, thick_style
):
    data = _personal_file(tmp_path, thick_style["x"], thick_style["y"])
    out = tmp_path / "tuned.npz"
    code = main(
        ["finetune", "--model", str(STARTER), "--data", str(data), "--replay", "0.5",
         "--compare-replay", "0", "--steps", "60", "--out", str(out)]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0, text
    assert "Held out: 20 kept aside for testing (per digit, 0.3)" in text
    assert "after, replay 50%" in text and "after, replay 0%" in text
    rows = {line[:26].strip(): line[26:].split() for line in text.splitlines() if "%" in line}
    assert rows["MNIST test set"][0] == "97.2%"  # the starter, before
    assert f"Saved the fine-tuned model (replay 50%) to {out}" in text
    tuned = load_model(out)
    assert tuned.training["finetuned"]["replay"] == 0.5
    assert not np.array_equal(tuned.model.params, load_model(STARTER).model.params)


def test_cli_finetune_json_and_epochs(tmp_path, capsys, thick_style):
    data = _personal_file(tmp_path, thick_style["x"][:8], thick_style["y"][:8])
    code = main(
        ["finetune", "--model", str(STARTER), "--data", str(data), "--epochs", "2", "--json"]
    )
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    (run,) = document["runs"]
    assert run["split"] == "leave-one-out" and run["held_out"] == 8
    assert run["steps"] == 1  # 2 passes over 7 digits, 16 of them per batch


def test_cli_finetune_never_replaces_the_model_it_starts_from(tmp_path, capsys, thick_style):
    model = tmp_path / "model.npz"
    save_model(model, load_model(STARTER).model)
    before = model.read_bytes()
    data = _personal_file(tmp_path, thick_style["x"], thick_style["y"])
    code = main(["finetune", "--model", str(model), "--data", str(data), "--out", str(model)])
    err = capsys.readouterr().err
    assert code == 1 and "is the model you start from" in err and len(err.splitlines()) == 1
    assert model.read_bytes() == before


def test_cli_finetune_refuses_a_set_of_another_size_in_one_line(tmp_path, capsys):
    data = _personal_file(tmp_path, np.zeros((6, 16, 16), np.uint8), np.array([0, 1] * 3))
    code = main(["finetune", "--model", str(STARTER), "--data", str(data)])
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1
    assert "reads 784-pixel images, but your digits are 16x16" in err


def test_cli_finetune_refuses_a_damaged_file_in_one_line(tmp_path, capsys):
    bad = tmp_path / "my_digits.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    code = main(["finetune", "--model", str(STARTER), "--data", str(bad)])
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1 and "my_digits.npz" in err


def test_an_empty_set_cannot_be_saved():
    with pytest.raises(ValueError, match="at least two kinds"):
        to_npz_bytes(empty_set())


def test_a_kept_finetune_is_a_run_that_exports_and_imports(starter, mnist, thick_style):
    from nn_core.finetune import finetune_record
    from nn_core.run_record import export_run, load_run

    s = thick_style
    outcome = teach(
        starter, s["x"], s["y"], FinetuneSettings(steps=12),
        replay_set=(mnist.x_train, mnist.y_train), test_set=(s["x_plain"], s["y_plain"]),
    )  # fmt: skip
    record = finetune_record(
        outcome, name="starter fine-tuned", class_names=tuple("0123456789"), n_train=30
    )
    back = load_run(export_run(record))
    assert back.name == "starter fine-tuned" and back.origin == "finetune"
    assert back.status == "finished" and back.config.lr == 3e-4
    assert np.array_equal(back.model.params, outcome.model.params)
    assert back.history["batch_loss"] == pytest.approx(outcome.losses.tolist())
    assert back.metrics["test_accuracy"] == pytest.approx(outcome.after.test_accuracy)
    assert back.metrics["n_train"] == 30
