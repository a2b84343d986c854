"""CKKS coefficient answers (he_core.schemes.ckks.coeff_answer): exact outputs, a uniform rest, refusals."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import he_core
from he_core import Flooding, KeyRequirements
from he_core.schemes.ckks import coeff_answer, noise
from he_core.schemes.ckks.coeff_answer import block

pytestmark = pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")

#: Significance of the uniformity tests: with the fixed seeds below the padded answers pass and
#: the unpadded ones fail by hundreds of orders of magnitude, so the threshold is not delicate.
ALPHA = 1e-3
FLOODING = Flooding(30, 1 << 16)


@pytest.fixture(scope="module")
def ctx():
    scheme = he_core.get_scheme("ckks", he_core.get_scheme("ckks").coeff_answer_params(0))
    pair = scheme.keygen(KeyRequirements(sizes=(1,), multiply=False, minimal=True), rng=he_core.SeededRandom(1))
    return scheme, pair


def ask(scheme, pair, x, w, b, seed=2, bound=4.0):
    query = scheme.encrypt_coeff_query(x, w.shape[1], pair.secret, bound=bound, rng=he_core.SeededRandom(seed))
    return scheme.answer_coeff_query(query, w, b, bound=bound, flooding=FLOODING,
                                     rng=he_core.SeededRandom(seed + 1))


def rest(scheme, pair, answer) -> np.ndarray:
    """The decrypted non-output coefficients of an answer, as fractions of Q in [-1/2, 1/2)."""
    (phase,) = scheme._phases(answer, scheme._s_full(pair.secret))
    keep = np.ones(phase.size, dtype=bool)
    _, pos = scheme._coeff_positions(answer)
    keep[pos.ravel()] = False
    modulus = float(np.prod([float(q) for q in scheme.ring.q[:answer.data.shape[2]]]))
    return phase[keep] / modulus


def two_answers(scheme, pair):
    """The non-output coefficients of two full batches answered with different weights: dense and one-hot."""
    rng = np.random.default_rng(5)
    x = rng.uniform(-4, 4, (scheme.coeff_capacity(30, 1), 30))
    dense, sparse = rng.normal(0, 0.5, (30, 1)), np.zeros((30, 1))
    sparse[7] = 2.0
    return (rest(scheme, pair, ask(scheme, pair, x, dense, np.array([0.3]))),
            rest(scheme, pair, ask(scheme, pair, x, sparse, np.array([-1.0]), seed=7)))


def test_the_smallest_set_is_4096_at_128_bits_and_public_key_only_keys_hold_no_switching_key(ctx):
    scheme, pair = ctx
    assert scheme.params.poly_degree == 4096 and scheme.params.security_bits >= 128
    assert scheme.params.log_qp <= 109
    assert "relin" not in pair.public.data and pair.public.data["galois"] == {}


@pytest.mark.parametrize("features,outputs", [(30, 1), (13, 3), (5, 7)])
def test_every_output_of_every_query_is_the_linear_layer_within_the_stated_bound(ctx, features, outputs):
    scheme, pair = ctx
    rng = np.random.default_rng(features)
    w, b = rng.normal(0, 0.5, (features, outputs)), rng.normal(0, 1, outputs)
    count = scheme.coeff_capacity(features, outputs)
    assert count == 4096 // block(features, outputs)
    x = rng.uniform(-4, 4, (count, features))
    answer = ask(scheme, pair, x, w, b)
    got = scheme.decrypt_exact_local(answer, pair.secret)
    bound = scheme.noise_estimate(answer)["slot_bound"]  # a coefficient's error, value units
    wbits = int(np.log2(answer.scale / scheme.answerer.query_scale()))
    rounding = np.sum(np.abs(x), axis=1, keepdims=True) * 2.0 ** -(wbits + 1)  # the weights' rounding
    assert got.shape == (count, outputs)
    assert np.all(np.abs(got - (x @ w + b)) <= bound + rounding)
    # the statement is not vacuous: 2^-7.3 to 2^-6.6 (outputs up to ~10) since the flood covers the L2 norm
    # of all count * K outputs' noise with the spectral rule max|w(zeta)|^2 (2^-8.3 to 2^-8.7 when it was
    # sized for one coefficient)
    assert bound < 2.0**-6


def test_the_non_output_coefficients_are_uniform_and_do_not_depend_on_the_weights(ctx):
    scheme, pair = ctx
    first, second = two_answers(scheme, pair)
    assert stats.ks_2samp(first, second).pvalue > ALPHA
    for sample in (first, second):
        assert stats.kstest(sample + 0.5, "uniform").pvalue > ALPHA


def test_without_the_pad_the_same_statistics_see_the_weights(ctx, monkeypatch):
    scheme, pair = ctx
    monkeypatch.setattr(coeff_answer.CoeffAnswerer, "uniform", staticmethod(lambda q, n, rng: np.zeros(n, np.uint64)))
    first, second = two_answers(scheme, pair)
    assert stats.ks_2samp(first, second).pvalue < ALPHA
    assert stats.kstest(first + 0.5, "uniform").pvalue < ALPHA


def test_queries_that_are_not_fresh_coefficient_queries_of_the_layer_are_refused(ctx):
    scheme, pair = ctx
    x, w, b = np.ones((2, 13)), np.ones((13, 3)), np.zeros(3)
    good = scheme.encrypt_coeff_query(x, 3, pair.secret, bound=1.0)
    slots = scheme.encrypt(np.full((2, 39), 0.5), pair.secret)
    table = scheme.encrypt(np.full((2, 39), 0.5), pair.secret, layout="table")
    lowered = good.replace(data=np.ascontiguousarray(good.data[:, :, :1]), meta={**good.meta, "level": 0})
    rescaled = good.replace(scale=good.scale * 2)
    for bad, ww in ((good, np.ones((13, 2))), (good, np.ones((30, 1))), (slots, w), (table, w), (lowered, w),
                    (rescaled, w)):
        with pytest.raises(he_core.MismatchError, match="is not a fresh coefficient-packed query"):
            scheme.answer_coeff_query(bad, ww, b[:ww.shape[1]], bound=1.0)
    with pytest.raises(he_core.EncodingError, match="weights .* and bias .* disagree"):
        scheme.answer_coeff_query(good, w, np.zeros(2), bound=1.0)
    with pytest.raises(he_core.EncodingError, match="finite"):
        scheme.answer_coeff_query(good, w * np.nan, b, bound=1.0)
    with pytest.raises(he_core.EncodingError, match="one ciphertext holds"):
        scheme.encrypt_coeff_query(np.ones((65, 13)), 3, pair.secret, bound=1.0)


def test_weights_whose_outputs_and_flood_fit_no_level_are_refused(ctx):
    scheme, pair = ctx
    query = scheme.encrypt_coeff_query(np.ones((1, 30)), 1, pair.secret, bound=1.0)
    with pytest.raises(he_core.MismatchError, match="do not fit"):
        scheme.answer_coeff_query(query, np.full((30, 1), 1e6), np.zeros(1), bound=1.0)


def test_vhe_and_plain_refuse_the_protocol_by_capability():
    for name in ("vhe", "plain"):
        scheme = he_core.get_scheme(name)
        with pytest.raises(he_core.CapabilityError, match="cannot answer_coeff_query"):
            scheme.answer_coeff_query


def test_the_outputs_carry_the_flood_sized_from_the_servers_own_bound(ctx):
    scheme, pair = ctx
    rng = np.random.default_rng(11)
    x, w, b = rng.uniform(-4, 4, (scheme.coeff_capacity(30, 1), 30)), rng.normal(0, 0.5, (30, 1)), np.zeros(1)
    query = scheme.encrypt_coeff_query(x, 1, pair.secret, bound=4.0)
    one, two = (scheme.answer_coeff_query(query, w, b, bound=4.0, flooding=FLOODING, rng=he_core.SeededRandom(s))
                for s in (3, 4))
    diff = scheme.decrypt_exact_local(one, pair.secret) - scheme.decrypt_exact_local(two, pair.secret)
    stated = np.sqrt(one.meta["flood"]) / one.scale  # the flood's standard deviation, value units
    # the server's own bound on the product's key-dependent noise: the received query's variance
    # times ||W||^2 (W the integer weight polynomial), over the N coefficients
    weights = np.rint(w * one.scale / query.scale)
    received = scheme.as_received(query, 4.0)  # at least a fresh public-key encryption's noise
    own = noise.coeff_bound(received.meta["nvar"] * float(np.sum(weights**2)), scheme.ring.n)
    assert stated * one.scale >= 0.99 * FLOODING.sigma(own)
    assert 0.8 <= np.std(diff) / (np.sqrt(2.0) * stated) <= 1.25  # two answers differ by two floods


def test_a_query_that_understates_its_noise_or_bound_gets_the_same_flood_and_scale(ctx):
    scheme, pair = ctx
    rng = np.random.default_rng(12)
    x, w, b = rng.uniform(-1, 1, (1, 30)), rng.normal(0, 0.5, (30, 1)), np.zeros(1)
    honest = scheme.encrypt_coeff_query(x, 1, pair.secret, bound=4.0)
    lying = honest.replace(meta={**honest.meta, "nvar": 0.0, "nslot": 0.0, "nspec": 0.0, "vmax": 2.0**-20})
    one, two = (scheme.answer_coeff_query(q, w, b, bound=4.0, flooding=FLOODING) for q in (honest, lying))
    assert two.meta["flood"] == one.meta["flood"] and two.scale == one.scale
