"""What each unit looks for: its responses, its top images, and the input synthesised to
excite it (checked against the exact optimum of a first-layer unit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nn_core import unit_views as uv
from nn_core.data import load_mnist
from nn_core.io import load_model
from nn_core.network import MLP

UNITS_L2, UNITS_BLUR = 0.05, 0.8  # what the Network page's units tab uses (ui/units.py)
STARTER = Path(__file__).resolve().parents[1] / "assets" / "starter_model.npz"


def small_model(activation: str = "relu", seed: int = 1) -> MLP:
    return MLP(16, (7, 5), 3, activation=activation, dtype="float64", seed=seed, input_scale=0.5)


@pytest.fixture(scope="module")
def starter():
    return load_model(STARTER).model


@pytest.fixture(scope="module")
def test_images():
    data = load_mnist()
    return data.x_test[:2000]


def test_responses_are_each_layers_pre_activation():
    model = small_model("sigmoid")
    x = np.random.default_rng(0).uniform(0, 2, (9, 16))
    pre, _ = model.forward(x, return_all=True)
    for layer in range(model.n_layers):
        np.testing.assert_allclose(uv.layer_responses(model, x, layer), pre[layer])


def test_top_images_are_the_largest_responses_first_ties_by_index():
    responses = np.array([[1.0, 5.0], [3.0, 5.0], [2.0, -1.0], [3.0, 0.0]])
    idx, values = uv.top_images(responses, k=3)
    assert idx[:, 0].tolist() == [1, 3, 2] and values[:, 0].tolist() == [3.0, 3.0, 2.0]
    assert idx[:, 1].tolist() == [0, 1, 3]
    idx, _ = uv.top_images(responses, k=10)
    assert idx.shape == (4, 2)


def test_a_first_layer_unit_reaches_its_exact_optimum():
    # Z = w . x + b over scaled pixels x in [0, 1] is largest with x = 1 where w > 0, else 0.
    model = small_model()
    for unit in range(7):
        w, b = model.weights[0][:, unit], model.biases[0][unit]
        best = np.maximum(w, 0).sum() + b
        found = uv.maximise_unit(model, 0, unit, steps=100, step_size=0.2, l2=0.0)
        np.testing.assert_array_equal(found.image, (w > 0).astype(float))
        assert found.response == pytest.approx(best, rel=1e-12)


@pytest.mark.parametrize("layer", [0, 1, 2])
@pytest.mark.parametrize(("l2", "blur"), [(0.01, 0.2), (UNITS_L2, UNITS_BLUR)])
def test_the_synthesised_input_raises_the_units_response(starter, test_images, layer, l2, blur):
    responses = uv.layer_responses(starter, test_images, layer)
    for unit in (0, 5):
        found = uv.maximise_unit(starter, layer, unit, l2=l2, blur=blur)
        assert found.image.shape == (784,)
        assert found.image.min() >= 0 and found.image.max() <= 1
        assert found.response > found.start
        # it excites the unit more than any of 2,000 real test digits
        assert found.response > responses[:, unit].max()
        # the path climbs: the last response is the best to within the last steps' noise
        assert found.response >= 0.99 * found.responses.max()


def test_maximising_is_deterministic_and_the_regulariser_darkens(starter):
    a = uv.maximise_unit(starter, 1, 3, l2=0.01)
    b = uv.maximise_unit(starter, 1, 3, l2=0.01)
    np.testing.assert_array_equal(a.image, b.image)
    darker = uv.maximise_unit(starter, 1, 3, l2=0.2)
    assert darker.image.mean() < a.image.mean()


def test_bad_units_and_settings_say_what_is_valid():
    model = small_model()
    with pytest.raises(ValueError, match=r"layer must be in 0\.\.2, got 3"):
        uv.maximise_unit(model, 3, 0)
    with pytest.raises(ValueError, match=r"layer 1 has units 0\.\.4, got 5"):
        uv.maximise_unit(model, 1, 5)
    with pytest.raises(ValueError, match="steps must be in"):
        uv.maximise_unit(model, 0, 0, steps=0)
    with pytest.raises(ValueError, match="blur must be in"):
        uv.maximise_unit(model, 0, 0, blur=2)
    wide = MLP(15, (4,), 3, seed=0)
    with pytest.raises(ValueError, match="not a square image"):
        uv.maximise_unit(wide, 0, 0, blur=0.5)
    assert uv.maximise_unit(wide, 0, 0, blur=0.5, image_shape=(3, 5)).image.shape == (15,)
