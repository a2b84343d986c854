"""The key-switching mod-down by P, against an exact big-integer reference, for np = 1 .. 6 special primes.

ModDown maps x over Q*P to round(x / P) over Q, i.e. (x - [x]_P) / P with the residue
[x]_P centred in (-P/2, P/2]. The kernel's fast base conversion rounds its overflow count
in doubles, so a residue within ~np 2^-52 P of +-P/2 may land on the other side: the
result is then off by one (still within 1/2 + 2^-40 of x / P). A floored conversion is
off by up to np on most coefficients, which these tests catch.

The mod-down is reached through ``KeySwitcher.key_switch_hoisted`` with one digit and a key of ones
(the constant polynomial 1): the inner product is then the digit itself. The exact definition
is :func:`reference.mod_down`; test_keyswitch.py checks the whole key switch against
:func:`reference.key_switch`.
"""
import warnings

import numpy as np
import pytest

from he_core import KeyRequirements, SeededRandom
from he_core.schemes.ckks import CkksParams, CkksScheme
from he_core.schemes.ckks import reference as ref
from he_core.schemes.ckks.keyswitch import KeySwitcher
from he_core.schemes.ckks.primes import ntt_primes
from he_core.schemes.ckks.ring import RnsRing

N = 64


def ring_with(np_: int) -> RnsRing:
    """Ciphertext primes of 60, 40 and 50 bits; np special primes of 61 and 55 bits (larger and smaller than q)."""
    qs = ntt_primes(60, N, 1) + ntt_primes(40, N, 1) + ntt_primes(50, N, 1)
    ps = ntt_primes(61, N, (np_ + 1) // 2, frozenset(qs)) + ntt_primes(55, N, np_ // 2, frozenset(qs))
    return RnsRing(N, qs, ps)


def kernel_mod_down(ring: RnsRing, residues: np.ndarray) -> np.ndarray:
    """The kernel's mod-down of coefficient-form residues (nq + np, N): coefficient form (nq, N), part 0."""
    nq, ltot = len(ring.q), len(ring.q) + len(ring.p)
    ext = ring.ntt(np.ascontiguousarray(residues, dtype=np.uint64).copy(), special=True)[None]
    key = np.ones((1, 2, ltot, ring.n), dtype=np.uint64)  # NTT form of the constant 1, both parts
    out = KeySwitcher(ring).key_switch_hoisted(ext, key, alpha=nq)
    assert np.array_equal(out[0], out[1])
    return ring.intt(np.ascontiguousarray(out[0]))


def residues_of(ring: RnsRing, values) -> tuple[np.ndarray, list[list[int]]]:
    """Integers (one per coefficient, any size) as residues over Q*P: uint64 array and exact lists."""
    primes = ring.q + ring.p
    exact = [[int(v) % q for v in values] for q in primes]
    return np.array(exact, dtype=np.uint64), exact


def off_by(got: np.ndarray, want: np.ndarray, ring: RnsRing) -> np.ndarray:
    """got - want per limb, centred modulo each prime (as Python ints)."""
    diff = np.empty(got.shape, dtype=object)
    for t, q in enumerate(ring.q):
        d = (got[t].astype(object) - want[t].astype(object)) % q
        diff[t] = np.where(d > q // 2, d - q, d)
    return diff


@pytest.mark.parametrize("np_", [1, 2, 3, 6])
def test_mod_down_rounds_to_nearest_on_random_inputs(np_):
    ring = ring_with(np_)
    qp = 1
    for p in ring.q + ring.p:
        qp *= p
    rng = np.random.default_rng(np_)
    values = [int.from_bytes(rng.bytes(qp.bit_length() // 8 + 8), "little") % qp for _ in range(N)]
    res, exact = residues_of(ring, values)
    diff = off_by(kernel_mod_down(ring, res), ref.mod_down(exact, ring.q, ring.p), ring)
    assert np.all(np.abs(diff) <= 1)
    assert np.count_nonzero(diff) == 0, f"{np.count_nonzero(diff)} coefficients off by one on random inputs"


@pytest.mark.parametrize("np_", [1, 2, 3, 6])
def test_mod_down_of_small_signed_values_is_their_rounded_quotient(np_):
    """x = a P + r with |r| < P / 2 (the key-switching case: a small, signed) gives a exactly."""
    ring = ring_with(np_)
    big_p = 1
    for p in ring.p:
        big_p *= p
    rng = np.random.default_rng(10 + np_)
    a = rng.integers(-2**20, 2**20, N)
    r = [int.from_bytes(rng.bytes(big_p.bit_length() // 8), "little") % big_p - big_p // 2 for _ in range(N)]
    res, exact = residues_of(ring, [int(ai) * big_p + ri for ai, ri in zip(a, r)])
    got = kernel_mod_down(ring, res)
    for t, q in enumerate(ring.q):
        assert np.array_equal(got[t], np.array([int(ai) % q for ai in a], dtype=np.uint64))


@pytest.mark.parametrize("np_", [1, 2, 3, 6])
def test_mod_down_at_the_half_way_residues_is_within_one(np_):
    """Residues at and next to +-P/2 (where the doubles cannot tell the sides apart) are off by at most one."""
    ring = ring_with(np_)
    big_p = 1
    for p in ring.p:
        big_p *= p
    half = big_p // 2
    edges = [half - 1, half, half + 1, half + 2, -half - 1, -half, -half + 1, 0, 1, -1]
    values = [(7 + k) * big_p + edges[k % len(edges)] for k in range(N)]
    res, exact = residues_of(ring, values)
    diff = off_by(kernel_mod_down(ring, res), ref.mod_down(exact, ring.q, ring.p), ring)
    assert np.all(np.abs(diff) <= 1)


def key_switch_errors(dnum: int, inputs: int = 2) -> list[np.ndarray]:
    """log2 |error| per slot of conjugate and rotate-by-1 (the key-switch error alone: exact decryptions compared)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = CkksParams(poly_degree=1024, levels=5, dnum=dnum, secret="hamming", hamming_weight=64,
                            allow_insecure=True)
        scheme = CkksScheme(params)
    keys = scheme.keygen(KeyRequirements(sizes=(params.slots,), rotations=(1,)), rng=SeededRandom(5))
    s_full = scheme._s_full(keys.secret)
    rng = np.random.default_rng(5)
    errors = []
    for _ in range(inputs):
        ct = scheme.encrypt(rng.uniform(-1, 1, (1, params.slots)), rng=SeededRandom(int(rng.integers(1 << 30))))
        base = scheme._decrypt_slots(ct, s_full)[0]
        for got, want in ((scheme.conjugate(ct), np.conj(base)), (scheme.rotate(ct, 1), np.roll(base, -1))):
            errors.append(np.log2(np.abs(scheme._decrypt_slots(got, s_full)[0] - want)))
    return errors


def test_slot_zero_is_no_outlier_with_six_special_primes():
    """dnum = 1 at 6 levels: 6 special primes. A floored mod-down put slot 0 5.6 bits above the
    median (the worst slot); rounded, slot 0 is a typical slot and the worst is the Gaussian tail."""
    for e in key_switch_errors(dnum=1):
        median = float(np.median(e))
        assert e[0] - median < 2.0, (e[0], median)
        assert e.max() - median < 4.0, (e.max(), median)
