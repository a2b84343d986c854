"""keys.switch_key's uint64 arithmetic against its big-integer definition: the same key, word for word.

The reference below is the object-dtype (Python int) formula the fast path replaced: digit
j adds P * s_from modulo each prime of the digit to b. Both draw the same randomness in
the same order, so a seeded source must give identical arrays.
"""
import warnings

import numpy as np
import pytest

from he_core import SeededRandom
from he_core.schemes.ckks import CkksParams, keys
from he_core.schemes.ckks.ring import RnsRing


def switch_key_reference(ring, params, s_from, s_to, rng):
    """The slow definition: Python integers for the P * s_from term."""
    nq, ltot, alpha = len(ring.q), len(ring.q) + len(ring.p), params.alpha
    p_prod = 1
    for p in ring.p:
        p_prod *= p
    digits = -(-nq // alpha)
    seed = rng.bytes(32)  # the uniform halves come from one seed per key, drawn first
    out = np.empty((digits, 2, ltot, ring.n), dtype=np.uint64)
    for j in range(digits):
        a = keys.switch_a(ring.q + ring.p, ring.n, seed, j)
        b = ring.sub(keys.error(ring, params, ltot, rng), ring.mul(a, s_to))
        for i in range(j * alpha, min((j + 1) * alpha, nq)):
            q = ring.q[i]
            term = (s_from[i].astype(object) * (p_prod % q) % q).astype(np.uint64)
            b[i] = (b[i].astype(object) + term) % q
        out[j, 0], out[j, 1] = b, a
    return out


@pytest.mark.parametrize("levels, dnum, special_bits", [(3, 2, 60), (5, 1, 61), (4, 5, 60), (6, 3, 61)])
def test_switch_key_matches_the_big_integer_reference(levels, dnum, special_bits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = CkksParams(poly_degree=1024, levels=levels, dnum=dnum, special_bits=special_bits, allow_insecure=True)
    ring = RnsRing.for_params(params)
    s = keys.sample_secret(params, SeededRandom(3))
    s_full = keys.full_ntt(ring, s)
    s_sq = ring.mul(s_full, s_full)
    fast = keys.switch_key(ring, params, s_sq, s_full, SeededRandom(9))
    slow = switch_key_reference(ring, params, s_sq, s_full, SeededRandom(9))
    assert fast.dtype == slow.dtype == np.uint64 and fast.shape == slow.shape
    assert np.array_equal(fast, slow)
    assert not np.array_equal(fast, keys.switch_key(ring, params, s_sq, s_full, SeededRandom(10)))


def test_add_mod_reduces_at_the_top_of_the_range():
    q = (1 << 61) - 1
    x = np.array([0, q - 1, q - 1, 5], dtype=np.uint64)
    y = np.array([0, q - 1, 1, q - 5], dtype=np.uint64)
    want = [(int(a) + int(b)) % q for a, b in zip(x, y)]
    assert keys.add_mod(x, y, q).tolist() == want
