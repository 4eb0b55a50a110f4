import numpy as np
import pytest

from nn_core import TrainConfig, Trainer
from nn_core import explain as ex
from nn_core.activations import ACTIVATIONS
from nn_core.data import load_mnist
from nn_core.network import MLP
from tests.gradcheck import relative_error

SHAPE = (3, 4)
SCALE = 0.5  # not 1: the tests also check that gradients are per scaled pixel
EPS = 1e-6


def small_model(activation: str = "relu", hidden=(7, 5), seed: int = 1) -> MLP:
    return MLP(12, hidden, 4, activation=activation, dtype="float64", seed=seed, input_scale=SCALE)


def small_images(seed: int = 0, n: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.1, 1.9, (n, *SHAPE))


def logits_of(model: MLP, images: np.ndarray) -> np.ndarray:
    pre, _ = model.forward(images, return_all=True)
    return pre[-1]


def numerical_input_gradient(score, images: np.ndarray) -> np.ndarray:
    """d score(images)[i] / d images[i] by central differences, shape of ``images``.

    ``score`` maps a batch to one number per image; the images do not interact, so one
    pixel index can be perturbed in every image at once.
    """
    grad = np.zeros_like(images)
    flat, out = images.reshape(len(images), -1), grad.reshape(len(images), -1)
    for k in range(flat.shape[1]):
        plus, minus = flat.copy(), flat.copy()
        plus[:, k] += EPS
        minus[:, k] -= EPS
        out[:, k] = (score(plus.reshape(images.shape)) - score(minus.reshape(images.shape))) / (
            2 * EPS
        )
    return grad


def per_scaled_pixel(raw_gradient: np.ndarray) -> np.ndarray:
    """A gradient per raw unit, expressed per scaled unit (raw = scaled / SCALE)."""
    return raw_gradient / SCALE


# ------------------------------------------------------------------------ activations
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_activations_match_predict_proba_and_each_layer(activation):
    model, images = small_model(activation), small_images()
    acts = ex.layer_activations(model, images)
    np.testing.assert_allclose(acts.probs, model.predict_proba(images), rtol=1e-12)
    forward = ACTIVATIONS[activation][0]
    h = images.reshape(len(images), -1) * SCALE
    for i, (w, b) in enumerate(zip(model.weights, model.biases)):
        z = h @ w + b
        np.testing.assert_allclose(acts.pre[i], z, rtol=1e-12, atol=1e-12)
        if i < model.n_layers - 1:
            a = z.copy()
            forward(a)
            np.testing.assert_allclose(acts.post[i], a, rtol=1e-12, atol=1e-12)
            h = a
    assert [a.shape for a in acts.hidden] == [(5, 7), (5, 5)]
    assert acts.logits.shape == (5, 4)


# ---------------------------------------------------------------------- contributions
@pytest.mark.parametrize("hidden", [(7, 5), (6,), ()])
def test_contributions_sum_with_the_bias_to_the_logit(hidden):
    model, images = small_model(hidden=hidden), small_images(1)
    classes = np.array([0, 3, 1, 2, 3])
    contrib = ex.class_contributions(model, images, classes, top=3)
    logits = logits_of(model, images)
    expected = logits[np.arange(5), classes]
    np.testing.assert_allclose(contrib.values.sum(axis=1) + contrib.bias, expected, rtol=1e-12)
    np.testing.assert_allclose(contrib.logit, expected, rtol=1e-12)
    assert contrib.values.shape == (5, hidden[-1] if hidden else 12)


def test_top_contributions_are_the_largest_in_order():
    model, images = small_model(hidden=(9,)), small_images(2)
    contrib = ex.class_contributions(model, images, 2, top=4)
    for row, top in zip(contrib.values, contrib.top):
        np.testing.assert_array_equal(row[top], np.sort(row)[::-1][:4])
        assert len(set(top)) == 4
    assert np.array_equal(contrib.classes, np.full(5, 2))


def test_contribution_of_one_unit_is_its_activation_times_its_weight():
    model, images = small_model(hidden=(6,)), small_images(3)
    hidden_act = ex.layer_activations(model, images).hidden[-1]
    contrib = ex.class_contributions(model, images, 1)
    assert contrib.values[2, 4] == pytest.approx(hidden_act[2, 4] * model.weights[-1][4, 1])


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_logit_gradient_matches_finite_differences(activation):
    model, images = small_model(activation), small_images(4)
    classes = np.array([1, 0, 3, 3, 2])
    analytic = ex.logit_gradient(model, images, classes)
    numeric = numerical_input_gradient(lambda x: logits_of(model, x)[np.arange(5), classes], images)
    assert analytic.shape == images.shape
    assert relative_error(analytic, per_scaled_pixel(numeric)) < 1e-7


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_contrast_gradient_matches_finite_differences(activation):
    model, images = small_model(activation, hidden=(8,)), small_images(5)
    analytic = ex.contrast_gradient(model, images, 3, np.array([0, 1, 2, 0, 1]))
    rivals = np.array([0, 1, 2, 0, 1])
    numeric = numerical_input_gradient(
        lambda x: logits_of(model, x)[:, 3] - logits_of(model, x)[np.arange(5), rivals], images
    )
    assert relative_error(analytic, per_scaled_pixel(numeric)) < 1e-7


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_gradient_times_input_is_the_numerical_gradient_times_the_scaled_pixels(activation):
    model, images = small_model(activation), small_images(6)
    analytic = ex.gradient_times_input(model, images, 2)
    numeric = numerical_input_gradient(lambda x: logits_of(model, x)[:, 2], images)
    # per raw unit times raw pixels == per scaled unit times scaled pixels
    assert relative_error(analytic, numeric * images) < 1e-7


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_counterfactual_gradient_is_the_cross_entropy_gradient(activation):
    model, images = small_model(activation), small_images(7)
    targets = np.array([0, 1, 2, 3, 0])

    def cross_entropy(x):
        return -np.log(model.predict_proba(x)[np.arange(5), targets])

    prepared = model.prepare_inputs(images)
    analytic, probs = ex._input_gradient(model, prepared, targets=ex._one_hot(model, targets))
    numeric = numerical_input_gradient(cross_entropy, images).reshape(5, -1)
    assert relative_error(analytic, per_scaled_pixel(numeric)) < 1e-7
    np.testing.assert_allclose(probs, model.predict_proba(images), rtol=1e-12)


def test_gradient_of_a_network_without_hidden_layers_is_the_weight_column():
    model, images = small_model(hidden=()), small_images(8)
    grad = ex.logit_gradient(model, images, 1)
    for row in grad.reshape(5, -1):
        np.testing.assert_allclose(row, model.weights[0][:, 1], rtol=1e-12)


def test_flat_inputs_give_flat_maps():
    model, images = small_model(), small_images(9)
    flat = images.reshape(5, -1)
    np.testing.assert_array_equal(
        ex.logit_gradient(model, flat, 0), ex.logit_gradient(model, images, 0).reshape(5, -1)
    )


# --------------------------------------------------------------------------- occlusion
def occlusion_by_loop(model, image, cls, patch, stride, fill):
    """The occlusion map of one (H, W) image, one occluded copy at a time."""
    h, w = image.shape
    base = model.predict_proba(image[None])[0, cls]
    total, count = np.zeros((h, w)), np.zeros((h, w))
    rows = list(range(0, h - patch + 1, stride))
    cols = list(range(0, w - patch + 1, stride))
    if rows[-1] != h - patch:
        rows.append(h - patch)
    if cols[-1] != w - patch:
        cols.append(w - patch)
    for r in rows:
        for c in cols:
            copy = image.copy()
            copy[r : r + patch, c : c + patch] = fill
            total[r : r + patch, c : c + patch] += base - model.predict_proba(copy[None])[0, cls]
            count[r : r + patch, c : c + patch] += 1
    return total / count


@pytest.mark.parametrize(("patch", "stride"), [(2, 1), (2, 2), (3, 2), (1, 1), (4, 3)])
def test_occlusion_matches_a_plain_loop(patch, stride):
    model = MLP(30, (8,), 4, activation="tanh", dtype="float64", seed=3, input_scale=SCALE)
    images = np.random.default_rng(1).uniform(0, 2, (3, 5, 6))
    classes = np.array([0, 2, 3])
    fast = ex.occlusion_map(model, images, classes, patch=patch, stride=stride, fill=0.25)
    for image, cls, result in zip(images, classes, fast):
        expected = occlusion_by_loop(model, image, cls, patch, stride, 0.25)
        np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-12)


def test_occlusion_in_chunks_matches_one_batch(monkeypatch):
    model = MLP(16, (5,), 3, dtype="float64", seed=0, input_scale=1.0)
    images = np.random.default_rng(2).uniform(0, 1, (7, 16))
    whole = ex.occlusion_map(model, images, 1, patch=2, stride=1)
    monkeypatch.setattr(ex, "OCCLUSION_BATCH_ELEMENTS", 1)
    np.testing.assert_allclose(ex.occlusion_map(model, images, 1, patch=2, stride=1), whole)
    assert whole.shape == (7, 16)


def test_occlusion_masks_cover_every_pixel():
    masks = ex.occlusion_masks((28, 28), 5, 4)
    assert masks.shape == (7 * 7, 784)
    assert masks.sum(axis=0).min() >= 1
    assert np.all(masks.sum(axis=1) == 25)


def test_occlusion_rejects_a_patch_larger_than_the_image():
    with pytest.raises(ValueError, match="patch must be"):
        ex.occlusion_map(small_model(), small_images(), 0, patch=5)


def test_flat_inputs_that_are_not_square_need_an_image_shape():
    model = MLP(12, (4,), 3, dtype="float64", input_scale=1.0)
    flat = np.random.default_rng(0).uniform(0, 1, (2, 12))
    with pytest.raises(ValueError, match="image_shape"):
        ex.occlusion_map(model, flat, 0)
    maps = ex.occlusion_map(model, flat, 0, patch=2, image_shape=(3, 4))
    expected = ex.occlusion_map(model, flat.reshape(2, 3, 4), 0, patch=2)
    np.testing.assert_allclose(maps, expected.reshape(2, 12))


# ------------------------------------------------------------------- by name, dtype, bad
def test_saliency_by_name_is_the_named_function():
    model, images = small_model(), small_images()
    np.testing.assert_array_equal(
        ex.saliency(model, images, 1, "gradient_x_input"), ex.gradient_times_input(model, images, 1)
    )
    np.testing.assert_array_equal(
        ex.saliency(model, images, 1, "occlusion", patch=2),
        ex.occlusion_map(model, images, 1, patch=2),
    )
    with pytest.raises(ValueError, match="unknown saliency method"):
        ex.saliency(model, images, 1, "lime")


def test_everything_keeps_a_float32_networks_dtype():
    model = MLP(784, (16,), 10, seed=0)
    images = np.random.default_rng(0).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    results = [
        ex.layer_activations(model, images).probs,
        ex.class_contributions(model, images, 3).values,
        ex.logit_gradient(model, images, 3),
        ex.gradient_times_input(model, images, 3),
        ex.contrast_gradient(model, images, 3, 5),
        ex.occlusion_map(model, images, 3),
        ex.counterfactual(model, images, 3, max_steps=3).image,
    ]
    assert all(r.dtype == np.float32 for r in results)
    assert all(r.shape == (2, 28, 28) for r in results[2:])


def test_wrong_input_size_and_class_say_what_is_wrong():
    model = small_model()
    with pytest.raises(ValueError, match="takes 12 inputs per sample, got 784"):
        ex.logit_gradient(model, np.zeros((1, 28, 28)), 0)
    with pytest.raises(ValueError, match=r"classes must be in 0\.\.3"):
        ex.logit_gradient(model, small_images(), 4)
    with pytest.raises(ValueError, match="batch of images"):
        ex.layer_activations(model, np.zeros(12))


# ---------------------------------------------------------------------- counterfactual
@pytest.fixture(scope="module")
def trained():
    """A small network trained for a few seconds on 3,000 MNIST images."""
    data = load_mnist().subset(3000, seed=0)
    config = TrainConfig(hidden=(32,), epochs=4, val_fraction=0.0, seed=0)
    trainer = Trainer(config, data.x_train, data.y_train)
    trainer.fit()
    return trainer.model, data.x_test[:12], data.y_test[:12]


@pytest.mark.parametrize("penalty", ["l1", "l2"])
def test_counterfactual_reaches_its_target_and_stays_in_range(trained, penalty):
    model, images, labels = trained
    targets = (labels + 3) % 10
    result = ex.counterfactual(model, images, targets, penalty=penalty)
    assert result.reached.all()
    probs = model.predict_proba(result.image * 255)  # back to raw pixels
    assert np.array_equal(probs.argmax(axis=1), targets)
    assert np.all(probs[np.arange(12), targets] >= 0.5)
    assert result.image.min() >= 0 and result.image.max() <= 1
    np.testing.assert_allclose(result.change, result.image - images / 255, atol=1e-6)
    assert result.prob_path.shape == (12, result.steps.max() + 1, 10)
    np.testing.assert_allclose(result.prob_path[:, 0], model.predict_proba(images), rtol=1e-6)
    ends = result.prob_path[np.arange(12), result.steps]
    assert np.array_equal(ends.argmax(axis=1), targets)
    # an image that stopped early repeats its last probabilities to the end of the path
    np.testing.assert_array_equal(result.prob_path[:, -1], ends)


def test_counterfactual_l1_penalty_changes_fewer_pixels(trained):
    model, images, labels = trained
    targets = (labels + 1) % 10
    free = ex.counterfactual(model, images, targets, penalty="l1", strength=0.0)
    sparse = ex.counterfactual(model, images, targets, penalty="l1", strength=0.3)
    assert sparse.reached.all()
    assert np.count_nonzero(sparse.change) < 0.7 * np.count_nonzero(free.change)


def test_counterfactual_is_deterministic_and_reports_progress(trained):
    model, images, _ = trained
    seen = []
    first = ex.counterfactual(model, images[:2], 7, on_step=lambda s, p: seen.append(s))
    second = ex.counterfactual(model, images[:2], 7)
    np.testing.assert_array_equal(first.image, second.image)
    assert seen == list(range(1, first.steps.max() + 1))


def test_counterfactual_stops_at_the_step_cap_and_says_so(trained):
    model, images, labels = trained
    target = (labels[0] + 5) % 10
    result = ex.counterfactual(model, images[:1], target, max_steps=1, step_size=1e-4)
    assert not result.reached[0]
    assert result.steps[0] == 1
    assert result.prob_path.shape == (1, 2, 10)


def test_counterfactual_of_an_image_already_in_the_target_class_changes_nothing(trained):
    model, images, _ = trained
    predicted = model.predict(images[:3])
    result = ex.counterfactual(model, images[:3], predicted, min_probability=0.0)
    assert result.reached.all() and np.all(result.steps == 0)
    assert not result.change.any()


def test_counterfactual_needs_pixels_in_0_1():
    model = small_model()  # input_scale 0.5: raw pixels of 1.9 are 0.95, of 3 are 1.5
    with pytest.raises(ValueError, match=r"0\.\.1"):
        ex.counterfactual(model, np.full((1, *SHAPE), 3.0), 0)
    with pytest.raises(ValueError, match="penalty"):
        ex.counterfactual(model, small_images(), 0, penalty="l3")


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_an_l2_counterfactual_step_follows_the_penalised_objectives_gradient(activation):
    model = small_model(activation)
    original = model.prepare_inputs(small_images(10))
    edited = np.clip(
        original + np.random.default_rng(3).uniform(-0.05, 0.05, original.shape), 0.01, 0.99
    )
    targets = np.array([2, 2, 0, 1, 3])
    onehot = ex._one_hot(model, targets)
    ce_grad, _ = ex._input_gradient(model, edited, targets=onehot)
    lam = 0.4 * np.abs(ce_grad).max(axis=1)  # the relative weight, fixed for the oracle

    def objective(x_raw):
        x = x_raw.reshape(5, -1) * SCALE
        ce = -np.log(model.forward_prepared(x)[np.arange(5), targets])
        return ce + lam * ((x - original) ** 2).sum(axis=1)

    numeric = per_scaled_pixel(
        numerical_input_gradient(objective, edited.reshape(5, *SHAPE) / SCALE)
    )
    new = ex._counterfactual_step(model, edited.copy(), original, onehot, "l2", 0.4, 1e-3)
    direction = edited - new
    expected = numeric.reshape(5, -1) * (
        1e-3 / np.abs(numeric.reshape(5, -1)).max(axis=1, keepdims=True)
    )
    assert relative_error(direction, expected) < 1e-6


def test_counterfactual_strength_must_be_below_one():
    with pytest.raises(ValueError, match="strength"):
        ex.counterfactual(small_model(), small_images(), 0, strength=1.0)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("layer", [0, 1, 2])
def test_unit_gradient_matches_finite_differences(activation, layer):
    model, images = small_model(activation), small_images(11, n=3)
    units = np.array([3, 0]) if layer < 2 else np.array([1, 2])
    analytic = ex.unit_gradient(model, images, layer, units)
    assert analytic.shape == (3, 2, *SHAPE)
    for j, unit in enumerate(units):
        numeric = numerical_input_gradient(
            lambda x, u=unit: model.forward(x, return_all=True)[0][layer][:, u], images
        )
        assert relative_error(analytic[:, j], per_scaled_pixel(numeric)) < 1e-7


def test_first_layer_unit_gradient_is_the_weight_image():
    model, images = small_model(), small_images(12, n=2)
    grad = ex.unit_gradient(model, images, 0, np.array([4]))
    for row in grad[:, 0]:
        np.testing.assert_allclose(row.reshape(-1), model.weights[0][:, 4], rtol=1e-12)
    with pytest.raises(ValueError, match=r"units 0\.\.6"):
        ex.unit_gradient(model, images, 0, np.array([7]))
