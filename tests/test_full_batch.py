"""The chunked, threaded full-batch path (nn_core.full_batch) against the plain dense one."""

import warnings

import numpy as np
import pytest

import nn_core.full_batch as full_batch
from nn_core import TrainConfig, Trainer
from nn_core.full_batch import FullBatch
from nn_core.network import MLP
from tests.gradcheck import relative_error


def pixels(n=203, d=30, k=5, seed=0):
    """uint8 'images', 80% zeros like MNIST (two inputs always 0, like its border pixels),
    with labels that depend on them."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, d)).astype(np.uint8)
    x[rng.random((n, d)) < 0.8] = 0
    x[:, [k + 1, d - 1]] = 0
    y = (x[:, :k].argmax(axis=1) + rng.integers(0, 2, n)) % k
    return x, y


def dense_loss_and_gradient(model, x, rows, y, l2=0.0):
    """The reference: every row prepared at once and taken in one pass, no chunks."""
    prepared = model.prepare_inputs(x[rows])
    loss, _ = model._data_loss_and_gradient(prepared, y[rows], 0.0, None)
    return model.add_l2(loss, l2), model.grads.copy()


@pytest.fixture(params=[1, 2], ids=["one thread", "two threads"])
def threads(request, monkeypatch):
    """Run the lanes one after the other, or in two threads."""
    monkeypatch.setattr(full_batch._blas, "threads", lambda: request.param)
    return request.param


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("gathered", [False, True], ids=["all rows", "a subset of rows"])
@pytest.mark.parametrize("compact", [False, True], ids=["as stored", "compacted"])
def test_gradient_matches_the_dense_pass(threads, dtype, gathered, compact):
    x, y = pixels()
    rows = np.flatnonzero(np.arange(x.shape[0]) % 3 != 1) if gathered else np.arange(x.shape[0])
    model = MLP(x.shape[1], (9, 6), 5, dtype=dtype, seed=3)
    loss, grads = dense_loss_and_gradient(model, x, rows, y, l2=0.01)
    # 9 or 13 chunks, the last ragged
    batch = FullBatch(model, x, rows, y[rows], chunk=16, compact=compact)
    got = batch.loss_and_gradient(l2=0.01)
    tolerance = 1e-13 if dtype == "float64" else 2e-6
    assert got.loss == pytest.approx(loss, rel=tolerance)
    assert relative_error(got.grads, grads) < tolerance
    predicted = model.logits(x[rows]).argmax(axis=1)
    assert got.n_correct == int(np.count_nonzero(predicted == y[rows]))


@pytest.mark.parametrize("compact", [False, True], ids=["as stored", "compacted"])
def test_gradient_matches_finite_differences(compact):
    x, y = pixels(n=41, d=8, k=3)
    rows = np.arange(0, 41, 2)
    model = MLP(8, (5,), 3, dtype="float64", seed=1, activation="tanh")
    batch = FullBatch(model, x, rows, y[rows], chunk=4, compact=compact)
    analytic = batch.loss_and_gradient(l2=0.1).grads.copy()
    numeric = np.zeros_like(analytic)
    eps = 1e-6
    for k in range(model.params.size):
        old = model.params[k]
        model.params[k] = old + eps
        plus = batch.loss_and_gradient(l2=0.1).loss
        model.params[k] = old - eps
        minus = batch.loss_and_gradient(l2=0.1).loss
        model.params[k] = old
        numeric[k] = (plus - minus) / (2 * eps)
    assert relative_error(analytic, numeric) < 1e-7


def test_one_thread_and_two_give_the_same_numbers(monkeypatch):
    x, y = pixels(n=500)
    results = []
    for count in (1, 2):
        monkeypatch.setattr(full_batch._blas, "threads", lambda count=count: count)
        model = MLP(x.shape[1], (10,), 5, seed=0)
        got = FullBatch(model, x, np.arange(500), y, chunk=64).loss_and_gradient()
        results.append((got.loss, got.grads.copy(), got.n_correct))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-6, atol=1e-9)
    assert results[0][2] == results[1][2]


@pytest.mark.parametrize("compact", [False, True], ids=["as stored", "compacted"])
def test_logits_match_the_networks_own(threads, compact):
    x, _ = pixels(n=150)
    model = MLP(x.shape[1], (7,), 5, seed=2)
    rows = np.arange(10, 150, 3)
    got = FullBatch(model, x, rows, chunk=8, compact=compact).logits()
    np.testing.assert_allclose(got, model.logits(x[rows]), rtol=1e-6, atol=1e-6)


def test_twenty_iterations_follow_the_dense_loop(threads):
    """The Trainer's full-batch losses and weights against plain gradient descent on the
    whole prepared batch in one pass, for 20 iterations (float32)."""
    x, y = pixels(n=2500, d=40)
    config = TrainConfig(
        hidden=(10,), optimizer="gd", lr=0.5, batch_size=0, epochs=20, val_fraction=0.2
    )
    trainer = Trainer(config, x, y)
    reference = trainer.model.copy()
    rows = trainer.train_idx
    trainer.fit()
    losses = []
    for _ in range(20):
        loss, grads = dense_loss_and_gradient(reference, x, rows, y)
        reference.params -= np.float32(0.5) * grads
        losses.append(loss)
    np.testing.assert_allclose(trainer.history.batch_loss, losses, rtol=1e-5)
    np.testing.assert_allclose(trainer.model.params, reference.params, rtol=1e-4, atol=1e-5)
    assert np.isfinite(trainer.history.val_loss[-1])
    val_loss, val_acc = trainer.evaluate(trainer.x_val, trainer.y_val)
    assert trainer.history.val_loss[-1] == pytest.approx(val_loss, rel=1e-5)
    assert trainer.history.val_accuracy[-1] == val_acc


def test_dropout_runs_in_chunk_order_and_is_reproducible(monkeypatch):
    monkeypatch.setattr(full_batch._blas, "threads", lambda: 2)
    x, y = pixels(n=300)
    config = TrainConfig(hidden=(12,), optimizer="gd", lr=0.3, batch_size=0, epochs=4)
    runs = [Trainer(config.replace(dropout=0.3), x, y) for _ in range(2)]
    for trainer in runs:
        trainer.fit()
    np.testing.assert_array_equal(runs[0].model.params, runs[1].model.params)


def test_lanes_keep_the_callers_floating_point_error_settings(threads):
    """The Trainer silences overflows (a diverging run has them; its loss test catches
    them). np.errstate holds for one thread: the lanes in other threads must get it too."""
    x, y = pixels(n=400)
    model = MLP(x.shape[1], (10,), 5, input_scale=1e37)  # 255e37 overflows float32
    batch = FullBatch(model, x, np.arange(400), y, chunk=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="ignore", invalid="ignore"):
            got = batch.loss_and_gradient()
    assert not np.isfinite(got.loss)


def test_compacting_drops_only_the_inputs_that_are_zero_in_every_row():
    x, y = pixels(n=100, d=12, k=3)
    x[:, 0] = 0
    x[57, 0] = 9  # one row in the batch has it: kept
    x[3, 5] = 0
    model = MLP(12, (4,), 3, seed=0)
    batch = FullBatch(model, x, np.arange(100), y, compact=True)
    assert batch.x.shape == (100, 10)  # inputs 4 and 11 (k + 1, d - 1) are always 0
    got = batch.loss_and_gradient(l2=0.5)
    # a dropped input's weights get only the L2 term's gradient
    np.testing.assert_allclose(
        got.grads[: 12 * 4].reshape(12, 4)[[4, 11]], 0.5 * model.weights[0][[4, 11]]
    )


def test_the_blas_thread_count_is_put_back():
    before = full_batch._blas.threads()
    x, y = pixels(n=300)
    model = MLP(x.shape[1], (10,), 5)
    FullBatch(model, x, np.arange(300), y, chunk=32).loss_and_gradient()
    assert full_batch._blas.threads() == before


def test_a_batch_without_labels_says_so():
    x, _ = pixels(n=20)
    with pytest.raises(ValueError, match="no labels"):
        FullBatch(MLP(x.shape[1], (4,), 5), x, np.arange(20)).loss_and_gradient()


def test_a_forked_child_gets_lane_threads_of_its_own(threads):
    """A process forked after a full-batch step (multiprocessing's fork) inherits the pool
    object but not its thread: the child must make its own instead of waiting forever."""
    import multiprocessing

    x, y = pixels(n=300)
    model = MLP(x.shape[1], (10,), 5)
    FullBatch(model, x, np.arange(300), y, chunk=32).loss_and_gradient()
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        loss = pool.apply_async(_child_loss, (x, y, threads)).get(timeout=30)
    assert np.isfinite(loss)


def _child_loss(x, y, threads):
    full_batch._blas.threads = lambda: threads
    model = MLP(x.shape[1], (10,), 5)
    return FullBatch(model, x, np.arange(300), y, chunk=32).loss_and_gradient().loss


def test_a_count_set_during_a_step_is_the_one_kept_after_it():
    """The app sets the process's BLAS count (one per training when two run); set while a
    full-batch step holds the BLAS at one thread, it must win over the step's own put-back."""
    before = full_batch._blas.threads()
    try:
        full_batch.set_blas_threads(2)
        with full_batch._blas.single_threaded():
            assert full_batch._blas.threads() == 1
            full_batch.set_blas_threads(1)  # a second training started
        assert full_batch._blas.threads() == 1
        with full_batch._blas.single_threaded():
            full_batch.set_blas_threads(2)  # it ended
        assert full_batch._blas.threads() == 2
    finally:
        full_batch.set_blas_threads(before)


def test_a_batch_of_one_chunk_holds_one_lane_and_the_same_numbers(threads):
    """Few rows of large images (an upload of 8 photos): one chunk, so one lane's buffers,
    not two; the gradient is the dense pass's."""
    x, y = pixels(n=7, d=50)
    model = MLP(x.shape[1], (4,), 5, dtype="float64", seed=1)
    loss, grads = dense_loss_and_gradient(model, x, np.arange(7), y)
    batch = FullBatch(model, x, np.arange(7), y, chunk=16)
    assert batch.n_lanes == 1 and len(batch._inputs) == 1
    got = batch.loss_and_gradient()
    assert got.loss == pytest.approx(loss, rel=1e-13)
    assert relative_error(got.grads, grads) < 1e-13
    assert FullBatch(model, x, np.arange(7), y, chunk=4).n_lanes == full_batch.LANES
