"""he_core.optional.coeff_answers: the public half of CoeffAnswers validates before the scheme answers."""
import math

import numpy as np
import pytest

import he_core
from he_core import Capability, Flooding, KeyRequirements
from he_core.errors import CapabilityError, EncodingError, MismatchError


@pytest.fixture(scope="module")
def ckks():
    scheme = he_core.get_scheme("ckks", he_core.get_scheme("ckks").coeff_answer_params(0))
    pair = scheme.keygen(KeyRequirements(sizes=(1,), multiply=False, minimal=True), rng=he_core.SeededRandom(1))
    return scheme, pair.secret


@pytest.mark.parametrize("name", ["plain", "vhe"])
@pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")
def test_a_scheme_without_the_capability_refuses_by_name(name):
    scheme = he_core.get_scheme(name)
    assert not scheme.supports(Capability.COEFF_ANSWER)
    with pytest.raises(CapabilityError):
        scheme.coeff_answer_params(0)
    with pytest.raises(CapabilityError):
        scheme.coeff_capacity(3, 1)


def test_parameter_steps_and_counts_are_checked(ckks):
    scheme, _ = ckks
    assert scheme.coeff_answer_params(0) is not None
    for step in (-1, 1.5, True):
        with pytest.raises(EncodingError, match="step"):
            scheme.coeff_answer_params(step)
    for bad in (0, -2, 2.0, True):
        with pytest.raises(EncodingError, match="positive integer"):
            scheme.coeff_capacity(bad, 1)
    assert scheme.coeff_capacity(30, 1) >= 1


def test_queries_are_checked_before_encrypting(ckks):
    scheme, secret = ckks
    capacity = scheme.coeff_capacity(4, 2)
    with pytest.raises(EncodingError, match="non-empty finite 2-d"):
        scheme.encrypt_coeff_query(np.array([[0.0, math.nan, 0.0, 0.0]]), 2, secret, bound=1.0)
    with pytest.raises(EncodingError, match=f"one ciphertext holds {capacity}"):
        scheme.encrypt_coeff_query(np.zeros((capacity + 1, 4)), 2, secret, bound=1.0)
    with pytest.raises(EncodingError, match="bound"):
        scheme.encrypt_coeff_query(np.full((1, 4), 2.0), 2, secret, bound=1.0)  # values above the public bound
    query = scheme.encrypt_coeff_query(np.full((capacity, 4), 0.5), 2, secret, bound=1.0)
    assert query.rows == capacity


def test_weights_and_bias_are_checked_before_answering(ckks):
    scheme, secret = ckks
    query = scheme.encrypt_coeff_query(np.full((2, 4), 0.5), 2, secret, bound=1.0)
    flood = Flooding(30, 16)
    with pytest.raises(EncodingError, match="disagree"):
        scheme.answer_coeff_query(query, np.ones((4, 2)), np.zeros(3), bound=1.0, flooding=flood)
    with pytest.raises(EncodingError, match="finite"):
        scheme.answer_coeff_query(query, np.full((4, 2), np.inf), np.zeros(2), bound=1.0, flooding=flood)
    with pytest.raises(MismatchError, match="not a fresh coefficient-packed query"):
        scheme.answer_coeff_query(query, np.ones((5, 2)), np.zeros(2), bound=1.0, flooding=flood)  # 5 features
    answer = scheme.answer_coeff_query(query, np.ones((4, 2)), np.array([0.25, -0.25]), bound=1.0, flooding=flood)
    np.testing.assert_allclose(scheme.decrypt_exact_local(answer, secret), [[2.25, 1.75], [2.25, 1.75]], atol=5e-3)
