"""Every CKKS vector path against exact integer arithmetic (not against each other).

The transforms are checked against a naive O(n^2) evaluation of the documented ordering
(entry k of the forward transform holds a(psi^(2 bitrev(k) + 1)), psi the ring's primitive
2n-th root) and its inverse, the sums of products against Python-int sums, on primes at the
edges of each path's bounds: the largest NTT-friendly primes below 2^50 (IFMA's lazy values
reach 4q, just under 2^52) and below 2^61 (the 64-bit path's reach 4q, just under 2^63), the
smallest above 2^50 (the 64-bit path on an IFMA CPU) and the smallest at all. Also: the
float fast path of a sum's noise record against the array path, bit for bit.
"""
from __future__ import annotations

import math
import struct
import types
import warnings

import numpy as np
import pytest

from he_core.errors import ParameterError
from he_core.schemes.ckks import noise
from he_core.schemes.ckks.noise_model import NoiseModel
from he_core.schemes.ckks.noise_records import NoiseRecords
from he_core.schemes.ckks.params import CkksParams
from he_core.schemes.ckks.primes import ntt_primes, primitive_root_2n
from he_core.schemes.ckks.ring import RnsRing

from .kernel_cases import AVAILABLE, first_prime, using_path


def edge_primes(n: int) -> tuple[int, ...]:
    """Smallest prime = 1 mod 2n, ~2^30, largest below 2^50, smallest above 2^50, largest below 2^61."""
    above50 = first_prime((1 << 50) // (2 * n) * (2 * n) + 1 + 2 * n, n, +1)
    primes = (first_prime(2 * n + 1, n, +1), ntt_primes(30, n, 1)[0], ntt_primes(50, n, 1)[0], above50,
              ntt_primes(61, n, 1)[0])
    assert primes[2] < 2**50 < primes[3] and primes[4] < 2**61
    return primes


def ring_of(n: int) -> RnsRing:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RnsRing(n, edge_primes(n))


def bitrev(k: int, bits: int) -> int:
    return int(format(k, f"0{bits}b")[::-1], 2) if bits else 0


def naive_ntt(coeffs: list[int], q: int, n: int) -> list[int]:
    psi, bits = primitive_root_2n(q, n), n.bit_length() - 1
    out = []
    for k in range(n):
        x, acc = pow(psi, 2 * bitrev(k, bits) + 1, q), 0
        for c in reversed(coeffs):  # Horner
            acc = (acc * x + c) % q
        out.append(acc)
    return out


def naive_intt(values: list[int], q: int, n: int) -> list[int]:
    psi, bits = primitive_root_2n(q, n), n.bit_length() - 1
    ninv, ipsi = pow(n, -1, q), pow(psi, -1, q)
    roots = [pow(ipsi, 2 * bitrev(k, bits) + 1, q) for k in range(n)]
    return [ninv * sum(v * pow(r, j, q) for v, r in zip(values, roots)) % q for j in range(n)]


def poly(ring: RnsRing, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A (limbs, n) residue array: random, zero, all q - 1, alternating 0 / q - 1, or X^j (a delta)."""
    rows = []
    for q in ring.q:
        if kind == "random":
            row = rng.integers(0, q, ring.n, dtype=np.uint64)
        elif kind == "zero":
            row = np.zeros(ring.n, dtype=np.uint64)
        elif kind == "top":
            row = np.full(ring.n, q - 1, dtype=np.uint64)
        elif kind == "alternating":
            row = np.where(np.arange(ring.n) % 2 == 1, np.uint64(q - 1), np.uint64(0))
        else:  # "delta": X^(n - 1)
            row = np.zeros(ring.n, dtype=np.uint64)
            row[-1] = 1
        rows.append(row.astype(np.uint64))
    return np.stack(rows)


@pytest.mark.parametrize("n", [16, 32, 64])
@pytest.mark.parametrize("kind", ["random", "zero", "top", "alternating", "delta"])
def test_transforms_match_the_naive_evaluation_on_every_path(n, kind):
    ring = ring_of(n)
    a = poly(ring, kind, np.random.default_rng(n))
    want_fwd = [naive_ntt([int(c) for c in a[i]], q, n) for i, q in enumerate(ring.q)]
    want_inv = [naive_intt([int(c) for c in a[i]], q, n) for i, q in enumerate(ring.q)]
    for path in AVAILABLE:
        with using_path(path):
            fwd, inv = ring.ntt(a.copy()), ring.intt(a.copy())
        assert fwd.tolist() == want_fwd, (path, kind)
        assert inv.tolist() == want_inv, (path, kind)


@pytest.mark.parametrize("n", [16, 128, 2048])
def test_transforms_round_trip_on_every_path(n):
    ring = ring_of(n)
    a = poly(ring, "random", np.random.default_rng(7 + n))
    for path in AVAILABLE:
        with using_path(path):
            fwd = ring.ntt(a.copy())
            assert np.all(fwd < np.array(ring.q, dtype=np.uint64)[:, None])
            assert np.array_equal(ring.intt(fwd), a), path


def exact_dot(xs, ps, primes) -> list:
    q = np.array(primes, dtype=object)[:, None]
    return (sum(x.astype(object) * p.astype(object) for x, p in zip(xs, ps)) % q).tolist()


@pytest.mark.parametrize("terms", [1, 14, 15, 16, 17, 64, 65])
@pytest.mark.parametrize("n", [16, 32])
@pytest.mark.parametrize("kinds", [("top", "top"), ("random", "random"), ("top", "random"), ("zero", "top")])
def test_sums_of_products_are_exact_on_every_path(terms, n, kinds):
    ring = ring_of(n)
    rng = np.random.default_rng(terms * n)
    xs = [poly(ring, kinds[0], rng) for _ in range(terms)]
    ps = [poly(ring, kinds[1], rng) for _ in range(terms)]
    _assert_dot_exact_on_every_path(ring, xs, ps)


def test_a_sum_of_products_over_several_chunks_is_exact():
    # 4096 coefficients: two chunks of the kernel's work split, each a whole number of vectors.
    ring = ring_of(4096)
    rng = np.random.default_rng(3)
    xs = [poly(ring, "top", rng) for _ in range(15)] + [poly(ring, "random", rng)]
    ps = [poly(ring, "top", rng) for _ in range(15)] + [poly(ring, "random", rng)]
    _assert_dot_exact_on_every_path(ring, xs, ps)


def _assert_dot_exact_on_every_path(ring, xs, ps) -> None:
    want = exact_dot(xs, ps, ring.q)
    for path in AVAILABLE:
        with using_path(path):
            assert ring.dot(xs, ps).tolist() == want, path


def test_a_sum_of_products_refuses_any_overlap_with_its_output():
    ring = ring_of(16)
    a = poly(ring, "random", np.random.default_rng(1))
    big = np.zeros((2 * a.shape[0], 16), dtype=np.uint64)
    big[: a.shape[0]] = a
    with pytest.raises(ParameterError, match="over one of its factors"):
        ring.dot([a], [big[: a.shape[0]]], out=big[1: a.shape[0] + 1])  # a one-limb overlap
    with pytest.raises(ParameterError):
        ring.dot([a], [np.asfortranarray(a)])


def test_a_sum_of_products_keeps_its_factors_alive_for_the_call():
    # Factors reachable only through the argument lists: the pointers must stay valid.
    ring = ring_of(16)
    rng = np.random.default_rng(2)
    xs, ps = [poly(ring, "random", rng) for _ in range(3)], [poly(ring, "random", rng) for _ in range(3)]
    want = exact_dot(xs, ps, ring.q)
    got = ring.dot([x.copy() for x in xs], [p.copy() for p in ps])
    assert got.tolist() == want


# ---------------------------------------------------------------- the float path of a sum's noise record

def bits(x) -> bytes:
    return struct.pack("<d", float(x))


_EDGES = [0.0, -0.0, 5e-324, 1e-300, 1.0, 2.0**500, 2.0**999, 2.0**1000, 2.0**1001, 1e300, 1.7976931348623157e308]


def _records() -> NoiseRecords:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = CkksParams(poly_degree=1024, levels=3, allow_insecure=True)
    return NoiseRecords(types.SimpleNamespace(noise=NoiseModel(params), ring=types.SimpleNamespace(n=1024)))


@pytest.mark.parametrize("independent", [False, True])
def test_the_float_sum_record_is_the_array_one_bit_for_bit(independent):
    records = _records()
    rng = np.random.default_rng(11)
    values = _EDGES + [float(x) for x in 2.0 ** rng.uniform(-60, 1020, 40)]
    for trial in range(400):
        va = tuple(float(v) for v in rng.choice(values, 3))
        vb = tuple(float(v) for v in rng.choice(values, 3))
        extra = noise.mismatch_var(1.0, 1.0 + float(rng.choice([0.0, 1e-9, 1.0])), float(rng.choice(values)))
        want_var = noise.sum_var([np.array(va), np.array(vb)], independent)
        got_var = noise.sum_var_pair(va, vb, independent)
        assert [bits(x) for x in want_var] == [bits(x) for x in got_var], (va, vb)
        for level in range(3):  # the whole bookkeeping of Evaluator.sum_meta, old array formula vs float path
            want = records.meta({}, level, want_var + extra, 1.0)
            got = records.meta({}, level, tuple(v + extra for v in got_var), 1.0)
            assert {k: bits(v) for k, v in want.items()} == {k: bits(v) for k, v in got.items()}, (va, vb, level)
            assert all(type(v) is float for v in got.values())


def test_the_float_sum_record_of_a_nan_is_the_limit():
    nan = float("nan")
    assert noise.sum_var_pair((nan, 1.0, 1.0), (1.0, 1.0, 1.0))[0] == noise.FLOAT_LIMIT
    assert math.isfinite(noise.sum_var_pair((1e308,) * 3, (1e308,) * 3)[0])
