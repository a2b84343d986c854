"""CKKS at small (21-bit) primes, as in the TenSEAL tutorials: scale alignment and precision.

Regression tests for two faults the benchmark engineer found at N = 8192 with primes
[40, 21 x 6, 40] and scale 2^21: an addition after a product chain was refused because
scales equal to four decimals differed by more than a fixed 2^-30 (the integer factor
that moves a ciphertext down a level cannot land closer than about 2^-22 with 21-bit
primes), and fresh public-key encryptions were 4 bits less precise than SEAL's.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from he_core import KeyRequirements, SeededRandom
from he_core.errors import MismatchError
from he_core.schemes.ckks import CkksParams, CkksScheme
from he_core.schemes.ckks.scales import scale_tolerance, scales_match


@pytest.fixture(scope="module")
def small():
    """The tutorial set (206 bits of Q*P: within the 218-bit budget, so no allow_insecure)."""
    scheme = CkksScheme(CkksParams(poly_degree=8192, levels=6, first_bits=40, scale_bits=21, special_bits=40))
    keys = scheme.keygen(KeyRequirements(sizes=(2, 1), rotations=(1,), multiply=True), rng=SeededRandom(11))
    return scheme, keys


def err(got, want) -> float:
    return float(np.max(np.abs(got - want), initial=0.0))


def test_tutorial_set_is_secure():
    p = CkksParams(poly_degree=8192, levels=6, first_bits=40, scale_bits=21, special_bits=40)
    assert sum(q.bit_length() for q in p.q_primes + p.p_primes) <= 218


@given(seed=st.integers(0, 2**31), depth=st.integers(1, 4), rows=st.integers(1, 3))
@settings(max_examples=6, deadline=None)
def test_add_after_product_chain(small, seed, depth, rows):
    s, k = small
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-1, 1, (2, rows, 8))
    x[0, 0], y[-1, -1] = 0.0, -1.0
    cx, cy = s.encrypt(x), s.encrypt(y)
    c, want = cx, x.copy()
    for _ in range(depth):  # each product adjusts the fresher operand down a level
        c, want = s.mul(c, cy), want * y
    # Was: MismatchError "scales 2^20.7784 and 2^20.7784 differ at level 3".
    out = s.add(c, cx)
    assert err(s.decrypt_exact_local(out, k.secret), want + x) <= 2.0**-5
    out = s.sub(cx, c)
    assert err(s.decrypt_exact_local(out, k.secret), x - want) <= 2.0**-5


def test_genuinely_different_scales_are_still_aligned_or_refused(small):
    s, k = small
    x = np.array([[0.5, -0.25, 0.0]])
    a = s.encrypt(x)
    half = s.mul_plain(a, 0.5)  # free scalar: same level, scale doubled
    assert not scales_match(half.scale, a.scale)
    both = s.add(half, a)  # a level is spent to realign (the factors are large enough)
    assert s.budget(both)["level"] == s.budget(a)["level"] - 1
    assert err(s.decrypt_exact_local(both, k.secret), 1.5 * x) <= 2.0**-6
    with pytest.raises(MismatchError, match="scales"):
        s.add(s.mul(a, a, rescale=False), a)


def test_scale_tolerance_follows_the_scale():
    assert scale_tolerance(2.0**40) == 2.0**-30  # large scales: the fixed bound
    assert scale_tolerance(2.0**21) == 2.0**-17  # 16 units of the encoding's rounding
    s = 2.0**20.7784
    assert scales_match(s, s * (1 + 2.0**-22))  # the rounding of a 21-bit adjust factor
    assert not scales_match(s, s * (1 + 2.0**-14))
    assert not scales_match(2.0**40, 2.0**40 * (1 + 2.0**-25))


def test_polynomial_with_free_scalars(small):
    """c0 + c1 x + c2 x^2: the scalar-scaled terms meet at adjusted levels (was refused at level 3)."""
    s, k = small
    rng = np.random.default_rng(8)
    x, w = rng.uniform(-1, 1, (4, 2)), rng.uniform(-1, 1, (3, 2))
    h = s.matvec(s.encrypt(x), w)
    out = s.polyval(h, [0.5, 0.25, 0.1])
    hv = x @ w.T
    assert err(s.decrypt_exact_local(out, k.secret), 0.5 + 0.25 * hv + 0.1 * hv**2) <= 2.0**-5


def test_public_encryption_precision_matches_seal(small):
    """SEAL reaches about 2^-8 at scale 2^21 (encrypt over Q*P, then divide by P); so must we."""
    s, k = small
    x = np.random.default_rng(5).uniform(-1, 1, (1, 4096))
    e = err(s.decrypt_exact_local(s.encrypt(x, rng=SeededRandom(3)), k.secret), x)
    assert e <= 2.0**-7, f"fresh encryption error 2^{math.log2(e):.1f}, SEAL gets about 2^-8"
    y = np.random.default_rng(6).uniform(-1, 1, (1, 4096))
    prod = s.mul(s.encrypt(x), s.encrypt(y))
    assert err(s.decrypt_exact_local(prod, k.secret), x * y) <= 2.0**-6


def test_rotation_noise_has_no_heavy_tail(small):
    """Key switching must centre its one-prime digits and round (not floor) its mod-down.

    Uncentred digits average q / 2: a constant times the all-ones polynomial, whose slot
    values grow to ~N / pi near slot 0. With the 40-bit q_0 digit over a 40-bit special
    prime that bias reached 2^-2 in a few slots at scale 2^21 (typical error 2^-8).
    """
    s, k = small
    x = np.random.default_rng(9).uniform(-1, 1, (1, s.params.slots))
    e = s.decrypt_exact_local(s.rotate(s.encrypt(x), 1), k.secret) - np.roll(x, -1, axis=1)
    assert np.max(np.abs(e)) <= 2.0**-4.5
    assert np.max(np.abs(e)) <= 12 * np.std(e)  # Gaussian-like: no slot far out in the tail
