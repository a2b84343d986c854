"""Losses and SGD against numpy."""
from __future__ import annotations

import numpy as np
import pytest

from henn import activations
from henn.losses import MSELoss, PolyLogisticLoss
from henn.module import Parameter
from henn.optim import SGD
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


def test_sgd_step_matches_numpy(env):
    w = np.array([[1.0, -2.0, 0.5]])
    g = np.array([[0.25, 0.5, -1.0]])
    p = Parameter(EncTensor.encrypt(env.scheme, w), "w")
    opt = SGD([p], lr=0.5)
    p.grad = EncTensor.encrypt(env.scheme, g)
    opt.step()
    np.testing.assert_allclose(env.decrypt(p.value), w - 0.5 * g, atol=env.tol(3))
    opt.step()
    np.testing.assert_allclose(env.decrypt(p.value), w - g, atol=env.tol(5))
    assert opt.steps == 2
    opt.zero_grad()
    with pytest.raises(RuntimeError, match="no gradient"):
        opt.step()


def test_sgd_rejects_bad_settings(env):
    with pytest.raises(ValueError, match="learning rate"):
        SGD([], lr=0)
    with pytest.raises(TypeError):
        SGD([], lr=1, refresh_every=2)  # refreshing is the refresh policy's job, not the optimiser's
    with pytest.raises(TypeError, match="expected an EncTensor"):
        Parameter(np.ones(3))
