"""henn.losses: gradients and values against numpy, on every scheme (the ``env`` fixture)."""
from __future__ import annotations

import numpy as np
import pytest

from henn import activations
from henn.losses import MSELoss, PolyLogisticLoss
from henn.tensor import EncTensor

Y = np.array([[0.0], [1.0], [1.0], [0.0]])


def test_mse_gradient_and_value(env):
    p = np.array([[0.2], [0.7], [1.1], [-0.1]])
    loss = MSELoss()
    g = loss.grad(EncTensor.encrypt(env.scheme, p), Y)
    np.testing.assert_allclose(env.decrypt(g), 2 * (p - Y) / 4, atol=env.tol(3))
    assert loss.value(p, Y) == pytest.approx(np.mean((p - Y) ** 2))
    assert loss.value(p, Y[:, 0]) == pytest.approx(np.mean((p - Y) ** 2))
    with pytest.raises(ValueError, match="targets of shape"):
        loss.grad(EncTensor.encrypt(env.scheme, p), np.zeros((3, 1)))


def test_poly_logistic_gradient_and_value(env):
    act = activations.sigmoid_lsq(3, 4.0)
    z = np.array([[-2.0], [1.0], [3.0], [0.0]])
    loss = PolyLogisticLoss(act)
    g = loss.grad(EncTensor.encrypt(env.scheme, z), Y)
    np.testing.assert_allclose(env.decrypt(g), (act.value(z) - Y) / 4, atol=env.tol(30, 4.0))
    p = np.clip(act.value(z), 1e-7, 1 - 1e-7)
    assert loss.value(z, Y) == pytest.approx(np.mean(-(Y * np.log(p) + (1 - Y) * np.log(1 - p))))


def test_one_hot():
    from henn.losses import one_hot
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
        one_hot(np.array([3]), 3)
    with pytest.raises(ValueError, match="integer labels"):
        one_hot(np.array([0.5]), 3)


def test_mse_with_encrypted_multiclass_targets(env):
    rng = np.random.default_rng(2)
    p, y = rng.uniform(-1, 1, (3, 4)), np.eye(4)[[0, 3, 1]]
    g = MSELoss().grad(EncTensor.encrypt(env.scheme, p), EncTensor.encrypt(env.scheme, y))
    np.testing.assert_allclose(env.decrypt(g), 2 * (p - y) / y.size, atol=env.tol(3))
    with pytest.raises(ValueError, match="encrypted targets of shape"):
        MSELoss().grad(EncTensor.encrypt(env.scheme, p), EncTensor.encrypt(env.scheme, y[:2]))


def test_poly_softmax_gradient_value_and_stated_error(env):
    from henn.losses import PolySoftmaxCrossEntropy, softmax
    rng = np.random.default_rng(3)
    z, y = rng.uniform(-1, 1, (4, 3)), np.eye(3)[[0, 2, 1, 1]]
    loss = PolySoftmaxCrossEntropy(3, interval=1.0)
    expect = (loss.approx_softmax(z) - y) / 4
    for targets in (y, EncTensor.encrypt(env.scheme, y)):
        g = loss.grad(EncTensor.encrypt(env.scheme, z), targets)
        np.testing.assert_allclose(env.decrypt(g), expect, atol=env.tol(8))
    # the stated error bounds the gap to the exact gradient inside the box, and is tight
    gap = np.abs(softmax(z) - loss.approx_softmax(z)).max()
    assert gap <= loss.max_error < 0.2
    corners = 2.0 * ((np.arange(8)[:, None] >> np.arange(3)) & 1) - 1.0
    assert np.abs(softmax(corners) - loss.approx_softmax(corners)).max() == pytest.approx(loss.max_error, rel=0.05)
    shifted = z - z.max(axis=1, keepdims=True)
    exact = -np.mean(np.sum(y * (shifted - np.log(np.exp(shifted).sum(1, keepdims=True))), axis=1))
    assert loss.value(z, y) == pytest.approx(exact)
    with pytest.raises(ValueError, match="width 3, the loss has 2 classes"):
        PolySoftmaxCrossEntropy(2).grad(EncTensor.encrypt(env.scheme, z), y)
    with pytest.raises(ValueError, match="classes must be an integer >= 2"):
        PolySoftmaxCrossEntropy(1)


def test_a_monitor_term_over_few_samples_holds_its_large_factor(env):
    """``(1 - 2y)(p - y) / k`` from ``grad = factor (p - y)`` when ``1 / (factor k)`` is large (an owner's dry run:
    lr 0.002 over k = 3 samples gives 166.7): the scalar goes in by itself, the signs as a plaintext."""
    act = activations.sigmoid_lsq(3, 4.0)
    loss, lr, k = PolyLogisticLoss(act), 0.002, 3
    z, y = np.array([[1.5]]), np.array([[0.0]])
    grad = loss.grad(EncTensor.encrypt(env.scheme, z), y, scale=lr)
    term = loss.monitor_term(grad, y, loss.error_factor(z.shape, lr), k)
    want = (1 - 2 * y) * (act.value(z) - y) / k
    np.testing.assert_allclose(env.decrypt(term), want, atol=env.tol(30, 1.0) / (lr * k))


@pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")
def test_the_large_factor_fits_a_ckks_scale_of_2_54():
    """At the security protocol's 2^54 scale a slot factor of 166.7 would need 2^61.4 (refused): the 128-bit
    IMDB job's dry run (henn job create --scheme ckks) failed on it."""
    import he_core

    if "ckks" not in he_core.available_schemes():
        pytest.skip("the ckks scheme is not built")
    scheme = he_core.get_scheme("ckks", poly_degree=2048, levels=4, first_bits=60, scale_bits=54, special_bits=60,
                                dnum=2, allow_insecure=True)
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1,), multiply=True), rng=he_core.SeededRandom(3))
    loss, lr, k = PolyLogisticLoss(activations.sigmoid_lsq(3, 4.0)), 0.002, 3
    p, y = np.array([[0.8]]), np.array([[1.0]])
    factor = loss.error_factor(p.shape, lr)
    grad = EncTensor.encrypt(scheme, factor * (p - y))  # a gradient at the working scale: 2^54
    term = loss.monitor_term(grad, y, factor, k)
    np.testing.assert_allclose(scheme.decrypt_exact_local(term.ct, secret), (1 - 2 * y) * (p - y) / k, atol=1e-6)
