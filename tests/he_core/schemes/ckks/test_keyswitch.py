"""KeySwitcher (the native hybrid key switch) against the Python-int reference, exactly.

:func:`reference.key_switch` defines every step: the digit lift of ModUp (one-prime
digits centred, several-prime digits as the fast base conversion leaves them), the
inner product with the key, and ModDown rounding to nearest (the P part centred). The
plain switch, the hoisted one (with and without a Galois permutation) and ModUp alone
must give the same residues on small rings: N = 16 .. 64, 2 - 4 ciphertext primes,
1 - 3 special primes, every digit size alpha the ring allows, at every level, on random
inputs and on zero and extreme ones. The half-way residues of ModDown, where the
kernel's double-precision overflow count may be one off, are tested in test_moddown.py.
"""
from __future__ import annotations

import zlib
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
import pytest

from he_core import SeededRandom
from he_core.schemes.ckks import keys as kg
from he_core.schemes.ckks import reference as ref
from he_core.schemes.ckks.keyswitch import KeySwitcher
from he_core.schemes.ckks.primes import ntt_primes, primitive_root_2n
from he_core.schemes.ckks.ring import RnsRing

# name: (N, bits of the ciphertext primes, bits of the special primes); specials larger and smaller than q
RINGS = {"n16-q2-p1": (16, (60, 40), (61,)),
         "n32-q3-p2": (32, (60, 45, 45), (61, 55)),
         "n64-q4-p3": (64, (60, 40, 40, 50), (61, 61, 55))}
CASES = [(name, alpha) for name, (_, _, pbits) in RINGS.items() for alpha in range(1, len(pbits) + 1)]
# (input, key) kinds: every input against a random key; the largest key against random and largest inputs
PAIRS = [("random", "random"), ("edges", "random"), ("zero", "random"), ("max", "random"), ("random", "max"),
         ("max", "max")]


@lru_cache(maxsize=None)
def switcher(name: str) -> KeySwitcher:
    n, qbits, pbits = RINGS[name]
    primes: list[int] = []
    for bits in qbits + pbits:
        primes += ntt_primes(bits, n, 1, frozenset(primes))
    return KeySwitcher(RnsRing(n, primes[: len(qbits)], primes[len(qbits):]))


def seed_of(*parts) -> int:
    """A seed of the test's own id, so a failing case replays alone."""
    return zlib.crc32(repr(parts).encode())


def key_for(ring: RnsRing, alpha: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A (dnum, 2, L+1+k, N) key in NTT form: uniform residues, or every residue t - 1 (the largest products)."""
    dnum, primes = -(-len(ring.q) // alpha), ring.q + ring.p
    if kind == "max":
        limbs = np.array([[t - 1] * ring.n for t in primes], dtype=np.uint64)
        return np.ascontiguousarray(np.broadcast_to(limbs, (dnum, 2) + limbs.shape))
    return np.ascontiguousarray([[[rng.integers(0, t, ring.n, dtype=np.uint64) for t in primes]
                                  for _ in range(2)] for _ in range(dnum)])


def input_for(ring: RnsRing, nq: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """d over q_0 .. q_{nq-1} in NTT form.

    ``edges`` has coefficients 0, 1, q - 1 and the two values around q / 2 where the
    centred lift of a one-prime digit changes sign (mixed with random ones); ``max`` has
    every NTT residue q - 1.
    """
    qs = ring.q[:nq]
    if kind == "zero":
        return np.zeros((nq, ring.n), dtype=np.uint64)
    if kind == "max":
        return np.array([[q - 1] * ring.n for q in qs], dtype=np.uint64)
    if kind == "random":
        return np.array([rng.integers(0, q, ring.n, dtype=np.uint64) for q in qs])
    coeffs = []
    for q in qs:
        edges = np.array([0, 1, q - 1, q // 2, q // 2 + 1], dtype=np.uint64)
        pick = rng.integers(0, len(edges) + 1, ring.n)  # one in six stays random
        coeffs.append(np.where(pick < len(edges), edges[np.minimum(pick, len(edges) - 1)],
                               rng.integers(0, q, ring.n, dtype=np.uint64)))
    return ring.ntt(np.array(coeffs, dtype=np.uint64))


@pytest.mark.parametrize("kind,key_kind", PAIRS)
@pytest.mark.parametrize("name,alpha", CASES)
def test_key_switch_equals_the_reference(name, alpha, kind, key_kind):
    ks = switcher(name)
    ring = ks.ring
    rng = np.random.default_rng(seed_of(name, alpha, kind, key_kind))
    key = key_for(ring, alpha, key_kind, rng)
    for nq in range(len(ring.q), 0, -1):  # every level: full and short last digits
        d = input_for(ring, nq, kind, rng)
        want = ref.key_switch(d, key, ring.q, ring.p, alpha)
        assert np.array_equal(ks.key_switch(d, key, alpha), want), (nq, alpha)


@pytest.mark.parametrize("kind", ("random", "edges"))
@pytest.mark.parametrize("name,alpha", CASES)
def test_mod_up_equals_the_reference(name, alpha, kind):
    """The hoisted digits alone (NTT form over Q_l * P), against the reference lift."""
    ks = switcher(name)
    ring = ks.ring
    rng = np.random.default_rng(seed_of(name, alpha, kind, "up"))
    for nq in range(len(ring.q), 0, -1):
        d = input_for(ring, nq, kind, rng)
        roots = [primitive_root_2n(t, ring.n) for t in ring.q + ring.p]
        coeffs = [ref.intt(d[i], q, roots[i]) for i, q in enumerate(ring.q[:nq])]
        targets = list(range(nq)) + [len(ring.q) + i for i in range(len(ring.p))]  # prime index of each ext limb
        want = [[ref.ntt(limb, (ring.q + ring.p)[i], roots[i]) for limb, i in zip(digit, targets)]
                for digit in ref.mod_up(coeffs, ring.q[:nq], ring.p, alpha)]
        assert np.array_equal(ks.mod_up(d, alpha), np.array(want, dtype=np.uint64)), (nq, alpha)


@pytest.mark.parametrize("kind", ("random", "edges"))
@pytest.mark.parametrize("name,alpha", CASES)
def test_hoisted_key_switch_equals_the_reference(name, alpha, kind):
    """key_switch_hoisted(mod_up(d), perm of g) is the reference switch with X -> X^g applied to the lifted digits."""
    ks = switcher(name)
    ring = ks.ring
    rng = np.random.default_rng(seed_of(name, alpha, kind, "hoisted"))
    key = key_for(ring, alpha, "random", rng)
    for nq in (len(ring.q), 1):
        d = input_for(ring, nq, kind, rng)
        ext = ks.mod_up(d, alpha)
        for g in (1, 5, 2 * ring.n - 1):  # none, rotation by 1, conjugation
            perm = None if g == 1 else ring.galois_perm(g)
            want = ref.key_switch(d, key, ring.q, ring.p, alpha, galois=g)
            assert np.array_equal(ks.key_switch_hoisted(ext, key, alpha, perm), want), (nq, g)


@pytest.mark.parametrize("name", list(RINGS))
def test_hoisted_switch_is_the_plain_switch_of_the_permuted_input_for_one_prime_digits(name):
    """alpha = 1: the centred lift commutes with the automorphism's signs, so the results are equal."""
    ks = switcher(name)
    ring = ks.ring
    rng = np.random.default_rng(seed_of(name, "compose"))
    key = key_for(ring, 1, "random", rng)
    for nq in range(len(ring.q), 0, -1):
        for kind in ("random", "edges", "max"):
            d = input_for(ring, nq, kind, rng)
            ext = ks.mod_up(d, 1)
            for g in (5, 25, 2 * ring.n - 1):
                perm = ring.galois_perm(g)
                assert np.array_equal(ks.key_switch_hoisted(ext, key, 1, perm),
                                      ks.key_switch(ring.permute(d, perm), key, 1)), (nq, kind, g)


@pytest.mark.parametrize("name,alpha", [c for c in CASES if c[1] > 1])
def test_hoisted_and_plain_switches_of_a_permuted_input_both_switch_it_for_several_prime_digits(name, alpha):
    """alpha > 1: the uncentred lift of a negated coefficient is not the negated lift (they differ
    by a multiple of Q_j), so the two pairs may differ; each must still switch d(X^g) s_from to
    s_to, with an error within one switch's bound: N * 6 sigma * sum_j alpha Q_j / P (the lifted
    digits times the key's errors, over P) + (N + 1) / 2 (the two roundings of ModDown, one times s_to)."""
    ks = switcher(name)
    ring = ks.ring
    rng = SeededRandom(seed_of(name, alpha, "decrypt"))
    s_from, s_to = kg.full_ntt(ring, rng.ternary(ring.n)), kg.full_ntt(ring, rng.ternary(ring.n))
    key = kg.switch_key(ring, SimpleNamespace(alpha=alpha, sigma=3.2), s_from, s_to, rng)
    gen = np.random.default_rng(seed_of(name, alpha, "decrypt"))
    perm = ring.galois_perm(5)
    for nq in range(len(ring.q), 0, -1):
        spread = sum(alpha * ref.product(ring.q[lo:hi]) for lo, hi in ref.digit_bounds(nq, alpha))
        bound = ring.n * 6 * 3.2 * spread / ref.product(ring.p) + (ring.n + 1) / 2
        d = input_for(ring, nq, "random", gen)
        want = ring.mul(ring.permute(d, perm), np.ascontiguousarray(s_from[:nq]))  # d(X^g) s_from
        for pair in (ks.key_switch_hoisted(ks.mod_up(d, alpha), key, alpha, perm),
                     ks.key_switch(ring.permute(d, perm), key, alpha)):
            got = ring.add(pair[0], ring.mul(pair[1], np.ascontiguousarray(s_to[:nq])))
            err = ref.crt(ring.intt(ring.sub(got, want)), ring.q[:nq])
            assert max(abs(e) for e in err) <= bound, (nq, max(abs(e) for e in err), bound)
