"""The hidden space: the fixed sample, a layer's representations, per-epoch snapshots,
PCA checked against NumPy's SVD, and the alignment between epochs (no flips, no spins)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nn_core import TrainConfig, Trainer
from nn_core import hidden_space as hs
from nn_core.network import MLP
from nn_core.training import Callbacks


def blobs(n: int = 300, width: int = 6, seed: int = 0) -> np.ndarray:
    """Points with clearly unequal variance along their first directions."""
    rng = np.random.default_rng(seed)
    scales = np.array([5.0, 2.0, 0.5, 0.3, 0.2, 0.1])[:width]
    return rng.standard_normal((n, width)) * scales + rng.standard_normal(width)


def rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def axis_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([np.corrcoef(a[:, i], b[:, i])[0, 1] for i in range(2)])


# ------------------------------------------------------------------------- sample
def test_the_sample_is_fixed_and_keeps_each_class_share():
    labels = np.repeat(np.arange(10), 1000)
    rows = hs.sample_rows(labels)
    assert rows.size == hs.SAMPLE_SIZE and np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(rows, hs.sample_rows(labels))
    assert np.bincount(labels[rows]).tolist() == [200] * 10
    np.testing.assert_array_equal(hs.sample_rows(labels[:50]), np.arange(50))


def test_hidden_representation_is_the_layers_activation():
    model = MLP(12, (7, 5), 3, activation="tanh", dtype="float64", seed=2, input_scale=0.5)
    x = np.random.default_rng(0).uniform(0, 2, (9, 12))
    _, post = model.forward(x, return_all=True)
    for layer in (0, 1):
        np.testing.assert_allclose(hs.hidden_representation(model, x, layer), post[layer])
    with pytest.raises(ValueError, match=r"hidden layer must be in 0\.\.1"):
        hs.hidden_representation(model, x, 2)


# ---------------------------------------------------------------------------- PCA
def test_pca_matches_numpys_svd():
    h = blobs()
    projection = hs.pca_projection(h)
    centred = h - h.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    oracle = centred @ vt[:2].T
    # the same coordinates up to the sign of each axis
    np.testing.assert_allclose(np.abs(projection.coords), np.abs(oracle), atol=1e-9)
    np.testing.assert_allclose(projection.explained, s[:2] ** 2 / np.sum(s**2), rtol=1e-9)
    np.testing.assert_allclose(projection.transform(h), projection.coords, atol=1e-12)


def test_procrustes_finds_a_known_rotation_and_reflection():
    points = blobs()[:, :2]
    points -= points.mean(axis=0)
    for turn in (rotation(0.7), rotation(-2.0) @ np.diag([1.0, -1.0])):
        found = hs.procrustes_rotation(points @ turn, points)
        np.testing.assert_allclose(found, turn.T, atol=1e-9)
        np.testing.assert_allclose(found @ found.T, np.eye(2), atol=1e-12)


def test_aligned_pca_never_flips_between_epochs():
    # The same representation, negated: PCA of each alone gives mirrored pictures.
    h = blobs()
    frames = [h, -h, -h + 0.01 * blobs(seed=1), h]
    plain = [hs.pca_projection(f).coords for f in frames]
    assert np.all(axis_correlations(plain[0], plain[1]) < -0.99)  # unaligned: flipped
    aligned = [p.coords for p in hs.aligned_pca(frames)]
    for before, after in itertools.pairwise(aligned):
        assert np.all(axis_correlations(before, after) > 0.99)


def test_aligned_pca_does_not_spin_when_two_directions_swap_order():
    # Two nearly equal directions that trade places: PCA's first axis jumps by 90 degrees.
    rng = np.random.default_rng(3)
    base = rng.standard_normal((400, 2))
    base /= base.std(axis=0)
    frames = [base * [1.05, 1.0], base * [1.0, 1.05], base * [1.06, 1.0]]
    aligned = [p.coords for p in hs.aligned_pca(frames)]
    for before, after in itertools.pairwise(aligned):
        assert np.all(axis_correlations(before, after) > 0.95)


def test_the_alignment_keeps_distances_and_projects_new_points_the_same_way():
    frames = [blobs(seed=0), blobs(seed=0) @ np.diag([1, -1, 1, 1, 1, 1])]
    _, second = hs.aligned_pca(frames)
    d = np.linalg.norm(second.coords[:50, None] - second.coords[None, :50], axis=-1)
    raw = hs.pca_projection(frames[1]).coords
    np.testing.assert_allclose(d, np.linalg.norm(raw[:50, None] - raw[None, :50], axis=-1))
    np.testing.assert_allclose(second.transform(frames[1]), second.coords, atol=1e-12)


def test_tsne_runs_in_stages_each_from_the_last_and_is_deterministic():
    h = np.concatenate([blobs(n=60, seed=0), blobs(n=60, seed=1) + 40])  # two far clusters
    stages = list(hs.tsne_stages(h, seed=1, stages=3))
    assert len(stages) == 3 and all(s.shape == (120, 2) for s in stages)
    np.testing.assert_allclose(hs.tsne_embedding(h, seed=1, stages=3), stages[-1])
    # an interrupted run resumes where it stopped and ends where it would have
    resumed = list(hs.tsne_stages(h, seed=1, stages=3, resume=(1, stages[0])))
    assert len(resumed) == 2
    np.testing.assert_allclose(resumed[-1], stages[-1])
    final = stages[-1]
    assert np.all(np.isfinite(final))
    # the two clusters stay apart: every point is nearer its own cluster's centre
    centres = final[:60].mean(axis=0), final[60:].mean(axis=0)
    own = np.linalg.norm(final[:60] - centres[0], axis=1)
    assert np.all(own < np.linalg.norm(final[:60] - centres[1], axis=1))


# ----------------------------------------------------------------------- snapshots
def tiny_trainer(epochs: int = 5) -> Trainer:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (300, 6, 6), dtype=np.uint8)
    y = x.reshape(300, -1)[:, :3].argmax(axis=1)
    config = TrainConfig(hidden=(8,), batch_size=32, epochs=epochs)
    return Trainer(config, x, y, n_classes=3)


def test_snapshots_hold_the_weights_at_the_end_of_each_epoch():
    trainer = tiny_trainer()
    snapshots = hs.NetworkSnapshots(trainer)
    seen = {0: trainer.model.params.astype(np.float32)}

    def remember(t, info):
        seen[info["epoch"]] = t.model.params.astype(np.float32)

    trainer.callbacks = Callbacks(on_epoch=(snapshots.on_epoch, remember))
    trainer.fit()
    assert snapshots.epochs() == [0, 1, 2, 3, 4, 5] and not snapshots.thinned
    for epoch, params in seen.items():
        np.testing.assert_array_equal(snapshots.kept[epoch], params)
        model = snapshots.model_at(epoch, trainer.model)
        np.testing.assert_array_equal(model.params, params)
    assert snapshots.nbytes == 6 * trainer.model.params.size * 4
    x = trainer.x[:7]
    epochs, probs = snapshots.probabilities(trainer.model, x)
    assert epochs == [0, 1, 2, 3, 4, 5] and probs.shape == (6, 7, 3)
    for i, epoch in enumerate(epochs):
        expected = snapshots.model_at(epoch, trainer.model).predict_proba(x)
        np.testing.assert_array_equal(probs[i], expected)
    assert not np.array_equal(probs[0], probs[-1])
    np.testing.assert_array_equal(trainer.model.params, seen[5])  # untouched


def test_a_kept_read_earlier_still_serves_epochs_thinned_since():
    trainer = tiny_trainer(epochs=4)
    one = trainer.model.params.size * 4
    snapshots = hs.NetworkSnapshots(trainer, budget_bytes=3 * one)
    trainer.callbacks = snapshots.callbacks()
    trainer.run(max_batches=2 * trainer.batches_per_epoch)
    earlier = snapshots.kept
    assert sorted(earlier) == [0, 1, 2]
    trainer.fit()  # epochs 3 and 4 thin out epoch 1 (and 2)
    assert 1 not in snapshots.kept
    epochs, probs = snapshots.probabilities(trainer.model, trainer.x[:3], earlier)
    assert epochs == [0, 1, 2]
    model = snapshots.model_at(1, trainer.model, earlier)
    np.testing.assert_array_equal(model.params, earlier[1])
    np.testing.assert_array_equal(probs[1], model.predict_proba(trainer.x[:3]))


def test_snapshots_are_thinned_to_the_budget_keeping_the_first_and_last():
    trainer = tiny_trainer(epochs=12)
    one = trainer.model.params.size * 4
    snapshots = hs.NetworkSnapshots(trainer, budget_bytes=5 * one)
    trainer.callbacks = snapshots.callbacks()
    trainer.fit()
    epochs = snapshots.epochs()
    assert snapshots.thinned and snapshots.nbytes <= 5 * one
    assert epochs[0] == 0 and epochs[-1] == 12 and len(epochs) >= 3
