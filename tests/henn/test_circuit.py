"""henn.circuit.Circuit: a checked clear network, its clear reference, and both encrypted layouts on the twin."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import he_core
from henn import activations
from henn.circuit import Circuit, DeployError
from henn.tensor import EncTensor


def circuit(seed=0, n_in=5, hidden=4, n_out=2, **kw):
    rng = np.random.default_rng(seed)
    return Circuit([("linear", rng.normal(0, 0.5, (n_in, hidden)), rng.normal(0, 0.1, hidden)),
                    ("poly", activations.square()),
                    ("linear", rng.normal(0, 0.5, (hidden, n_out)), rng.normal(0, 0.1, n_out))], **kw)


@pytest.fixture(scope="module")
def twin():
    s = he_core.get_scheme("plain")
    s.keygen(rng=he_core.SeededRandom(1))
    return s


def test_the_clear_reference_is_the_network():
    c = circuit(shift=np.full(5, 1.0), scale=np.full(5, 2.0), clip=1.5)
    X = np.random.default_rng(2).normal(0, 3, (7, 5))
    x = np.clip((X - 1.0) / 2.0, -1.5, 1.5)
    (_, w1, b1), _, (_, w2, b2) = c.layers
    np.testing.assert_allclose(c.evaluate(X), ((x @ w1 + b1) ** 2) @ w2 + b2, rtol=1e-12)
    assert (c.n_features, c.n_outputs, c.width, c.sizes) == (5, 2, 5, (2, 4, 5))
    assert c.depth == 1 + activations.square().forward_depth + 1 + 1


@given(seed=st.integers(0, 2**31), batch=st.integers(1, 6), count=st.integers(1, 6))
@settings(max_examples=15, deadline=None)
def test_both_encrypted_layouts_match_the_reference_on_the_twin(twin, seed, batch, count):
    c = circuit(seed)
    x = np.random.default_rng(seed + 1).normal(0, 1, (batch, 5))
    want = c.evaluate_prepared(x)
    rows = c.run_rows(EncTensor.encrypt(twin, x))
    np.testing.assert_allclose(rows.ct.data, want, rtol=1e-12, atol=1e-12)
    cols = c.run(EncTensor.encrypt(twin, x.T), min(count, batch)).ct.data.T
    k = min(count, batch)
    np.testing.assert_allclose(cols[:k], want[:k], rtol=1e-12, atol=1e-12)
    assert np.all(cols[k:] == 0)  # slots nobody asked about are zeroed


@pytest.mark.parametrize("layers,match", [
    ([], "no linear layer"),
    ([("poly", activations.square())], "no linear layer"),
    ([("linear", np.ones(3), np.ones(3))], "finite"),
    ([("linear", np.ones((3, 2)), np.ones(3))], "finite"),
    ([("linear", np.full((3, 2), np.nan), np.ones(2))], "finite"),
    ([("linear", np.ones((3, 2)), np.ones(2)), ("linear", np.ones((3, 2)), np.ones(2))], "takes 3 inputs"),
    ([("linear", np.ones((3, 2)), np.ones(2)), ("relu",)], "neither linear nor a polynomial"),
    ([("linear", np.ones((3, 2)), np.ones(2)), ("poly", np.tanh)], "neither linear nor a polynomial"),
])
def test_malformed_networks_are_refused(layers, match):
    with pytest.raises(DeployError, match=match):
        Circuit(layers)


@pytest.mark.parametrize("kw,match", [(dict(shift=np.ones(4)), "shift"), (dict(scale=np.full(5, np.inf)), "scale"),
                                      (dict(scale=np.zeros(5)), "positive"), (dict(clip=0.0), "clip"),
                                      (dict(clip=np.inf), "clip")])
def test_malformed_standardisation_is_refused(kw, match):
    with pytest.raises(DeployError, match=match):
        circuit(**kw)


def test_a_deploy_error_is_an_heerror_and_a_value_error():
    assert issubclass(DeployError, he_core.HEError) and issubclass(DeployError, ValueError)
