import numpy as np
import pytest
from sklearn import metrics as sk

from nn_core.metrics import accuracy, confusion_matrix, misclassified, per_class_scores


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
