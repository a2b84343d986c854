"""henn.training.predict: the forward pass outside training, refreshed through the key holder when levels run out."""
import numpy as np
import pytest

import he_core

from henn import activations
from henn.layers import Linear
from henn.module import Sequential
from henn.tasks.xor import setup
from henn.tensor import EncTensor
from henn.training.predict import bind_parameters, predict, release_outputs
from henn.training.refresh import RefreshPolicy

from .conftest import LEVELS


def deep_model(scheme, depth, seed=0):
    """``depth`` square activations between 1x1 linear layers: 2 * depth + 1 products in all."""
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(depth):  # the first layer takes the plaintext rows, the others encrypted ones
        w = EncTensor.encrypt(scheme, rng.uniform(0.5, 1.0, (1, 1)))
        layers += [Linear(w, None, encrypted_input=i > 0), activations.square()]
    layers.append(Linear(EncTensor.encrypt(scheme, np.array([[0.5]])), None, encrypted_input=True))
    weights = [p.value.ct.data.copy() for p in Sequential(*layers).parameters()]
    return Sequential(*layers), weights


def clear(weights, x):
    for w in weights[:-1]:
        x = (x @ w) ** 2
    return x @ weights[-1]


def test_without_a_key_holder_it_is_the_forward_pass():
    scheme, _ = setup("plain")
    model, weights = deep_model(scheme, 2)
    x = np.array([[0.5], [-1.0]])
    np.testing.assert_allclose(predict(model, x).ct.data, clear(weights, x), rtol=1e-12)


def test_a_model_deeper_than_the_levels_is_refreshed_through_the_key_holder(leveled):
    scheme, kh = setup(leveled)
    model, weights = deep_model(scheme, LEVELS + 1)
    x = np.array([[0.5], [-0.75], [1.0]])
    with pytest.raises(he_core.LevelExhaustedError):
        predict(model, x)  # no key holder: the levels run out
    bind_parameters(model, scheme)
    policy = RefreshPolicy(kh)
    out = predict(model, x, keyholder=kh, policy=policy)
    assert kh.refresh_rounds > 0 and out.scheme is scheme
    np.testing.assert_allclose(out.ct.data, clear(weights, x), rtol=1e-12)
    assert all(p.value.scheme is scheme for p in model.parameters())  # parameters rebound to the raw scheme


def test_parameters_are_rebound_even_when_the_pass_fails(leveled):
    scheme, kh = setup(leveled)
    model, _ = deep_model(scheme, 1)
    with pytest.raises(ValueError):
        predict(model, np.ones((2, 5)), keyholder=kh)  # wrong width
    assert all(p.value.scheme is scheme and p.grad is None for p in model.parameters())


def test_released_outputs_of_an_exact_scheme_are_its_values():
    scheme, kh = setup("plain")
    x = np.array([[0.25, -2.0]])
    np.testing.assert_array_equal(release_outputs(kh, EncTensor.encrypt(scheme, x)), x)
