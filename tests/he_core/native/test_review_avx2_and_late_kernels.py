"""Review of the AVX2 transforms and the late CKKS kernel changes, against exact Python integers.

* The transforms on every vector path this CPU has (AVX2 asked for explicitly: it is opt-in),
  n = 8 .. 64 (8 is the one size only the AVX2 instance takes), against a naive evaluation of
  the documented order: entry k of the forward transform holds a(psi^(2 bitrev(k) + 1)).
  Primes at the bounds: the largest NTT-friendly one below 2^61 (lazy values up to 4q, just
  under 2^63: the AVX2 signed comparisons), around 2^30, at IFMA's 2^50 edge, and tiny.
* from_signed at magnitudes q - 1, q, q + 1 and INT64_MIN / INT64_MAX (its branch-free
  path is taken only when every |x| < q).
* Rescale by a 61-bit last prime over 30-bit ones (x mod q_j by a Shoup product by 1),
  the one-prime base conversion (the same), products and key switches on every path.
* Two Python threads running key switches, rotations and rescales on one scheme.
"""
from __future__ import annotations

import concurrent.futures
import threading
import warnings

import numpy as np
import pytest

from he_core import KeyRequirements, SeededRandom
from he_core import threads as he_threads
from he_core.schemes.ckks import CkksParams, CkksScheme
from he_core.schemes.ckks import reference as ref
from he_core.schemes.ckks.keyswitch import KeySwitcher
from he_core.schemes.ckks.primes import ntt_primes, primitive_root_2n
from he_core.schemes.ckks.ring import RnsRing

from .kernel_cases import AVAILABLE as PATHS
from .kernel_cases import first_prime, using_path

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def bound_primes(n: int) -> tuple[int, ...]:
    """Largest below 2^61, just below and just above 2^30, largest below 2^50, smallest at all."""
    step = 2 * n
    above30 = first_prime((1 << 30) // step * step + 1 + step, n, +1)
    primes = (ntt_primes(61, n, 1)[0], ntt_primes(30, n, 1)[0], above30, ntt_primes(50, n, 1)[0],
              first_prime(step + 1, n, +1))
    assert primes[0] > 2**61 - 2**61 // 1000 and primes[1] < 2**30 < primes[2] < 2**31
    return primes


def ring_of(n: int, q, p=()) -> RnsRing:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RnsRing(n, tuple(q), tuple(p))


def bitrev(k: int, bits: int) -> int:
    return int(format(k, f"0{bits}b")[::-1], 2) if bits else 0


def naive_ntt(a, q: int, n: int) -> list[int]:
    psi, bits = primitive_root_2n(q, n), n.bit_length() - 1
    out = []
    for k in range(n):
        x, acc = pow(psi, 2 * bitrev(k, bits) + 1, q), 0
        for c in reversed(a):
            acc = (acc * x + int(c)) % q
        out.append(acc)
    return out


def naive_intt(v, q: int, n: int) -> list[int]:
    psi, bits = primitive_root_2n(q, n), n.bit_length() - 1
    ipsi, ninv = pow(psi, -1, q), pow(n, -1, q)
    roots = [pow(ipsi, 2 * bitrev(k, bits) + 1, q) for k in range(n)]
    return [ninv * sum(int(x) * pow(r, j, q) for x, r in zip(v, roots)) % q for j in range(n)]


def limbs(primes, n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    rows = []
    for q in primes:
        if kind == "zero":
            row = [0] * n
        elif kind == "top":
            row = [q - 1] * n
        elif kind == "alternating":
            row = [q - 1 if i % 2 else 0 for i in range(n)]
        elif kind == "halves":  # around q / 2 and the top, in blocks (every butterfly pairing sees mixes)
            row = [(q // 2, q // 2 + 1, q - 1, 1)[(i // 3) % 4] for i in range(n)]
        else:
            row = [int(x) for x in rng.integers(0, q, n, dtype=np.uint64)]
        rows.append(row)
    return np.array(rows, dtype=np.uint64)


# ---------------------------------------------------------------- transforms

@pytest.mark.parametrize("n", [8, 16, 32, 64])
@pytest.mark.parametrize("kind", ["random", "zero", "top", "alternating", "halves"])
def test_transforms_match_the_naive_evaluation_on_every_path(n, kind):
    primes = bound_primes(n)
    ring = ring_of(n, primes)
    a = limbs(primes, n, kind, np.random.default_rng(n * 7 + len(kind)))
    want_f = [naive_ntt(a[i], q, n) for i, q in enumerate(primes)]
    want_i = [naive_intt(a[i], q, n) for i, q in enumerate(primes)]
    for path in PATHS:
        with using_path(path):
            assert ring.ntt(a.copy()).tolist() == want_f, (path, n, kind)
            assert ring.intt(a.copy()).tolist() == want_i, (path, n, kind)


@pytest.mark.parametrize("n", [8, 16, 32, 64, 128, 256])
def test_every_single_coefficient_transforms_exactly_on_every_path(n):
    # X^j for every j (and (q - 1) X^j): a misplaced twiddle or regrouped word shows at its index.
    q = ntt_primes(61, n, 1)[0]
    ring = ring_of(n, (q,))
    psi, bits = primitive_root_2n(q, n), n.bit_length() - 1
    xs = [pow(psi, 2 * bitrev(k, bits) + 1, q) for k in range(n)]
    basis = np.zeros((2 * n, 1, n), dtype=np.uint64)
    for j in range(n):
        basis[j, 0, j], basis[n + j, 0, j] = 1, q - 1
    for path in PATHS:
        with using_path(path):
            for j in range(n):
                for c, row in ((1, basis[j]), (q - 1, basis[n + j])):
                    assert ring.ntt(row.copy())[0].tolist() == [c * pow(x, j, q) % q for x in xs], (path, n, j)
                    back = ring.intt(ring.ntt(row.copy()))
                    assert np.array_equal(back, row), (path, n, j)


# ---------------------------------------------------------------- from_signed

def test_from_signed_is_exact_at_every_magnitude_edge():
    n = 16
    primes = bound_primes(n)
    ring = ring_of(n, primes[:-1], primes[-1:])  # the tiny prime as the special one
    values = [0, 1, -1, INT64_MIN, INT64_MIN + 1, INT64_MAX, INT64_MAX - 1]
    for q in primes:
        values += [q - 1, q, q + 1, -(q - 1), -q, -(q + 1)]
    rng = np.random.default_rng(5)
    for v in values:  # each edge alone among values of magnitude <= 1 (each limb's own path decides)
        x = rng.integers(-1, 2, n).astype(np.int64)
        x[int(rng.integers(0, n))] = v
        got = ring.from_signed(x, len(primes) - 1, special=True)
        assert got.tolist() == [[int(c) % q for c in x] for q in primes], v
    everything = np.array((values * 2)[: 4 * n], dtype=np.int64).reshape(4, n)
    for x in everything:
        got = ring.from_signed(x, len(primes) - 1, special=True)
        assert got.tolist() == [[int(c) % q for c in x] for q in primes]


@pytest.mark.parametrize("sign", [1, -1])
def test_from_signed_fast_path_boundary(sign):
    # |x| = q - 1 for the smallest prime: every limb takes the branch-free loop; then |x| = q.
    n = 64
    primes = bound_primes(n)[:-1]
    ring = ring_of(n, primes)
    qmin = min(primes)
    for mag in (qmin - 1, qmin, qmin + 1):
        x = np.full(n, sign * mag, dtype=np.int64)
        x[::3] = -x[::3]
        assert ring.from_signed(x, len(primes)).tolist() == [[int(c) % q for c in x] for q in primes], mag


# ---------------------------------------------------------------- rescale and the one-prime conversion

def edge_values(big: int, small: tuple[int, ...], n: int, rng: np.random.Generator) -> list[int]:
    """Values below ``big``: 0, 1, around big / 2 and big - 1, around multiples of each small prime."""
    vals = [0, 1, big // 2 - 1, big // 2, big // 2 + 1, big - 2, big - 1]
    for s in small:
        k = (big - 1) // s
        vals += [s - 1, s, s + 1, 2 * s - 1, 2 * s, k * s - 1, k * s, min(k * s + 1, big - 1), (k // 2) * s]
    vals = [v for v in vals if 0 <= v < big]
    vals += [int(v) for v in rng.integers(0, big, max(0, n - len(vals)), dtype=np.uint64)]
    return vals[:n]


@pytest.mark.parametrize("order", ["big_last", "small_last"])
def test_rescale_by_a_61_bit_prime_over_30_bit_ones_is_exact(order):
    n = 64
    q61, q30a, q30b = ntt_primes(61, n, 1)[0], ntt_primes(30, n, 2)[0], ntt_primes(30, n, 2)[1]
    primes = (q30a, q30b, q61) if order == "big_last" else (q61, q30b, q30a)
    ring = ring_of(n, primes)
    rng = np.random.default_rng(9)
    ql, rest = primes[-1], primes[:-1]
    last = edge_values(ql, rest, n, rng)
    coeffs = [[int(v) for v in rng.integers(0, q, n, dtype=np.uint64)] for q in rest]
    coeffs[0][:2] = [0, rest[0] - 1]
    a = np.array(coeffs + [last], dtype=np.uint64)
    half = ql >> 1
    want = [[(c - (x if x <= half else x - ql)) * pow(ql, -1, q) % q for c, x in zip(row, last)]
            for row, q in zip(coeffs, rest)]
    for path in PATHS:
        with using_path(path):
            got = ring.intt(ring.rescale(ring.ntt(a.copy())))
        assert got.tolist() == want, path
    # The meaning: small centred integers c round to round(c / q_last) (.5 away from the boundary).
    ints = [int(v) for v in rng.integers(-(ql // 2), ql // 2, n)]
    ints[:4] = [0, ql // 2, -(ql // 2), 3 * ql // 4]
    res = np.array([[c % q for c in ints] for q in primes], dtype=np.uint64)
    got = ring.intt(ring.rescale(ring.ntt(res)))
    assert got.tolist() == [[(c - ((c % ql) if c % ql <= half else c % ql - ql)) // ql % q for c in ints]
                            for q in rest]


def test_one_prime_base_conversion_from_61_bits_is_exact():
    n = 32
    q61 = ntt_primes(61, n, 1)[0]
    small = (ntt_primes(30, n, 1)[0], first_prime(2 * n + 1, n, +1), ntt_primes(50, n, 1)[0],
             ntt_primes(61, n, 2)[1])
    ring = ring_of(n, (q61,) + small)
    x = np.array([edge_values(q61, small, n, np.random.default_rng(3))], dtype=np.uint64)
    got = ring.base_conv(x, [0], [1, 2, 3, 4])
    assert got.tolist() == [[int(v) % p for v in x[0]] for p in small]


# ---------------------------------------------------------------- products and key switches, every path

@pytest.mark.parametrize("n", [16, 32])
def test_products_are_exact_on_every_path_in_and_out_of_place(n):
    primes = bound_primes(n)
    ring = ring_of(n, primes)
    rng = np.random.default_rng(n)
    for ka, kb in (("top", "top"), ("random", "top"), ("halves", "random"), ("alternating", "top")):
        a, b = limbs(primes, n, ka, rng), limbs(primes, n, kb, rng)
        want = [[int(x) * int(y) % q for x, y in zip(a[i], b[i])] for i, q in enumerate(primes)]
        for path in PATHS:
            with using_path(path):
                assert ring.mul(a, b).tolist() == want, (path, ka, kb)
                c = a.copy()
                ring.mul(c, b, out=c)
                assert c.tolist() == want, (path, ka, kb, "in place")


@pytest.mark.parametrize("n", [8, 16])
@pytest.mark.parametrize("alpha", [1, 2])
def test_key_switches_equal_the_reference_on_every_path(n, alpha):
    # A 61-bit q_0 over 30- and 49/50-bit primes (IFMA targets), a 61-bit and a 30-bit special prime.
    q = (ntt_primes(61, n, 1)[0], ntt_primes(30, n, 1)[0], ntt_primes(50, n, 1)[0])
    p = (ntt_primes(61, n, 2)[1], ntt_primes(30, n, 2)[1])
    ks = KeySwitcher(ring_of(n, q, p))
    ring = ks.ring
    rng = np.random.default_rng(n + alpha)
    dnum = -(-len(q) // alpha)
    key = np.ascontiguousarray([[[rng.integers(0, t, n, dtype=np.uint64) for t in q + p] for _ in range(2)]
                                for _ in range(dnum)])
    key[0, 1] = np.array([[t - 1] * n for t in q + p], dtype=np.uint64)  # the largest products too
    for nq in (3, 2, 1):
        d = limbs(q[:nq], n, "random", rng)
        d[:, ::4] = np.array(q[:nq], dtype=np.uint64)[:, None] - np.uint64(1)
        want = ref.key_switch(d, key, q, p, alpha)
        want_g = ref.key_switch(d, key, q, p, alpha, galois=5)
        for path in PATHS:
            with using_path(path):
                assert np.array_equal(ks.key_switch(d, key, alpha), want), (path, nq)
                ext = ks.mod_up(d, alpha)
                assert np.array_equal(ks.key_switch_hoisted(ext, key, alpha), want), (path, nq)
                got = ks.key_switch_hoisted(ext, key, alpha, ring.galois_perm(5))
                assert np.array_equal(got, want_g), (path, nq, "g = 5")


# ---------------------------------------------------------------- two Python threads on one scheme

def _scheme():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=1024, levels=3, allow_insecure=True))
    scheme.keygen(KeyRequirements(sizes=(8,), rotations=(1, 3), multiply=True), rng=SeededRandom(11))
    return scheme


def _work(scheme, ct, which: int):
    """A mix of key switches (relinearisation, rotations, hoisted rotations) and rescales."""
    if which % 3 == 0:
        return [scheme.mul(ct, ct).data, scheme.rotate(ct, 1).data]
    if which % 3 == 1:
        many = scheme.rotator.rotate_many(ct, (1, 3))  # hoisted: one mod-up, two dot products
        return [scheme.rotate(ct, 3).data] + [m.data for m in many.values()]
    return [scheme.rescale(scheme.mul(ct, ct, rescale=False)).data, scheme.rotate(scheme.mul(ct, ct), 1).data]


@pytest.mark.parametrize("native_threads", [1, 2])
def test_two_python_threads_on_one_scheme_get_the_serial_results(native_threads):
    scheme = _scheme()
    cts = [scheme.encrypt(np.random.default_rng(i).uniform(-1, 1, (4, 8)), rng=SeededRandom(100 + i))
           for i in range(6)]
    with he_threads.using_threads(native_threads):
        want = [_work(scheme, c, i) for i, c in enumerate(cts)]
        barrier = threading.Barrier(2)

        def run(offset: int) -> list:
            barrier.wait()
            wrong = []
            for rep in range(6):
                for i in range(len(cts)):
                    k = (i + offset + rep) % len(cts)
                    got = _work(scheme, cts[k], k)
                    if len(got) != len(want[k]) or not all(np.array_equal(g, w) for g, w in zip(got, want[k])):
                        wrong.append((offset, rep, k))
            return wrong

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(run, o) for o in (0, 3)]
            wrong = [w for f in futures for w in f.result()]  # result() re-raises a thread's exception
    assert not wrong, wrong[:5]
