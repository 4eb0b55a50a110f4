import numpy as np
import pytest
from scipy.special import logsumexp, softmax
from sklearn import metrics as sk

from nn_core import MLP
from nn_core.metrics import accuracy, confusion_matrix, evaluate, misclassified, per_class_scores


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 7, 500)
    y_pred = np.where(rng.random(500) < 0.6, y_true, rng.integers(0, 7, 500))
    y_pred[y_pred == 6] = 5  # class 6 is never predicted: precision must be 0, not NaN
    return y_true, y_pred


def test_accuracy_and_confusion_match_scikit_learn(predictions):
    y_true, y_pred = predictions
    assert accuracy(y_true, y_pred) == pytest.approx(sk.accuracy_score(y_true, y_pred))
    np.testing.assert_array_equal(
        confusion_matrix(y_true, y_pred, 7), sk.confusion_matrix(y_true, y_pred, labels=range(7))
    )


def test_per_class_scores_match_scikit_learn(predictions):
    y_true, y_pred = predictions
    scores = per_class_scores(confusion_matrix(y_true, y_pred, 7))
    p, r, f, s = sk.precision_recall_fscore_support(
        y_true, y_pred, labels=range(7), zero_division=0
    )
    np.testing.assert_allclose(scores["precision"], p)
    np.testing.assert_allclose(scores["recall"], r)
    np.testing.assert_allclose(scores["f1"], f)
    np.testing.assert_array_equal(scores["support"], s)


def test_mistakes_sorted_by_confidence_in_the_wrong_answer():
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]])
    y_true = np.array([0, 0, 0, 1, 1])
    np.testing.assert_array_equal(misclassified(y_true, probs), [2, 1, 3])


def _float64_forward(model, x: np.ndarray) -> np.ndarray:
    """The oracle: logits of a ReLU network, in float64, written out here independently."""
    h = x.reshape(len(x), -1).astype(np.float64) * model.input_scale
    for i, (w, b) in enumerate(zip(model.weights, model.biases)):
        h = h @ w.astype(np.float64) + b.astype(np.float64)
        if i < len(model.weights) - 1:
            h = np.maximum(h, 0)
    return h


def test_evaluate_agrees_with_a_float64_oracle_and_scikit_learn():
    rng = np.random.default_rng(3)
    model = MLP(20, (16,), 4, seed=1, input_scale=1.0)
    x = rng.normal(size=(300, 20)).astype(np.float32)
    y = rng.integers(0, 4, 300)
    result = evaluate(model, x, y)
    logits = _float64_forward(model, x)
    np.testing.assert_allclose(result["probs"], softmax(logits, axis=1), rtol=1e-4, atol=1e-6)
    predicted = logits.argmax(axis=1)
    np.testing.assert_array_equal(result["y_pred"], predicted)
    assert result["accuracy"] == pytest.approx(sk.accuracy_score(y, predicted))
    np.testing.assert_array_equal(
        result["confusion"], sk.confusion_matrix(y, predicted, labels=range(4))
    )
    oracle_loss = np.mean(logsumexp(logits, axis=1) - logits[np.arange(300), y])
    assert result["loss"] == pytest.approx(oracle_loss, rel=1e-5)
    assert result["n"] == 300 and result["scores"]["support"].sum() == 300


def test_evaluate_loss_is_true_for_very_confident_mistakes():
    """With logits hundreds apart, the true class's probability underflows to 0 in float32
    and a loss from probabilities would clip at -log(tiny) ~ 708: log-sum-exp keeps it."""
    model = MLP(2, (), 3, seed=0, input_scale=1.0)
    model.weights[0][...] = [[900.0, 0.0, -300.0], [0.0, 0.0, 0.0]]
    model.biases[0][...] = 0
    x = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    y = np.array([2, 0])  # wrong by a logit gap of 1200, then right
    result = evaluate(model, x, y)
    assert result["probs"][0, 2] == 0  # underflowed
    assert result["loss"] == pytest.approx(1200 / 2, rel=1e-6)
    assert result["accuracy"] == 0.5


def test_evaluate_an_empty_test_set():
    model = MLP(4, (3,), 2, input_scale=1.0)
    result = evaluate(model, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), n_classes=2)
    assert result["n"] == 0 and np.isnan(result["accuracy"]) and np.isnan(result["loss"])
    assert result["confusion"].shape == (2, 2) and result["confusion"].sum() == 0
