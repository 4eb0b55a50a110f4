import numpy as np
import pytest

from nn_core.losses import row_max, softmax, softmax_cross_entropy, softmax_cross_entropy_grad


def reference_loss(logits, labels):
    logits = logits.astype(np.float64)
    log_z = np.log(np.sum(np.exp(logits - logits.max(1, keepdims=True)), 1)) + logits.max(1)
    return float(np.mean(log_z - logits[np.arange(len(labels)), labels]))


def test_loss_matches_the_textbook_formula():
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((20, 5)), rng.integers(0, 5, 20)
    loss, probs = softmax_cross_entropy(logits, labels)
    assert np.isclose(loss, reference_loss(logits, labels), rtol=1e-12)
    np.testing.assert_allclose(probs, softmax(logits), rtol=1e-12)


def test_huge_logits_stay_finite():
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]], dtype=np.float32)
    loss, probs = softmax_cross_entropy(logits, np.array([2, 1]))
    assert np.isfinite(loss) and loss > 1e3
    assert np.all(np.isfinite(probs))


def test_fused_gradient_is_probs_minus_onehot_over_n():
    rng = np.random.default_rng(1)
    logits, labels = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    probs = softmax(logits)
    expected = (probs - np.eye(4)[labels]) / 6
    np.testing.assert_allclose(softmax_cross_entropy_grad(probs.copy(), labels), expected)


@pytest.mark.parametrize("n_columns", [1, 2, 10, 64, 65, 300])
def test_row_max_and_softmax_for_any_width(n_columns):
    logits = np.random.default_rng(n_columns).standard_normal((40, n_columns)) * 30
    np.testing.assert_array_equal(row_max(logits), logits.max(axis=1))
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax(logits), expected, rtol=1e-12)
