"""The XOR model's structure and its first step against a numpy oracle."""
from __future__ import annotations

import numpy as np

from henn.losses import MSELoss
from henn.tasks.xor import X, Y, XorConfig, build_xor, correct
from henn.optim import SGD


def test_structure_and_key_sizes(env):
    model = build_xor(env.scheme, XorConfig(seed=0))
    shapes = {name: p.value.shape for name, p in model.named_parameters()}
    assert shapes == {"0.weight": (2, 4), "0.bias": (1, 4), "2.weight": (1, 4), "2.bias": (1, 1)}


def test_first_step_matches_numpy(env):
    config = XorConfig(seed=3)
    model = build_xor(env.scheme, config)
    act = config.make_activation()
    rng = np.random.default_rng(3)
    w1 = rng.uniform(-2, 2, (2, 4))
    w2 = rng.uniform(-2, 2, (4, 1))
    b1, b2 = np.zeros((1, 4)), np.zeros((1, 1))
    dec = env.decrypt
    np.testing.assert_allclose(dec(model[0].weight.value), w1, atol=env.tol(1))
    out = model(X)
    loss = MSELoss()
    model.backward(loss.grad(out, Y))
    SGD(model.parameters(), config.lr).step()
    z1 = X @ w1 + b1
    h = act.value(z1)
    z2 = h @ w2 + b2
    o = act.value(z2)
    dz2 = 2 * (o - Y) / 4 * act.grad_value(z2)
    dz1 = (dz2 @ w2.T) * act.grad_value(z1)
    expect = {"0.weight": w1 - config.lr * X.T @ dz1, "0.bias": b1 - config.lr * dz1.sum(0, keepdims=True),
              "2.weight": (w2 - config.lr * h.T @ dz2).T, "2.bias": b2 - config.lr * dz2.sum(0, keepdims=True)}
    np.testing.assert_allclose(dec(out), o, atol=env.tol(60, 2.0))
    for name, p in model.named_parameters():
        np.testing.assert_allclose(dec(p.value), expect[name], atol=env.tol(200, 4.0), err_msg=name)


def test_correct_counts_sides_of_one_half():
    assert correct(np.array([[0.1], [0.9], [0.6], [0.4]])) == 4
    assert correct(np.array([[0.6], [0.9], [0.4], [0.4]])) == 2
