"""he_core.schemes.ckks.keys: secrets, the public key and hybrid switching keys, checked by their defining equations.

Each key is an RLWE sample: ``b + a s_to`` must be a small error (plus ``P g_j s_from``
on the primes of digit j, for a switching key), which is checked limb by limb in
coefficient form.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from he_core import SeededRandom
from he_core.schemes.ckks import CkksParams, keys, seeded
from he_core.schemes.ckks.ring import RnsRing


@pytest.fixture(scope="module")
def setup():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = CkksParams(poly_degree=1024, levels=3, dnum=2, allow_insecure=True)
    ring = RnsRing.for_params(params)
    rng = SeededRandom(8)
    s = keys.sample_secret(params, rng)
    return params, ring, rng, s


def centred(ring, limbs_ntt, special=True):
    """Coefficients of an NTT-form polynomial over Q*P, centred limb by limb."""
    coeffs = ring.intt(limbs_ntt, special=special)
    primes = np.array(ring.q + ring.p, dtype=object)[:, None]
    c = coeffs.astype(object)
    return np.where(c > primes // 2, c - primes, c)


def test_secrets_are_ternary_or_of_fixed_weight():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ternary = CkksParams(poly_degree=1024, levels=1, allow_insecure=True)
        sparse = CkksParams(poly_degree=1024, levels=1, secret="hamming", hamming_weight=32, allow_insecure=True)
    s = keys.sample_secret(ternary, SeededRandom(1))
    assert s.dtype == np.int64 and set(np.unique(s)) <= {-1, 0, 1} and np.count_nonzero(s) > 500
    h = keys.sample_secret(sparse, SeededRandom(1))
    assert np.count_nonzero(h) == 32 and set(np.unique(h)) <= {-1, 0, 1}
    u = keys.sample_ephemeral(sparse, SeededRandom(1))
    assert np.count_nonzero(u) > 500  # the ephemeral is uniform ternary even for a sparse secret


def test_the_public_key_is_an_rlwe_sample_whose_a_comes_from_its_seed(setup):
    params, ring, rng, s = setup
    s_full = keys.full_ntt(ring, s)
    (b, a), seed = keys.public_key(ring, params, s_full, rng)
    np.testing.assert_array_equal(a, keys.public_a(ring, seed))
    e = centred(ring, ring.add(b, ring.mul(a, s_full)))
    assert np.all(e == e[0])  # the same small integer polynomial modulo every prime
    assert np.abs(e[0]).max() <= 12 * params.sigma
    other = keys.public_a(ring, bytes(32))
    assert not np.array_equal(other, a)


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=3, deadline=None)
def test_a_switching_key_encrypts_p_times_the_gadget_times_the_source(setup, seed):
    params, ring, _, s = setup
    rng = SeededRandom(seed)
    s_to = keys.sample_secret(params, rng)
    f, t = keys.full_ntt(ring, s), keys.full_ntt(ring, s_to)
    key = keys.switch_key(ring, params, f, t, rng)
    nq, alpha = len(ring.q), params.alpha
    assert key.shape == (-(-nq // alpha), 2, nq + len(ring.p), ring.n)
    p_prod = 1
    for p in ring.p:
        p_prod *= p
    for j in range(key.shape[0]):
        phase = centred(ring, ring.add(key[j, 0], ring.mul(key[j, 1], t)))
        for i, q in enumerate(ring.q + ring.p):
            expected = (p_prod * s.astype(object)) % q if j * alpha <= i < (j + 1) * alpha and i < nq else 0
            diff = (phase[i] - expected) % q
            diff = np.where(diff > q // 2, diff - q, diff)
            assert np.abs(diff).max() <= 12 * params.sigma, (j, i)


def test_a_switching_keys_uniform_halves_are_its_seeds_expansion_in_their_own_domain(setup):
    params, ring, _, s = setup
    primes, seed = ring.q + ring.p, bytes(range(32))
    key = keys.switch_key(ring, params, keys.full_ntt(ring, s), keys.full_ntt(ring, s), SeededRandom(4), seed)
    for j in range(key.shape[0]):
        np.testing.assert_array_equal(key[j, 1], keys.switch_a(primes, ring.n, seed, j))
    assert not np.array_equal(key[0, 1], key[1, 1])  # each digit its own stream
    tags = [keys.SWITCH_DOMAIN, seeded.expand.__kwdefaults__["domain"], keys.PK_DOMAIN]  # keys, ciphertexts, pk
    assert all(not b.startswith(a) for a in tags for b in tags if a is not b)  # distinct, none a prefix of another
    assert not np.array_equal(keys.switch_a(primes, ring.n, seed, 0), seeded.expand(seed, primes, ring.n))
    assert not np.array_equal(keys.switch_a(primes, ring.n, seed, 0)[:1], keys.public_a(ring, seed)[:1])
    same = keys.switch_key(ring, params, keys.full_ntt(ring, s), keys.full_ntt(ring, s), SeededRandom(5), seed)
    np.testing.assert_array_equal(same[:, 1], key[:, 1])  # the seed alone fixes a; the errors (so b) differ
    assert not np.array_equal(same[:, 0], key[:, 0])
