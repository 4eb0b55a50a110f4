import numpy as np
import pytest

from nn_core.optimizers import Adam, GradientDescent, learning_rate, make_optimizer


def textbook_adam(p, grads, lr, b1=0.9, b2=0.999, eps=1e-8):
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return p


def test_adam_matches_the_textbook_update():
    rng = np.random.default_rng(0)
    p0, grads = rng.standard_normal(50), rng.standard_normal((20, 50))
    p = p0.copy()
    opt = Adam(p)
    for g in grads:
        opt.step(p, g.copy(), 0.01)
    np.testing.assert_allclose(p, textbook_adam(p0, grads, 0.01), rtol=1e-10)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_matches_the_textbook_update(nesterov):
    rng = np.random.default_rng(1)
    p0, grads = rng.standard_normal(30), rng.standard_normal((10, 30))
    p, expected, v = p0.copy(), p0.copy(), np.zeros(30)
    opt = GradientDescent(p, momentum=0.9, nesterov=nesterov)
    for g in grads:
        opt.step(p, g.copy(), 0.1)
        v = 0.9 * v - 0.1 * g
        expected = expected + (0.9 * v - 0.1 * g if nesterov else v)
    np.testing.assert_allclose(p, expected, rtol=1e-12)


def test_plain_gradient_descent():
    p = np.ones(3)
    make_optimizer("gd", p).step(p, np.array([1.0, 2.0, 3.0]), 0.5)
    np.testing.assert_allclose(p, [0.5, 0.0, -0.5])


def test_schedules():
    assert learning_rate("constant", 0.1, 7.3, 10) == 0.1
    assert learning_rate("step", 0.1, 10.5, 20, step_epochs=5, gamma=0.5) == pytest.approx(0.025)
    assert learning_rate("cosine", 0.1, 0, 10) == pytest.approx(0.1)
    assert learning_rate("cosine", 0.1, 5, 10) == pytest.approx(0.05)
    assert learning_rate("cosine", 0.1, 10, 10) == pytest.approx(0.0)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer("rmsprop", np.zeros(2))
    with pytest.raises(ValueError, match="schedule"):
        learning_rate("exp", 0.1, 0, 1)


def is_subnormal(a):
    return a.dtype.kind == "f" and ((a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)).any()


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_state_never_turns_subnormal_and_the_parameters_do_not_notice(name):
    """A weight whose gradient stops (a pixel never inked again) has moments that decay
    geometrically; the optimizer flushes them before they turn subnormal (slow), and the
    flushed values were too small to move any parameter."""
    rng = np.random.default_rng(2)
    grads = np.zeros((1500, 40), np.float32)
    grads[:5] = rng.standard_normal((5, 40)) * 1e-3  # then zero for 1,495 steps
    p0 = rng.standard_normal(40).astype(np.float32)
    flushed, unflushed = p0.copy(), p0.copy()
    opt = make_optimizer(name, flushed, momentum=0.5)
    reference = make_optimizer(name, unflushed, momentum=0.5)
    reference._flush.interval = 0
    saw_subnormal = False
    for g in grads:
        opt.step(flushed, g.copy(), 0.01)
        reference.step(unflushed, g.copy(), 0.01)
        saw_subnormal |= any(is_subnormal(s) for s in reference.state.values())
        assert not any(is_subnormal(s) for s in opt.state.values())
    assert saw_subnormal  # the case is real: without flushing, the state turns subnormal
    np.testing.assert_array_equal(flushed, unflushed)


def test_flushing_keeps_nan_so_a_divergence_is_still_seen():
    p = np.zeros(3, np.float32)
    opt = Adam(p)
    for _ in range(200):
        opt.step(p, np.array([np.nan, 0, 0], np.float32), 0.01)
    assert np.isnan(opt.state["m"][0]) and np.isnan(p[0])
