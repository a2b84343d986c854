"""Native CKKS kernels against the Python-int references of ``reference.py`` (exact equality)."""
import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from he_core.errors import NativeError, ParameterError
from he_core.schemes.ckks import reference as ref
from he_core.schemes.ckks.keyswitch import KeySwitcher
from he_core.schemes.ckks.primes import is_prime, ntt_primes, primitive_root_2n
from he_core.schemes.ckks.ring import RnsRing

N = 32
QS = tuple(ntt_primes(40, N, 2, around=True) + ntt_primes(60, N, 1))  # q_0 last here is fine for kernels
PS = tuple(ntt_primes(61, N, 2, frozenset(QS)))
RING = RnsRing(N, QS, PS)

seeds = st.integers(0, 2**32 - 1)
SET = settings(max_examples=20, deadline=None)


def rand_poly(seed, primes=QS, n=N, small=False):
    rng = np.random.default_rng(seed)
    if small:  # include the edge values 0 and q - 1
        return np.array([rng.choice([0, 1, q - 1], n) for q in primes], dtype=np.uint64)
    return np.array([rng.integers(0, q, n, dtype=np.uint64) for q in primes])


@given(seed=seeds, small=st.booleans())
@SET
def test_ntt_matches_reference_and_round_trips(seed, small):
    a = rand_poly(seed, small=small)
    fa = RING.ntt(a.copy())
    for i, q in enumerate(QS):
        assert np.array_equal(fa[i], ref.ntt(a[i], q, primitive_root_2n(q, N)))
    assert np.array_equal(RING.intt(fa.copy()), a)


@given(seed=seeds)
@SET
def test_pointwise_product_in_ntt_form_is_negacyclic_convolution(seed):
    a, b = rand_poly(seed), rand_poly(seed + 1)
    c = RING.intt(RING.mul(RING.ntt(a.copy()), RING.ntt(b.copy())))
    for i, q in enumerate(QS):
        assert np.array_equal(c[i], ref.negacyclic_mul(a[i], b[i], q))


@given(seed=seeds, small=st.booleans())
@SET
def test_elementwise_kernels(seed, small):
    a, b = rand_poly(seed, small=small), rand_poly(seed + 7, small=small)
    assert np.array_equal(RING.add(a, b), ref.add(a, b, QS))
    assert np.array_equal(RING.mul(a, b), ref.mul(a, b, QS))
    assert np.array_equal(RING.add(RING.sub(a, b), b), a)
    assert np.array_equal(RING.add(RING.neg(a), a), np.zeros_like(a))
    acc = rand_poly(seed + 3)
    want = ref.add(acc, ref.mul(a, b, QS), QS)
    assert np.array_equal(RING.muladd(a, b, acc.copy()), want)
    k = int(np.random.default_rng(seed).integers(-2**62, 2**62))
    want = np.array([[int(x) * k % q for x in row] for row, q in zip(a, QS)], dtype=np.uint64)
    assert np.array_equal(RING.mul_int(a, k), want)


@given(seed=seeds, rows=st.integers(1, 150), outputs=st.integers(1, 6), small=st.booleans(), special=st.booleans())
@SET
@example(seed=1, rows=150, outputs=2, small=True, special=True)  # every product at its largest, folded twice
def test_lincomb_is_the_integer_combination_limb_by_limb(seed, rows, outputs, small, special):
    """Up to 150 rows: past the 64 products a 128-bit sum takes at the 61-bit primes before it folds; ``small``
    puts q - 1 in the rows and -1 among the factors (every product at its largest)."""
    rng = np.random.default_rng(seed)
    primes = QS + PS if special else QS[:2]
    a = np.stack([rand_poly(seed + r, primes=primes, small=small) for r in range(rows)])
    factors = [[int(f) for f in rng.integers(-2**62, 2**62, rows)] for _ in range(outputs)]
    if small:
        factors[0] = [-1] * rows
    want = ref.lincomb(a, factors, primes)
    assert np.array_equal(RING.lincomb(a, factors), want)
    spaced = np.zeros((rows, 2) + a.shape[1:], dtype=np.uint64)  # rows a ciphertext apart: data[:, part]
    spaced[:, 1] = a
    out = np.zeros((outputs, 3) + a.shape[1:], dtype=np.uint64)
    RING.lincomb(spaced[:, 1], factors, out=out[:, 2])
    assert np.array_equal(out[:, 2], want) and not out[:, :2].any()


@given(seed=seeds)
@SET
def test_from_signed_reduces_every_int64(seed):
    x = np.random.default_rng(seed).integers(-2**63, 2**63 - 1, N, dtype=np.int64)
    x[:4] = [0, -1, -2**63, 2**63 - 1]
    out = RING.from_signed(x, len(QS))
    for i, q in enumerate(QS):
        assert [int(v) for v in out[i]] == [int(v) % q for v in x]


@given(seed=seeds, big_at=st.one_of(st.none(), st.integers(0, N - 1)))
@SET
def test_from_signed_of_small_values_takes_the_fast_loop_and_stays_exact(seed, big_at):
    # Magnitudes below the smallest prime take the branch-free loop; one value at or above
    # some prime (big_at) sends that limb back to the general one.
    qmin = min(QS)
    x = np.random.default_rng(seed).integers(-(qmin - 1), qmin, N, dtype=np.int64)
    x[:3] = [0, qmin - 1, -(qmin - 1)]
    if big_at is not None:
        x[big_at] = -max(QS) if seed % 2 else max(QS)
    out = RING.from_signed(x, len(QS))
    for i, q in enumerate(QS):
        assert [int(v) for v in out[i]] == [int(v) % q for v in x]


@given(seed=seeds)
@SET
def test_rescale_rounds_division_by_the_last_prime(seed):
    a = rand_poly(seed)
    got = RING.intt(RING.rescale(RING.ntt(a.copy())))
    assert np.array_equal(got, ref.rescale(a, QS))


@given(seed=seeds, split=st.integers(1, 2))
@SET
def test_base_conversion_matches_formula(seed, split):
    primes = QS + PS
    src, dst = list(range(split)), list(range(split, len(primes)))
    x = rand_poly(seed, [primes[i] for i in src])
    got = RING.base_conv(x, src, dst)
    assert np.array_equal(got, ref.base_conv(x, [primes[i] for i in src], [primes[i] for i in dst]))


def test_base_conversion_is_exact_up_to_a_small_multiple_of_the_source_modulus():
    # x mod Q_src lifted to another prime differs from the true value by u * Q_src with 0 <= u < #src.
    src, dst = [0, 1], [2, 3]
    primes = QS + PS
    rng = np.random.default_rng(3)
    prod = QS[0] * QS[1]
    v = [int(rng.integers(0, 2**62)) * 7 % prod for _ in range(N)]
    x = np.array([[val % primes[i] for val in v] for i in src], dtype=np.uint64)
    got = RING.base_conv(x, src, dst)
    for t, j in enumerate(dst):
        p = primes[j]
        for k in range(N):
            assert any((v[k] + u * prod - int(got[t, k])) % p == 0 for u in range(len(src)))


@pytest.mark.parametrize("g", [5, 25, 3, 2 * N - 1])
def test_galois_permutation_is_the_automorphism(g):
    a = rand_poly(g)
    got = RING.intt(RING.permute(RING.ntt(a.copy()), RING.galois_perm(g)))
    for i, q in enumerate(QS):
        assert np.array_equal(got[i], ref.automorphism(a[i], g, q))


def test_primes_are_ntt_friendly_and_prime():
    for bits in (30, 40, 50, 60):
        ps = ntt_primes(bits, 4096, 4, around=bits < 60)
        assert len(set(ps)) == 4
        assert all(is_prime(p) and (p - 1) % 8192 == 0 for p in ps)
        assert all(abs(p.bit_length() - bits) <= 1 for p in ps)
    assert not is_prime(2**61 - 3) or (2**61 - 3) % 3 != 0
    assert is_prime(2**61 - 1) and not is_prime(561) and not is_prime(3215031751)


def test_ring_validates_before_calling_c():
    with pytest.raises(ParameterError):
        RnsRing(N, (97,))  # not 1 mod 2N
    with pytest.raises(ParameterError):
        RnsRing(N, (QS[0], QS[0]))
    with pytest.raises(ParameterError):
        RING.ntt(np.zeros((1, N + 1), dtype=np.uint64))
    with pytest.raises(ParameterError):
        RING.ntt(np.zeros((1, N), dtype=np.int64))
    with pytest.raises(ParameterError):
        RING.add(np.zeros((2, N), dtype=np.uint64), np.zeros((1, N), dtype=np.uint64))
    with pytest.raises(ParameterError):
        RING.rescale(np.zeros((1, N), dtype=np.uint64))
    with pytest.raises(ParameterError):
        RING.galois_perm(4)


def test_native_reports_bad_arguments_as_errors():
    lib, ffi = RING.lib, RING.ffi
    m = ffi.new("ckks_modulus *")
    tab = np.zeros(4 * N, dtype=np.uint64)
    ptr = ffi.cast("uint64_t *", tab.ctypes.data)
    assert lib.ckks_modulus_init(m, QS[0], 3, N, ptr, tab.size) != 0  # 3 is not a primitive 2N-th root
    assert lib.ckks_modulus_init(m, 2**61 + 1, 3, N, ptr, tab.size) != 0
    assert lib.ckks_modulus_init(m, QS[0], primitive_root_2n(QS[0], N), N + 1, ptr, tab.size) != 0
    perm = np.full(N, N, dtype=np.uint32)
    a = np.zeros((1, N), dtype=np.uint64)
    with pytest.raises(NativeError):
        RING.permute(a, perm)


@pytest.mark.parametrize("alpha", [1, 2])
def test_key_switching_changes_the_key_with_small_error(alpha):
    """ks(d) = (c0, c1) must satisfy c0 + c1 * s_to = d * s_from + e with |e| small (exact CRT check)."""
    from types import SimpleNamespace

    from he_core import SeededRandom
    from he_core.schemes.ckks import keys as kg

    qs = tuple(ntt_primes(60, N, 1) + ntt_primes(40, N, 3, around=True))
    ps = tuple(ntt_primes(61, N, alpha, frozenset(qs)))
    ring = RnsRing(N, qs, ps)
    params = SimpleNamespace(alpha=alpha, sigma=3.2)
    rng = SeededRandom(alpha)
    s_from = kg.full_ntt(ring, rng.ternary(N))
    s_to = kg.full_ntt(ring, rng.ternary(N))
    key = kg.switch_key(ring, params, s_from, s_to, rng)
    for nq in (len(qs), 2):  # top level and a lower level
        d = rand_poly(nq, qs[:nq])
        out = KeySwitcher(ring).key_switch(ring.ntt(d.copy()), key, alpha)
        lhs = ring.add(out[0], ring.mul(out[1], np.ascontiguousarray(s_to[:nq])))
        rhs = ring.mul(ring.ntt(d.copy()), np.ascontiguousarray(s_from[:nq]))
        err = ref.crt(ring.intt(ring.sub(lhs, rhs)), qs[:nq])
        assert max(abs(e) for e in err) < 2**20
