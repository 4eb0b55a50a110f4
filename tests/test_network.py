import numpy as np
import pytest

import nn_core.network as network
from nn_core.activations import ACTIVATIONS
from nn_core.network import MLP, n_parameters
from tests.gradcheck import numerical_gradient, relative_error


def small_problem(seed: int = 0, n: int = 9, d: int = 12, k: int = 4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, k, n)


def small_model(activation: str = "relu", hidden=(7, 5), seed: int = 1) -> MLP:
    return MLP(12, hidden, 4, activation=activation, dtype="float64", seed=seed, input_scale=1.0)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_gradient_matches_finite_differences(activation, l2):
    x, y = small_problem()
    model = small_model(activation)
    analytic = model.loss_and_gradient(x, y, l2=l2).grads.copy()
    assert relative_error(analytic, numerical_gradient(model, x, y, l2=l2)) < 1e-6


def test_output_layer_gradient_without_hidden_layers():
    x, y = small_problem(3)
    model = small_model(hidden=())
    analytic = model.loss_and_gradient(x, y, l2=0.1).grads.copy()
    assert relative_error(analytic, numerical_gradient(model, x, y, l2=0.1)) < 1e-6


def test_dropout_gradient_matches_finite_differences_for_a_fixed_mask():
    x, y = small_problem(4)
    model = small_model("tanh")

    def loss_with_mask(seed):
        return model.loss_and_gradient(x, y, dropout=0.3, rng=np.random.default_rng(seed))

    analytic = loss_with_mask(7).grads.copy()
    numeric = np.zeros_like(analytic)
    for k in range(model.params.size):
        old = model.params[k]
        model.params[k] = old + 1e-6
        plus = loss_with_mask(7).loss
        model.params[k] = old - 1e-6
        minus = loss_with_mask(7).loss
        model.params[k] = old
        numeric[k] = (plus - minus) / 2e-6
    assert relative_error(analytic, numeric) < 1e-6


def test_dropout_zeroes_about_the_requested_share_and_keeps_the_mean():
    model = MLP(20, (400,), 3, seed=0, input_scale=1.0)
    x = np.abs(np.random.default_rng(0).standard_normal((64, 20))).astype(np.float32)
    model.loss_and_gradient(x, np.zeros(64, int), dropout=0.5, rng=np.random.default_rng(1))
    mask = model._buffers.masks[0][:64]
    assert 0.45 < np.mean(mask == 0) < 0.55
    assert set(np.unique(mask)) == {0.0, 2.0}


def test_forward_returns_every_layer_and_probabilities():
    model = MLP(784, (32, 16), 10, seed=0)
    x = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    pre, act = model.forward(x, return_all=True)
    assert [a.shape for a in act] == [(5, 32), (5, 16), (5, 10)]
    assert [z.shape for z in pre] == [(5, 32), (5, 16), (5, 10)]
    np.testing.assert_allclose(act[0], np.maximum(pre[0], 0))
    np.testing.assert_allclose(act[-1].sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(x), act[-1].argmax(axis=1))


def test_predict_proba_in_chunks_matches_one_pass():
    model = MLP(16, (8,), 3, seed=0, input_scale=1.0)
    x = np.random.default_rng(1).standard_normal((5000, 16)).astype(np.float32)
    np.testing.assert_allclose(model.predict_proba(x), model.forward(x), rtol=1e-6)


def test_parameters_live_in_one_flat_buffer():
    model = MLP(784, (128, 64), 10)
    assert model.n_params == n_parameters((784, 128, 64, 10)) == 109_386
    model.weights[1][0, 0] = 42.0
    assert 42.0 in model.params
    assert model.params.dtype == np.float32


def test_float64_on_request():
    assert MLP(4, (3,), 2, dtype="float64").params.dtype == np.float64


def test_same_seed_same_weights_and_different_seed_different():
    a, b, c = MLP(10, (5,), 3, seed=3), MLP(10, (5,), 3, seed=3), MLP(10, (5,), 3, seed=4)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)


def test_notebook_init_is_uniform_zero_one_and_he_is_centred():
    notebook = MLP(784, (10,), 10, init="notebook", seed=0)
    assert notebook.params.min() >= 0 and notebook.params.max() < 1
    he = MLP(784, (256,), 10, init="he", seed=0)
    assert abs(he.weights[0].mean()) < 0.01
    assert he.weights[0].std() == pytest.approx(np.sqrt(2 / 784), rel=0.05)


def test_copy_is_independent():
    model = MLP(6, (4,), 2, seed=0)
    clone = model.copy()
    clone.params += 1
    assert not np.allclose(clone.params, model.params)
    assert np.shares_memory(clone.weights[0], clone.params)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hidden": (0,)},
        {"n_classes": 1},
        {"activation": "swish"},
        {"init": "zeros"},
        {"dtype": "int32"},
    ],
)
def test_bad_architecture_is_refused(kwargs):
    args = {"n_inputs": 4, "hidden": (3,), "n_classes": 2, **kwargs}
    with pytest.raises(ValueError):
        MLP(**args)


def test_wrong_input_width_says_what_it_expects():
    with pytest.raises(ValueError, match="784 inputs"):
        MLP(784, (4,), 10).predict(np.zeros((2, 10, 10)))


def test_fused_training_loss_matches_the_reference_loss_function():
    from nn_core.losses import softmax_cross_entropy

    x, y = small_problem(5)
    model = small_model("relu")
    loss = model.loss_and_gradient(x, y).loss
    pre, _ = model.forward(x, return_all=True)
    reference, _ = softmax_cross_entropy(pre[-1], y)
    assert loss == pytest.approx(reference, rel=1e-12)


def test_logits_are_the_output_pre_activations_and_give_the_probabilities():
    from nn_core.losses import softmax

    model = MLP(16, (8,), 3, seed=0, input_scale=1.0)
    x = np.random.default_rng(2).standard_normal((5000, 16)).astype(np.float32)
    pre, act = model.forward(x, return_all=True)
    np.testing.assert_allclose(model.logits(x), pre[-1], rtol=1e-6)
    np.testing.assert_allclose(softmax(model.logits(x)), act[-1], rtol=1e-5)


def test_a_batch_gradient_counts_the_right_answers_of_the_weights_it_was_taken_at():
    x, y = small_problem(6, n=40)
    model = small_model("tanh")
    expected = int(np.sum(model.predict(x) == y))
    result = model.loss_and_gradient(x, y)
    assert result.n_correct == expected
    assert result.grads is model.grads


def _argmax_count(logits, y):
    return int(np.count_nonzero(logits.argmax(axis=1) == y))


@pytest.mark.parametrize("case", ["distinct", "ties", "all equal", "nan", "inf"])
def test_right_answers_from_the_shifted_logits_are_argmax_including_ties(case):
    """The training step counts right answers from ``z - max z`` (a row's true class is
    right when its entry is 0); ties and non-finite rows must still follow ``argmax``."""
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((300, 10)).astype(np.float32)
    y = rng.integers(0, 10, 300)
    logits[np.arange(0, 300, 3), y[::3]] += 3  # a third of the rows right
    if case == "ties":  # the true class ties with a class before and after it
        rows = np.arange(0, 300, 7)
        best = logits[rows].max(axis=1)
        logits[rows, y[rows]] = best
        logits[rows, (y[rows] + 1) % 10] = best
        logits[rows, (y[rows] + 9) % 10] = best
    elif case == "all equal":  # zero weights: every class ties, argmax says class 0
        logits[:] = 0.5
    elif case == "nan":
        logits[5, 2] = np.nan
    elif case == "inf":
        logits[9, y[9]] = np.inf
        logits[11, :] = np.inf
    expected = _argmax_count(logits, y)
    model = MLP(4, (), 10, seed=0)
    buf = model._batch_buffers(300, False)
    with np.errstate(invalid="ignore", over="ignore"):
        _, _, n_correct = model._softmax_loss_and_delta(logits.copy(), y, buf)
    assert n_correct == expected
    if case == "all equal":
        assert expected == np.count_nonzero(y == 0)


def test_full_batch_chunks_count_the_right_answers_of_every_row():
    x, y = small_problem(8, n=3000)
    model = small_model("relu")
    expected = int(np.sum(model.predict(x) == y))
    assert model.loss_and_gradient(x, y).n_correct == expected  # > GRADIENT_CHUNK rows


@pytest.mark.parametrize("hidden", [(7, 5), (30,), ()], ids=["narrow", "wide", "no hidden"])
def test_products_in_row_blocks_give_the_gradient_and_the_outputs(monkeypatch, hidden):
    """A narrow layer multiplies its inputs a block of rows at a time (under OpenBLAS's
    small-matrix limit, network._product); make the limit small so that 100 rows go as
    blocks of 34, 33, 33 (the wide layer stays one product), and check the gradient
    against finite differences and the outputs against plain NumPy."""
    monkeypatch.setattr(network, "SMALL_GEMM_MNK", 12 * 7 * 40)
    x, y = small_problem(5, n=100)
    model = small_model(hidden=hidden)
    analytic = model.loss_and_gradient(x, y).grads.copy()
    assert relative_error(analytic, numerical_gradient(model, x, y)) < 1e-6
    a = x
    for layer, (W, b) in enumerate(zip(model.weights, model.biases), start=1):
        a = a @ W + b
        if layer < model.n_layers:
            a = np.maximum(a, 0)
    np.testing.assert_allclose(model.logits(x), a, rtol=1e-12, atol=1e-12)


# ------------------------------------------------- the same bits on any BLAS thread count
@pytest.fixture
def blas_count():
    """``set(n)`` the process's BLAS threads for the test; the count is put back after."""
    from nn_core import full_batch

    before = full_batch.blas_thread_count() or 1
    yield full_batch.set_blas_threads
    full_batch.set_blas_threads(before)


def _on_each_count(blas_count, work):
    results = []
    for n in (1, 2):
        blas_count(n)
        results.append(work())
    return results


@pytest.mark.parametrize(
    ("m", "k", "n"), [(128, 784, 128), (128, 500, 64), (1024, 717, 10), (10, 1024, 784)]
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_long_product_has_the_same_bits_on_one_and_two_threads(blas_count, m, k, n, dtype):
    """OpenBLAS cuts an inner dimension over ~448 differently with two threads than with
    one (784 pixels: up to 3e-5 apart); ``_matmul`` sums blocks of ``INVARIANT_K``."""
    rng = np.random.default_rng(0)
    A, B = rng.random((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)

    def product():
        out = np.empty((m, n), dtype)
        network._matmul(A, B, out)
        return out

    one, two = _on_each_count(blas_count, product)
    np.testing.assert_array_equal(one, two)
    expected = A @ B
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(one, expected, rtol=0, atol=k * eps * np.abs(expected).max())


def test_blocked_products_keep_a_small_work_array():
    """Output rows go ``SCRATCH_BYTES`` at a time: a 4,096 x 1,024 product (float64, 32 MB)
    does not keep a 32 MB work array per thread."""
    rng = np.random.default_rng(1)
    A, B = rng.random((4096, 1024)), rng.standard_normal((1024, 1024))
    out = np.empty((4096, 1024))
    network._matmul(A, B, out)
    expected = A @ B
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    assert network._scratch((1, 1), np.float64).base.nbytes <= network.SCRATCH_BYTES


@pytest.mark.parametrize(
    "settings",
    [
        {"hidden": (600, 32), "batch_size": 500, "dropout": 0.0},  # 784, 600 and 500 terms
        {"hidden": (10,), "batch_size": 300, "dropout": 0.0},  # narrow: blocks of rows too
        {"hidden": (10,), "batch_size": 0, "dropout": 0.0},  # full batch: the lanes
        {"hidden": (10,), "batch_size": 0, "dropout": 0.2},  # lanes one after the other
    ],
)
def test_training_gives_the_same_weights_on_one_and_two_threads(blas_count, settings):
    """The same seed and settings give the same numbers whatever BLAS thread count the
    machine, the CLI or the app's thread policy picks (it may change it between chunks)."""
    from nn_core import TrainConfig, Trainer

    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (2200, 28, 28)).astype(np.uint8)
    y = rng.integers(0, 10, 2200)
    config = TrainConfig(optimizer="adam", lr=1e-3, epochs=2, val_fraction=0.1, **settings)

    def train():
        trainer = Trainer(config, x, y)
        trainer.fit()
        return trainer.model.params.copy(), trainer.model.predict(x[:300])

    (params_1, predicted_1), (params_2, predicted_2) = _on_each_count(blas_count, train)
    np.testing.assert_array_equal(params_1, params_2)
    np.testing.assert_array_equal(predicted_1, predicted_2)
