"""Depth and parameters come from the model's layers."""
from __future__ import annotations

import numpy as np
import pytest

import he_core
from henn import activations
from henn.depth import choose_parameters, inference_depth, key_requirements, make_scheme, training_depth
from henn.layers import Linear
from henn.module import Sequential


def model(scheme, sizes, act):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [Linear.init(scheme, a, b, init_scale=1.0, rng=np.random.default_rng(0), encrypted_input=i > 0), act]
    return Sequential(*layers[:-1])


@pytest.fixture(scope="module")
def plain():
    scheme = he_core.get_scheme("plain")
    scheme.keygen(he_core.KeyRequirements())
    return scheme


def test_depths_add_up_from_the_layers(plain):
    cubic = activations.sigmoid_lsq(3, 4.0)  # x / 4, then degree 3 with its coefficient scaling: 1 + 3
    net = model(plain, [5, 4, 3, 1], cubic)
    assert inference_depth(net) == 1 + 4 + 2 + 4 + 1
    assert training_depth(net) == 4
    assert training_depth(model(plain, [5, 1], cubic)) == 2  # a single layer still needs product then update
    assert key_requirements(net).sizes == (1, 3, 4, 5)


@pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")
def test_ckks_parameters_follow_the_depth(plain):
    net = model(plain, [5, 4, 3, 1], activations.square())
    train = choose_parameters("ckks", net)
    infer = choose_parameters("ckks", net, purpose="infer")
    assert train.security_bits >= 128 and infer.security_bits >= 128
    # training takes every level its ring holds; inference needs the whole forward pass
    assert train.levels - train.floor_levels >= training_depth(net)
    assert infer.levels - infer.floor_levels >= inference_depth(net)
    assert he_core.scheme_class("ckks").params_for_depth(training_depth(net) + train.levels, fill_ring=False) \
        .poly_degree > train.poly_degree
    with pytest.raises(ValueError, match="purpose must be"):
        choose_parameters("ckks", net, purpose="serve")


def test_unleveled_schemes_keep_their_defaults(plain):
    net = model(plain, [2, 2], activations.square())
    assert choose_parameters("plain", net) is None
    assert make_scheme("plain", net).name == "plain"
