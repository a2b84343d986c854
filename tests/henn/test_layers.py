"""Linear layers and Sequential: forward and backward against a numpy oracle."""
from __future__ import annotations

import numpy as np
import pytest

from henn import activations
from henn.layers import Linear
from henn.module import Sequential
from henn.tensor import EncTensor


def enc(env, a):
    return EncTensor.encrypt(env.scheme, a)


def test_linear_plain_input_forward_backward(env):
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (4, 3))
    w = rng.uniform(-2, 2, (3, 5))
    b = rng.uniform(-1, 1, (1, 5))
    g = rng.uniform(-1, 1, (4, 5))
    layer = Linear(enc(env, w), enc(env, b))
    dec = env.decrypt
    z = layer(x)
    # each output: 3 encoded weights (error u/2 each, times |x| <= 1), bias, lincomb rounding
    np.testing.assert_allclose(dec(z), x @ w + b, atol=env.tol(6), rtol=0)
    assert layer.backward(enc(env, g)) is None
    np.testing.assert_allclose(dec(layer.weight.grad), x.T @ g, atol=env.tol(6), rtol=0)
    np.testing.assert_allclose(dec(layer.bias.grad), g.sum(axis=0, keepdims=True), atol=env.tol(4), rtol=0)
    assert layer.in_features == 3 and layer.out_features == 5


def test_linear_encrypted_input_forward_backward(env):
    rng = np.random.default_rng(4)
    h = rng.uniform(-1, 1, (4, 5))
    w = rng.uniform(-2, 2, (5, 1))
    b = np.array([[0.25]])
    g = rng.uniform(-1, 1, (4, 1))
    layer = Linear(enc(env, w.T), enc(env, b), encrypted_input=True)
    dec = env.decrypt
    z = layer(enc(env, h))
    # inner of size 5: per term (|h| + |w|) u/2 <= 1.5 u, plus roundings
    np.testing.assert_allclose(dec(z), h @ w + b, atol=env.tol(5 * 1.5 + 3), rtol=0)
    dh = layer.backward(enc(env, g))
    np.testing.assert_allclose(dec(dh), g @ w.T, atol=env.tol(1.5 + 2), rtol=0)
    np.testing.assert_allclose(dec(layer.weight.grad), (h * g).sum(axis=0, keepdims=True), atol=env.tol(4 * 2 + 4),
                               rtol=0)
    np.testing.assert_allclose(dec(layer.bias.grad), g.sum(axis=0, keepdims=True), atol=env.tol(4), rtol=0)


def test_sequential_matches_numpy_network(env):
    """A 3-4-1 network with a cubic activation: forward and every gradient vs numpy."""
    rng = np.random.default_rng(5)
    act = activations.sigmoid_lsq(3, 4.0)
    x = rng.uniform(0, 1, (4, 3))
    w1, b1 = rng.uniform(-1, 1, (3, 4)), rng.uniform(-0.5, 0.5, (1, 4))
    w2, b2 = rng.uniform(-1, 1, (4, 1)), np.array([[0.1]])
    net = Sequential(Linear(enc(env, w1), enc(env, b1)), act,
                     Linear(enc(env, w2.T), enc(env, b2), encrypted_input=True), activations.sigmoid_lsq(3, 4.0))
    out = net(x)
    g = np.array([[0.3], [-0.2], [0.1], [-0.4]])
    assert net.backward(enc(env, g)) is None
    # numpy oracle
    z1 = x @ w1 + b1
    h = act.value(z1)
    z2 = h @ w2 + b2
    o = act.value(z2)
    dz2 = g * act.grad_value(z2)
    dw2, db2 = h.T @ dz2, dz2.sum(0, keepdims=True)
    dz1 = (dz2 @ w2.T) * act.grad_value(z1)
    dw1, db1 = x.T @ dz1, dz1.sum(0, keepdims=True)
    dec = env.decrypt
    tol = env.tol(40)  # a depth-~8 chain of roundings through values below 2: 40 u bounds it comfortably
    np.testing.assert_allclose(dec(out), o, atol=tol, rtol=0)
    names = dict(net.named_parameters())
    assert list(names) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    np.testing.assert_allclose(dec(names["2.weight"].grad), dw2.T, atol=tol, rtol=0)
    np.testing.assert_allclose(dec(names["2.bias"].grad), db2, atol=tol, rtol=0)
    np.testing.assert_allclose(dec(names["0.weight"].grad), dw1, atol=tol, rtol=0)
    np.testing.assert_allclose(dec(names["0.bias"].grad), db1, atol=tol, rtol=0)
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_init_is_seeded_and_uniform(env):
    a = Linear.init(env.scheme, 2, 4, rng=np.random.default_rng(7), init_scale=2.0)
    b = Linear.init(env.scheme, 2, 4, rng=np.random.default_rng(7), init_scale=2.0)
    wa, wb = env.decrypt(a.weight.value), env.decrypt(b.weight.value)
    np.testing.assert_allclose(wa, wb, atol=env.tol(1))
    assert wa.shape == (2, 4) and np.all(np.abs(wa) <= 2.0 + env.tol(1))
    c = Linear.init(env.scheme, 4, 1, rng=np.random.default_rng(7), init_scale=1.0, encrypted_input=True)
    assert c.weight.value.shape == (1, 4) and c.in_features == 4 and c.out_features == 1


def test_layer_errors(env):
    w, b = enc(env, np.ones((3, 2))), enc(env, np.ones((1, 2)))
    with pytest.raises(ValueError, match="bias shape"):
        Linear(w, enc(env, np.ones((1, 3))))
    with pytest.raises(ValueError, match=r"bias shape \(1, 1\) does not match 3 outputs"):
        Linear(w, enc(env, np.ones((1, 1))), encrypted_input=True)
    layer = Linear(w, b)
    with pytest.raises(ValueError, match="input width 4"):
        layer(np.ones((2, 4)))
    with pytest.raises(TypeError, match="plaintext input"):
        layer(enc(env, np.ones((2, 3))))
    with pytest.raises(RuntimeError, match="forward has not been called"):
        Linear(w, b).backward(enc(env, np.ones((2, 2))))
    with pytest.raises(ValueError, match="init_scale"):
        Linear.init(env.scheme, 3, 2, init_scale=float("nan"))
    with pytest.raises(ValueError, match="shared weights"):
        Sequential(layer, activations.square(), layer)
    with pytest.raises(ValueError, match="no layers"):
        Sequential()
    with pytest.raises(TypeError, match="not a Module"):
        Sequential(layer, "relu")


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

SMALL = st.floats(-2, 2, allow_nan=False).map(lambda v: 0.0 if abs(v) < 1e-3 else v)


@pytest.mark.slow_on_ckks
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_linear_property_over_shapes(env, data):
    """Forward and backward of both layer kinds vs numpy, over batch/in/out sizes, zeros and negatives."""
    batch, fan_in, fan_out = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    x = data.draw(hnp.arrays(np.float64, (batch, fan_in), elements=SMALL))
    w = data.draw(hnp.arrays(np.float64, (fan_in, fan_out), elements=SMALL))
    b = data.draw(hnp.arrays(np.float64, (1, fan_out), elements=SMALL))
    g = data.draw(hnp.arrays(np.float64, (batch, fan_out), elements=SMALL))
    dec = env.decrypt
    # every entry sums at most 5 products |2| x (u/2 encoding error) plus one rounding each and the bias
    tol = env.tol(2 * 5 + 6)
    layer = Linear(enc(env, w), enc(env, b))
    np.testing.assert_allclose(dec(layer(x)), x @ w + b, atol=tol, rtol=0)
    layer.backward(enc(env, g))
    np.testing.assert_allclose(dec(layer.weight.grad), x.T @ g, atol=tol, rtol=0)
    np.testing.assert_allclose(dec(layer.bias.grad), g.sum(0, keepdims=True), atol=tol, rtol=0)
    # encrypted input, any number of outputs (W kept transposed); the placement and
    # column extractions add a few roundings of values up to 2 * 5 * 2
    etol = env.tol(2 * 5 + 6, 20.0)
    enc_layer = Linear(enc(env, w.T), enc(env, b), encrypted_input=True)
    np.testing.assert_allclose(dec(enc_layer(enc(env, x))), x @ w + b, atol=etol, rtol=0)
    dx = enc_layer.backward(enc(env, g))
    np.testing.assert_allclose(dec(dx), g @ w.T, atol=etol, rtol=0)
    np.testing.assert_allclose(dec(enc_layer.weight.grad), (x.T @ g).T, atol=etol, rtol=0)
    np.testing.assert_allclose(dec(enc_layer.bias.grad), g.sum(0, keepdims=True), atol=tol, rtol=0)


def numpy_mlp(x, weights, act):
    """Forward and backward of an MLP (activation after every layer but the last) in numpy."""
    zs, hs = [], [x]
    for i, (w, b) in enumerate(weights):
        z = hs[-1] @ w + b
        zs.append(z)
        hs.append(act.value(z) if i < len(weights) - 1 else z)
    return zs, hs


def test_deep_mlp_with_one_activation_object_matches_numpy(env):
    """3 -> 4 -> 3 -> 2: hidden->hidden, several outputs, one activation object used twice."""
    rng = np.random.default_rng(11)
    act = activations.sigmoid_lsq(3, 4.0)
    sizes = [3, 4, 3, 2]
    weights = [(rng.uniform(-1, 1, (a, b)), rng.uniform(-0.5, 0.5, (1, b))) for a, b in zip(sizes, sizes[1:])]
    layers = []
    for i, (w, b) in enumerate(weights):
        first = i == 0
        layers.append(Linear(enc(env, w if first else w.T), enc(env, b), encrypted_input=not first))
        if i < len(weights) - 1:
            layers.append(act)
    net = Sequential(*layers)
    x = rng.uniform(-1, 1, (5, 3))
    g = rng.uniform(-1, 1, (5, 2))
    out = net(x)
    assert net.backward(enc(env, g)) is None
    zs, hs = numpy_mlp(x, weights, act)
    grads, d = [], g
    for i in reversed(range(len(weights))):
        w, _ = weights[i]
        grads.append((hs[i].T @ d, d.sum(0, keepdims=True)))
        if i:
            d = (d @ w.T) * act.grad_value(zs[i - 1])
    grads.reverse()
    tol = env.tol(12)  # a depth-~14 chain of roundings, each damped by weights below 1: measured <= 2 u
    np.testing.assert_allclose(env.decrypt(out), hs[-1], atol=tol, rtol=0)
    named = dict(net.named_parameters())
    for i, pos in enumerate((0, 2, 4)):
        dw, db = grads[i]
        np.testing.assert_allclose(env.decrypt(named[f"{pos}.weight"].grad), dw if i == 0 else dw.T, atol=tol,
                                   rtol=0, err_msg=f"layer {i} weight")
        np.testing.assert_allclose(env.decrypt(named[f"{pos}.bias"].grad), db, atol=tol, rtol=0)


def test_depth_and_key_sizes_come_from_the_layers(env):
    act = activations.sigmoid_lsq(3, 4.0)
    net = Sequential(Linear.init(env.scheme, 4, 3, init_scale=1.0), act,
                     Linear.init(env.scheme, 3, 2, init_scale=1.0, encrypted_input=True), act,
                     Linear.init(env.scheme, 2, 1, init_scale=1.0, encrypted_input=True))
    # lincomb 1, activation (x/4 then degree 3: 1 + 3), placement layer 2, activation 4, single output 1
    assert net.forward_depth == 1 + 4 + 2 + 4 + 1
    assert net.op_depth == act.depth + 1 == 4
    assert net.key_sizes() == {1, 2, 3, 4}
