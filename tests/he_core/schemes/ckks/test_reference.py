"""he_core.schemes.ckks.reference, the definition the native kernels must match (test_ckks_kernels.py),
checked against the algebra each function states: the NTT diagonalises the negacyclic product, CRT
inverts the residues, fast base conversion is off by a small multiple of Q, rescaling rounds half up,
automorphisms are ring maps that compose, and decoding evaluates at the powers of 5 of zeta."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from he_core.schemes.ckks import reference as ref
from he_core.schemes.ckks.primes import ntt_primes, primitive_root_2n

N = 16
QS = tuple(ntt_primes(30, N, 3))
Q = QS[0]
PSI = primitive_root_2n(Q, N)


def poly(seed, q=Q, n=N):
    return np.random.default_rng(seed).integers(0, q, n, dtype=np.uint64)


def monomial(k, n=N):
    out = np.zeros(n, dtype=np.uint64)
    out[k] = 1
    return out


def test_bitrev():
    assert [ref.bitrev(k, 3) for k in range(8)] == [0, 4, 2, 6, 1, 5, 3, 7]
    assert ref.bitrev(0, 0) == 0


def test_negacyclic_mul_wraps_with_a_sign():
    x_last = ref.negacyclic_mul(monomial(1), monomial(N - 1), Q)  # X * X^(n-1) = X^n = -1
    assert x_last[0] == Q - 1 and not x_last[1:].any()
    a, b = poly(1), poly(2)
    assert np.array_equal(ref.negacyclic_mul(a, b, Q), ref.negacyclic_mul(b, a, Q))
    full = np.convolve(a.astype(object), b.astype(object))  # the product in Z[X], then X^n = -1
    folded = [(int(full[k]) - (int(full[k + N]) if k + N < full.size else 0)) % Q for k in range(N)]
    assert ref.negacyclic_mul(a, b, Q).tolist() == folded


def test_the_ntt_evaluates_at_odd_powers_of_psi_and_diagonalises_the_product():
    assert pow(PSI, N, Q) == Q - 1  # a primitive 2n-th root: the points psi^(2j+1) are the roots of X^n + 1
    a, b = poly(3), poly(4)
    fa, fb = ref.ntt(a, Q, PSI), ref.ntt(b, Q, PSI)
    want = [(int(x) * int(y)) % Q for x, y in zip(fa, fb)]
    assert ref.ntt(ref.negacyclic_mul(a, b, Q), Q, PSI).tolist() == want
    assert ref.ntt(monomial(1), Q, PSI).tolist() == [pow(PSI, 2 * ref.bitrev(k, 4) + 1, Q) for k in range(N)]
    assert len(set(ref.ntt(monomial(1), Q, PSI).tolist())) == N  # distinct points: the transform is invertible


def test_add_and_mul_are_per_limb_and_reduced():
    a = np.stack([poly(5 + i, q) for i, q in enumerate(QS)])
    b = np.stack([poly(9 + i, q) for i, q in enumerate(QS)])
    assert ref.add(a, b, QS).tolist() == [[(int(x) + int(y)) % q for x, y in zip(ra, rb)] for ra, rb, q in zip(a, b, QS)]
    assert ref.mul(a, b, QS).tolist() == [[(int(x) * int(y)) % q for x, y in zip(ra, rb)] for ra, rb, q in zip(a, b, QS)]


def residues(values, qs):
    return np.array([[v % q for v in values] for q in qs], dtype=np.uint64)


def test_crt_gives_the_centred_integers_back():
    big = QS[0] * QS[1] * QS[2]
    values = [0, 1, -1, big // 2, -(big // 2) + 1, 123456789012345, -987654321098765]
    assert ref.crt(residues(values, QS), QS) == values
    assert all(-big // 2 < v <= big // 2 for v in ref.crt(np.stack([poly(20 + i, q) for i, q in enumerate(QS)]), QS))


def test_fast_base_conversion_is_exact_up_to_a_small_multiple_of_q():
    src, dst = QS[:2], tuple(ntt_primes(31, N, 2, frozenset(QS)))
    big = src[0] * src[1]
    values = [int(v) for v in np.random.default_rng(6).integers(0, 2**59, N)]
    values = [v % big for v in values]
    out = ref.base_conv(residues(values, src), src, dst)
    for t, p in enumerate(dst):
        for k, v in enumerate(values):
            assert any(int(out[t, k]) == (v + u * big) % p for u in range(len(src))), (t, k)


def test_rescale_divides_by_the_last_prime_rounding_half_up():
    big = QS[0] * QS[1] * QS[2]
    ql = QS[-1]
    values = [0, ql // 2, -(ql // 2), 5 * ql + ql // 2 + 1, -7 * ql - 3, big // 3, -(big // 5)]
    exact = [math.floor(Fraction(v, ql) + Fraction(1, 2)) for v in values]
    assert ref.rescale(residues(values, QS), QS).tolist() == residues(exact, QS[:2]).tolist()


@pytest.mark.parametrize("g", [3, 5, 2 * N - 1])
def test_automorphisms_are_ring_maps_that_compose(g):
    a, b = poly(7), poly(8)
    auto = ref.automorphism
    assert np.array_equal(auto(ref.negacyclic_mul(a, b, Q), g, Q),
                          ref.negacyclic_mul(auto(a, g, Q), auto(b, g, Q), Q))
    assert np.array_equal(auto(auto(a, g, Q), 5, Q), auto(a, g * 5 % (2 * N), Q))
    assert np.array_equal(auto(a, 1, Q), a)
    x_g = auto(monomial(1), g, Q)  # X -> X^g = +-X^(g mod n)
    k = g % (2 * N)
    assert x_g[k % N] == (1 if k < N else Q - 1) and np.count_nonzero(x_g) == 1


def test_decode_evaluates_at_zeta_to_the_powers_of_five():
    zeta = np.exp(1j * np.pi / N)
    assert np.allclose(ref.decode(3.0 * monomial(0).astype(float), 2.0), 1.5)  # a constant fills every slot
    slots = ref.decode(monomial(1).astype(float), 1.0)
    assert np.allclose(slots, [zeta ** pow(5, j, 2 * N) for j in range(N // 2)])
    m = np.random.default_rng(9).normal(size=N)
    assert np.allclose(ref.decode(m, 4.0), [np.polyval(m[::-1], zeta ** pow(5, j, 2 * N)) / 4.0 for j in range(N // 2)])
