"""Results do not depend on the thread count: every threaded kernel, run with 1 and with 2
threads on the same seeded inputs, gives identical residues (ckks) or integers (vhe),
identical stats, and the same error for the same bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import he_core
from he_core import KeyRequirements, SeededRandom
from he_core.schemes.ckks import CkksParams, CkksScheme
from he_core.schemes.ckks.keyswitch import KeySwitcher
from he_core.schemes.ckks.primes import ntt_primes
from he_core.schemes.ckks.ring import RnsRing
from he_core.schemes.vhe import native as vn
from he_core.schemes.vhe import reference as vref
from he_core.threads import using_threads

from .thread_counts import COUNTS, each_count, same









def assert_same_for_every_count(fn):
    results = each_count(fn)
    for r in results[1:]:
        assert same(results[0], r)
    return results[0]


# --------------------------------------------------------------------------- ckks, scheme level
@pytest.fixture(scope="module")
def ckks():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=4096, levels=3, allow_insecure=True))
    keys = scheme.keygen(KeyRequirements(sizes=(16, 1), rotations=(1,), multiply=True), rng=SeededRandom(7))
    gen = np.random.default_rng(0)
    x, y = gen.uniform(-1, 1, (4, 16)), gen.uniform(-1, 1, (4, 16))
    return scheme, keys, x, y


def residues(ct):
    return np.array(ct.data, copy=True)


def test_ckks_encrypt_and_decrypt(ckks):
    s, k, x, _ = ckks
    ct = assert_same_for_every_count(lambda: residues(s.encrypt(x, rng=SeededRandom(11))))
    plain = assert_same_for_every_count(lambda: s.decrypt_exact_local(s.encrypt(x, rng=SeededRandom(11)), k.secret))
    assert np.max(np.abs(plain - x)) < 2.0**-20  # and it is the right answer
    assert ct.ndim == 4


def test_ckks_mul_relin_rescale_rotate_matvec(ckks):
    s, k, x, y = ckks
    a, b = s.encrypt(x, rng=SeededRandom(1)), s.encrypt(y, rng=SeededRandom(2))
    m = np.random.default_rng(3).uniform(-1, 1, (16, 16))
    ops = {
        "mul+relin": lambda: s.mul(a, b, rescale=False),
        "mul+relin+rescale": lambda: s.mul(a, b),
        "rotate": lambda: s.rotate(a, 1),
        "matvec": lambda: s.matvec(a, m),
    }
    shifted = np.append(x.ravel()[1:], 0.0).reshape(x.shape)  # the batch's slots move as one vector
    want = {"mul+relin": x * y, "mul+relin+rescale": x * y, "rotate": shifted, "matvec": x @ m.T}
    for name, op in ops.items():
        cts = each_count(op)
        assert same(residues(cts[0]), residues(cts[1])), name
        got = s.decrypt_exact_local(cts[1], k.secret)
        assert np.max(np.abs(got - want[name])) < 2.0**-12, name


def test_ckks_key_switching_to_a_new_key(ckks):
    s, k, x, _ = ckks
    other = s.keygen(KeyRequirements(sizes=(16, 1)), rng=SeededRandom(8))
    switch = s.make_switch_key(k.secret, other.secret, rng=SeededRandom(9))
    a = s.encrypt(x, k.secret, rng=SeededRandom(4))
    cts = each_count(lambda: s.rekey(a, switch))
    assert same(residues(cts[0]), residues(cts[1]))
    assert np.max(np.abs(s.decrypt_exact_local(cts[0], other.secret) - x)) < 2.0**-12


# --------------------------------------------------------------------------- ckks, kernel level
@pytest.fixture(scope="module")
def ring():
    n = 4096
    qs = tuple(ntt_primes(50, n, 12))
    ps = tuple(ntt_primes(55, n, 3, frozenset(qs)))
    return RnsRing(n, qs, ps)


def poly(ring, limbs, seed):
    gen = np.random.default_rng(seed)
    primes = np.array((ring.q + ring.p)[:limbs], dtype=np.uint64)[:, None]
    return gen.integers(0, 2**62, (limbs, ring.n), dtype=np.uint64) % primes


def test_ring_kernels(ring):
    nq = len(ring.q)
    a, b = poly(ring, nq, 1), poly(ring, nq, 2)
    signed = np.random.default_rng(3).integers(-2**62, 2**62, ring.n, dtype=np.int64)
    perm = ring.galois_perm(5)

    def run():
        muladd = b.copy()
        ring.muladd(a, b, muladd)
        return (ring.ntt(a.copy()), ring.intt(a.copy()), ring.add(a, b), ring.sub(a, b), ring.neg(a),
                ring.mul(a, b), muladd, ring.mul_int(a, 3**30 + 7), ring.from_signed(signed, nq),
                ring.rescale(a), ring.permute(a, perm), ring.base_conv(a[:5], range(5), range(5, nq + 3)))
    assert_same_for_every_count(run)


@pytest.mark.parametrize("alpha", [1, 2, 3])
def test_key_switching_kernels(ring, alpha):
    nq, ltot = len(ring.q), len(ring.q) + len(ring.p)
    dnum = -(-nq // alpha)
    ks = KeySwitcher(ring)
    key = np.stack([poly(ring, ltot, 10 + j) for j in range(2 * dnum)]).reshape(dnum, 2, ltot, ring.n)
    for level in (nq, 7, 2):  # full and partial digits
        d = poly(ring, level, 5)
        perm = ring.galois_perm(3)

        def run():
            ext = ks.mod_up(d, alpha)
            return (ks.key_switch(d, key, alpha), ext, ks.key_switch_hoisted(ext, key, alpha),
                    ks.key_switch_hoisted(ext, key, alpha, perm))
        plain, ext, dot, dot_perm = assert_same_for_every_count(run)
        assert same(plain, dot)  # hoisted and plain agree, whatever the thread count


def test_a_scratch_sized_for_one_thread_still_works_with_two(ring):
    nq = len(ring.q)
    key = np.stack([poly(ring, nq + 3, j) for j in range(2 * nq)]).reshape(nq, 2, nq + 3, ring.n)
    d = poly(ring, nq, 5)
    with using_threads(1):
        want = KeySwitcher(ring).key_switch(d, key, 1)
        words = ring.lib.ckks_keyswitch_scratch(nq, 3, ring.n, 1)
    with using_threads(2):
        assert ring.lib.ckks_keyswitch_scratch(nq, 3, ring.n, 1) > words  # one more slice
        up, down = KeySwitcher(ring).constants(nq, 1)
        out, scratch = np.empty((2, nq, ring.n), dtype=np.uint64), np.zeros(words, dtype=np.uint64)
        he_core.native.check(ring.lib.ckks_keyswitch(
            ring.basis(nq, True), nq, 3, ring.n, ring._ptr(d), ring._ptr(key), nq, nq + 3, 1, ring._ptr(up),
            ring._ptr(down), ring._ptr(out), ring._ptr(scratch), scratch.size), "keyswitch")
    assert same(out, want)


# --------------------------------------------------------------------------- vhe, kernel level
LIMIT = 2**62


def ints(shape, bound, seed):
    return np.random.default_rng(seed).integers(-bound, bound, shape, dtype=np.int64)


def test_vhe_row_kernels_match_the_reference_for_every_count():
    rows, m, k, ell, bits = 1000, 40, 3, 4, 12
    n = m + k
    a, b = ints((rows, n), 2**20, 1), ints((rows, n), 2**20, 2)
    wide = ints((300, 1100), 2**20, 11)  # the gather-sum splits its columns
    p, w = ints(rows, 2**10, 3), ints((50, rows), 2**8, 4)
    idx = np.random.default_rng(5).integers(0, 300, 400).astype(np.int64)
    mt = ints((n * ell, n), 2**20, 6)
    mmt = ints((m * (1 + k) ** 2 * ell, n), 2**10, 7)
    small_a, small_b = ints((120, n), 2**5, 8), ints((120, n), 2**5, 9)  # the reference is slow
    t = ints((m, k), 2**10, 10)
    cases = {
        "add": lambda mod: mod.add(a, b, -1, m, LIMIT),
        "scale": lambda mod: mod.scale(a, p, 7, m, LIMIT),
        "combine": lambda mod: mod.combine(a, b, 20, 3, m, LIMIT),
        "lincomb": lambda mod: mod.lincomb(w, a, 5, m, LIMIT),
        "gather_sum": lambda mod: mod.gather_sum(wide, idx, 1000, LIMIT),
        "gather_all": lambda mod: mod.gather_sum(wide, None, 1000, LIMIT),
        "tensor": lambda mod: mod.tensor(small_a, m, small_b, m, k, 3, LIMIT),
        "keyswitch": lambda mod: mod.keyswitch(small_a, mt, bits, ell, m, LIMIT),
        "mul": lambda mod: mod.mul(small_a, m, small_b, m, k, 3, mmt, bits, ell, m, LIMIT),
        "decrypt": lambda mod: mod.decrypt(a, m, k, t, 2**16),
    }
    for name, case in cases.items():
        got = assert_same_for_every_count(lambda: case(vn))
        assert same(got, case(vref)), name


def test_vhe_encryption_in_place():
    rows, m, k = 400, 64, 4
    x, t = ints((rows, m), 2**20, 1), ints((m, k), 2**12, 2)
    draws = ints((rows, m + k), 2**40, 3)

    def run():
        data = draws.copy()
        vn.encrypt_secret(x, t, 2**16, 2**10, data)
        return data
    got = assert_same_for_every_count(run)
    want = draws.copy()
    vref.encrypt_secret(x, t, 2**16, 2**10, want)
    assert same(got, want)


def test_vhe_the_lowest_failing_row_decides_the_error():
    """Row 20 needs more digits than the key has (a range error), row 250 overflows the limit:
    a serial pass stops at row 20, and so does every thread count."""
    rows, n, ell, bits = 300, 16, 2, 8
    c = ints((rows, n), 2**6, 1)
    c[20, 3] = 2**40
    c[250, :] = 2**13
    mt = np.full((n * ell, n), 2**40, dtype=np.int64)
    messages = []
    for count in COUNTS:
        with using_threads(count), pytest.raises(he_core.errors.HEOverflowError) as err:
            vn.keyswitch(c, mt, bits, ell, n, 2**50)
        messages.append(str(err.value))
    assert "range the key-switch digits cover" in messages[0]
    assert messages == [messages[0]] * len(COUNTS)


# --------------------------------------------------------------------------- vhe, scheme level
def test_vhe_scheme_encrypt_mul_decrypt():
    scheme = he_core.get_scheme("vhe")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        keys = scheme.keygen(KeyRequirements(sizes=(64,), multiply=True), rng=SeededRandom(5))
    x = np.random.default_rng(1).uniform(-1, 1, (256, 64))

    def run():
        a = scheme.encrypt(x, rng=SeededRandom(3))
        prod = scheme.mul(a, a)
        return a.data.copy(), prod.data.copy(), scheme.decrypt_exact_local(prod, keys.secret)
    _, _, plain = assert_same_for_every_count(run)
    assert np.max(np.abs(plain - x * x)) < 2.0**-8
