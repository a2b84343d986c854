"""The C side of RnsRing's kernels: NULL pointers, short or misaligned scratch or tables and
moduli of another ring dimension are refused with named errors (never a crash or a read past
a table)."""
import numpy as np
import pytest

from he_core import native
from he_core.errors import ParameterError
from he_core.native import DimensionMismatchError, NullPointerError, ScratchError
from he_core.schemes.ckks.keyswitch import KeySwitcher
from he_core.schemes.ckks.primes import ntt_primes, primitive_root_2n
from he_core.schemes.ckks.ring import RnsRing
from he_core.threads import using_threads

N = 32
QS = tuple(ntt_primes(60, N, 1) + ntt_primes(40, N, 2, around=True))
PS = tuple(ntt_primes(61, N, 1, frozenset(QS)))
RING = RnsRing(N, QS, PS)
LIB, FFI = RING.lib, RING.ffi
NULL = FFI.NULL


def ptr(a, offset_bytes=0):
    return FFI.cast("uint64_t *", a.ctypes.data + offset_bytes)


def poly(limbs, n=N, seed=0):
    return np.random.default_rng(seed).integers(0, 2**30, (limbs, n), dtype=np.uint64)


def ks_args(scratch, words, m=None, n=N):
    """Arguments of ckks_keyswitch at the top level (alpha = 1), with the given scratch."""
    nq, ltot = len(QS), len(QS) + len(PS)
    key = np.zeros((nq, 2, ltot, n), dtype=np.uint64)
    up, down = KeySwitcher(RING).constants(nq, 1)
    d, out = poly(nq, n), np.empty((2, nq, n), dtype=np.uint64)
    keep = (key, up, down, d, out)
    return keep, (m if m is not None else RING.basis(nq, True), nq, len(PS), n, ptr(d), ptr(key), nq, ltot, 1,
                  ptr(up), ptr(down), ptr(out), scratch, words)


def test_null_pointers_are_refused():
    a = poly(1)
    check = native.check
    with pytest.raises(NullPointerError, match="^cannot ntt: "):
        check(LIB.ckks_ntt(NULL, 1, N, ptr(a)), "ntt")
    with pytest.raises(NullPointerError):
        check(LIB.ckks_intt(RING.basis(1), 1, N, NULL), "intt")
    for fn in (LIB.ckks_add, LIB.ckks_sub, LIB.ckks_mul, LIB.ckks_muladd, LIB.ckks_mul_scalar):
        with pytest.raises(NullPointerError):
            check(fn(RING.basis(1), 1, N, ptr(a), NULL, ptr(a)), "element-wise")
    with pytest.raises(NullPointerError):
        check(LIB.ckks_neg(RING.basis(1), 1, N, ptr(a), NULL), "neg")
    with pytest.raises(NullPointerError):
        check(LIB.ckks_modulus_init(NULL, QS[0], 3, N, ptr(a), a.size), "modulus init")
    with pytest.raises(NullPointerError):
        check(LIB.ckks_permute(1, N, ptr(a), FFI.NULL, ptr(a.copy())), "permute")
    with pytest.raises(NullPointerError):
        check(LIB.ckks_rescale(RING.basis(2), 2, N, ptr(poly(2)), ptr(poly(1)), NULL, 2 * N), "rescale")
    keep, args = ks_args(NULL, 10**6)
    with pytest.raises(NullPointerError):
        check(LIB.ckks_keyswitch(*args), "keyswitch")


@pytest.fixture
def one_thread():
    """Scratch sizes asked at one thread are the kernels' minimum (more threads ask one slice each)."""
    with using_threads(1):
        yield


def test_short_or_misaligned_scratch_is_refused(one_thread):
    nq = len(QS)
    words = LIB.ckks_keyswitch_scratch(nq, len(PS), N, 1)
    buf = np.zeros(words + 1, dtype=np.uint64)
    keep, args = ks_args(ptr(buf), words - 1)
    with pytest.raises(ScratchError, match="^cannot keyswitch: "):
        native.check(LIB.ckks_keyswitch(*args), "keyswitch")
    keep, args = ks_args(ptr(buf, 4), words)  # enough words, but not on a word boundary
    with pytest.raises(ScratchError):
        native.check(LIB.ckks_keyswitch(*args), "keyswitch")
    keep, args = ks_args(ptr(buf), words)
    native.check(LIB.ckks_keyswitch(*args), "keyswitch")  # exactly the size asked for
    a, out = poly(2), np.empty((1, N), dtype=np.uint64)
    with pytest.raises(ScratchError):
        native.check(LIB.ckks_rescale(RING.basis(2), 2, N, ptr(a), ptr(out), ptr(buf),
                                      LIB.ckks_rescale_scratch(N) - 1), "rescale")
    d = poly(nq)
    ext = np.empty((nq, nq + len(PS), N), dtype=np.uint64)
    up, down = KeySwitcher(RING).constants(nq, 1)
    with pytest.raises(ScratchError):
        native.check(LIB.ckks_modup(RING.basis(nq, True), nq, len(PS), N, ptr(d), 1, ptr(up), ptr(ext), ptr(buf),
                                    LIB.ckks_modup_scratch(nq, N) - 1), "modup")
    key = np.zeros((nq, 2, nq + len(PS), N), dtype=np.uint64)
    with pytest.raises(ScratchError):
        native.check(LIB.ckks_ks_dot(RING.basis(nq, True), nq, len(PS), N, ptr(ext), nq, NULL, ptr(key), nq,
                                     nq + len(PS), ptr(down), ptr(out), ptr(buf),
                                     LIB.ckks_ks_dot_scratch(nq, len(PS), N) - 1), "keyswitch")
    inv_hat, hat = RING.conv_constants(QS[:2], PS)
    x, res = poly(2), np.empty((1, N), dtype=np.uint64)
    m_src, m_dst = FFI.new("ckks_modulus[]", 2), FFI.new("ckks_modulus[]", 1)
    m_src[0], m_src[1], m_dst[0] = RING._mods[0], RING._mods[1], RING._mods[len(QS)]
    with pytest.raises(ScratchError):
        native.check(LIB.ckks_base_conv(m_src, 2, m_dst, 1, N, ptr(x), ptr(inv_hat), ptr(hat), ptr(res), ptr(buf),
                                        LIB.ckks_base_conv_scratch(2, N) - 1), "base_conv")
    with pytest.raises(NullPointerError):
        native.check(LIB.ckks_base_conv(m_src, 2, m_dst, 1, N, ptr(x), ptr(inv_hat), ptr(hat), ptr(res), NULL,
                                        10**6), "base_conv")


def test_base_conversion_uses_the_callers_scratch():
    """The Python binding passes its scratch; the result matches the formula (no allocation in C)."""
    x = poly(2, seed=3) % np.array([[QS[0]], [QS[1]]], dtype=np.uint64)
    out = RING.base_conv(x, [0, 1], [len(QS)])
    prod = QS[0] * QS[1]
    want = [sum(int(x[i, k]) * pow(prod // QS[i], -1, QS[i]) % QS[i] * (prod // QS[i]) for i in range(2)) % PS[0]
            for k in range(N)]
    assert out[0].tolist() == want


@pytest.mark.parametrize("other_n", [N // 2, 2 * N])
def test_moduli_of_another_ring_dimension_are_refused(other_n):
    """A modulus stores its n: a larger n must not walk past its twiddle tables. The ring
    refuses the polynomial in Python first; C refuses the modulus on its own."""
    a, b = poly(1, other_n), poly(1, other_n)
    for op in (RING.ntt, RING.intt, lambda x: RING.add(x, x)):
        with pytest.raises(ParameterError, match=f"shape \\(1, {other_n}\\)"):
            op(a)
    m1 = RING.basis(1)
    for fn in (LIB.ckks_ntt, LIB.ckks_intt):
        with pytest.raises(DimensionMismatchError, match="another ring dimension"):
            native.check(fn(m1, 1, other_n, ptr(a)), "ntt")
    for fn in (LIB.ckks_add, LIB.ckks_sub, LIB.ckks_mul, LIB.ckks_muladd):
        with pytest.raises(DimensionMismatchError):
            native.check(fn(m1, 1, other_n, ptr(a), ptr(b), ptr(a)), "element-wise")
    with pytest.raises(DimensionMismatchError):
        native.check(LIB.ckks_from_signed(m1, 1, other_n, FFI.cast("int64_t *", a.ctypes.data), ptr(b)), "reduce")
    buf = np.zeros(10**5, dtype=np.uint64)
    a2, out = poly(2, other_n), poly(1, other_n)
    with pytest.raises(DimensionMismatchError):
        native.check(LIB.ckks_rescale(RING.basis(2), 2, other_n, ptr(a2), ptr(out), ptr(buf), buf.size), "rescale")
    keep, args = ks_args(ptr(buf), buf.size, n=other_n)
    with pytest.raises(DimensionMismatchError):
        native.check(LIB.ckks_keyswitch(*args), "keyswitch")
    assert np.array_equal(a, poly(1, other_n))  # refused before touching the data


def test_an_uninitialised_modulus_is_refused():
    m = FFI.new("ckks_modulus[]", 1)  # zeroed: n = 0
    with pytest.raises(DimensionMismatchError):
        native.check(LIB.ckks_ntt(m, 1, N, ptr(poly(1))), "ntt")


def test_modulus_records_its_dimension():
    assert all(RING._mods[i].n == N for i in range(len(QS) + len(PS)))


def test_short_or_misaligned_tables_are_refused():
    """ckks_modulus_init writes 4 N words of tables: a shorter (or misaligned) buffer is a
    ScratchError before any word is written, and leaves the modulus refused."""
    psi = primitive_root_2n(QS[0], N)
    m = FFI.new("ckks_modulus[]", 1)
    tables = np.zeros(4 * N + 1, dtype=np.uint64)
    for words in (0, N, 4 * N - 1):
        with pytest.raises(ScratchError, match="^cannot modulus init: "):
            native.check(LIB.ckks_modulus_init(m, QS[0], psi, N, ptr(tables), words), "modulus init")
        assert m[0].n == 0 and not tables.any()
    with pytest.raises(ScratchError):  # enough words, but not on a word boundary
        native.check(LIB.ckks_modulus_init(m, QS[0], psi, N, ptr(tables, 4), 4 * N), "modulus init")
    assert m[0].n == 0 and not tables.any()
    native.check(LIB.ckks_modulus_init(m, QS[0], psi, N, ptr(tables), 4 * N), "modulus init")
    assert m[0].n == N and tables[4 * N - 1] != 0 and tables[4 * N] == 0  # exactly 4 N words written


def test_a_failed_reinit_leaves_the_modulus_refused():
    """Re-initialising a working modulus with a bad root must not leave it usable with the
    old n and tables built for another prime (a silently wrong transform)."""
    tables = np.zeros(4 * N, dtype=np.uint64)
    m = FFI.new("ckks_modulus[]", 1)
    native.check(LIB.ckks_modulus_init(m, QS[0], primitive_root_2n(QS[0], N), N, ptr(tables), tables.size), "modulus init")
    native.check(LIB.ckks_ntt(m, 1, N, ptr(poly(1))), "ntt")
    with pytest.raises(native.NativeArgumentError):
        native.check(LIB.ckks_modulus_init(m, QS[1], 3, N, ptr(tables), tables.size), "modulus init")  # 3: not a 2N-th root
    assert m[0].n == 0
    with pytest.raises(DimensionMismatchError):
        native.check(LIB.ckks_ntt(m, 1, N, ptr(poly(1))), "ntt")


def test_lincomb_refuses_bad_operands_by_name():
    a = np.stack([poly(2), poly(2, seed=1)])
    with pytest.raises(NullPointerError):
        native.check(LIB.ckks_lincomb(RING.basis(2), 2, N, 2, 1, ptr(a), 2 * N, NULL, ptr(poly(2)), 2 * N), "lincomb")
    w = np.array([QS[0], 1, 1, 1], dtype=np.uint64)  # a factor residue not below its prime
    out = np.full((1, 2, N), 7, dtype=np.uint64)
    with pytest.raises(native.NativeRangeError):
        native.check(LIB.ckks_lincomb(RING.basis(2), 2, N, 2, 1, ptr(a), 2 * N, ptr(w), ptr(out), 2 * N), "lincomb")
    assert (out == 7).all()  # refused before any output was written
    with pytest.raises(native.NativeArgumentError):  # rows closer than a polynomial: operands that overlap themselves
        native.check(LIB.ckks_lincomb(RING.basis(2), 2, N, 2, 1, ptr(a), N, ptr(w % QS[0]), ptr(out), 2 * N),
                     "lincomb")
    huge = 2**63  # nin * a_step past size_t: refused before any pointer is formed
    with pytest.raises(native.NativeArgumentError):
        native.check(LIB.ckks_lincomb(RING.basis(2), 2, N, 3, 1, ptr(a), huge, ptr(w % QS[0]), ptr(out), 2 * N),
                     "lincomb")
    with pytest.raises(ParameterError, match="overlaps"):
        RING.lincomb(a, [[1, 2]], out=a[:1])
    with pytest.raises(ParameterError, match="factors"):
        RING.lincomb(a, [[1, 2, 3]])
    with pytest.raises(ParameterError, match="uint64 blocks"):
        RING.lincomb(a.astype(np.int64), [[1, 2]])
    with pytest.raises(ParameterError, match="uint64 blocks"):
        RING.lincomb(a[:, :, ::2], [[1, 2]])


def test_lincomb_is_the_same_for_any_thread_count():
    a = np.stack([poly(3, n=N, seed=s) for s in range(9)])
    factors = [[(-1) ** r * (r + 1) << 40 for r in range(9)] for _ in range(5)]
    with using_threads(1):
        one = RING.lincomb(a, factors)
    with using_threads(2):
        two = RING.lincomb(a, factors)
    assert np.array_equal(one, two)


@pytest.mark.parametrize("shape", [(1, 2, 3), (3, 2, 2), (2, 1), (4, 3, 2, 1)])
@pytest.mark.parametrize("sub", [False, True])
def test_a_stacked_sum_is_the_sum_of_each_polynomial(shape, sub):
    *stack, limbs = shape
    rng = np.random.default_rng(len(shape) + sub)
    q = np.array(QS[:limbs], dtype=np.uint64)[:, None]
    a = np.stack([rng.integers(0, q, (limbs, N), dtype=np.uint64) for _ in range(int(np.prod(stack)))])
    b = np.stack([rng.integers(0, q, (limbs, N), dtype=np.uint64) for _ in range(int(np.prod(stack)))])
    a, b = a.reshape(*stack, limbs, N), b.reshape(*stack, limbs, N)
    got = RING.add_stacked(a, b, sub)
    flat = zip(a.reshape(-1, limbs, N), b.reshape(-1, limbs, N), got.reshape(-1, limbs, N))
    for x, y, z in flat:
        assert np.array_equal(z, RING.sub(x, y) if sub else RING.add(x, y))
    want = (a.astype(object) + (-1 if sub else 1) * b.astype(object)) % q.astype(object)
    assert np.array_equal(got.astype(object), want)


def test_a_stacked_sum_refuses_unequal_or_foreign_stacks():
    a = poly(2)[None]
    with pytest.raises(ParameterError, match="cannot add stacks"):
        RING.add_stacked(a, poly(2)[None, :1])
    with pytest.raises(ParameterError, match="cannot add stacks"):
        RING.add_stacked(a, a.astype(np.int64))
    with pytest.raises(ParameterError, match="limbs"):
        RING.add_stacked(poly(5)[None], poly(5)[None])  # more limbs than the ring has q primes


def test_a_read_only_output_is_refused_before_any_kernel_writes():
    a = poly(2)
    frozen = np.frombuffer(bytes(a.nbytes), dtype=np.uint64).reshape(a.shape)  # a view of immutable bytes
    for call in (lambda: RING.mul(a, a, out=frozen), lambda: RING.add(a, a, out=frozen),
                 lambda: RING.dot([a], [a], out=frozen), lambda: RING.ntt(frozen), lambda: RING.intt(frozen)):
        with pytest.raises(ParameterError, match="read-only"):
            call()
    assert not frozen.any()


def test_a_sum_of_products_of_arrays_is_refused_by_name():
    a = poly(2)
    with pytest.raises(ParameterError, match="factors"):
        RING.dot(np.stack([a]), np.stack([a, a]))


def test_key_switches_on_several_python_threads_give_the_serial_results():
    # The kernels release the GIL and key switching uses the ring's scratch: each Python
    # thread must get its own, or concurrent switches overwrite each other.
    import concurrent.futures
    import warnings

    from he_core import KeyRequirements, SeededRandom
    from he_core.schemes.ckks import CkksParams, CkksScheme

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=4096, levels=3, allow_insecure=True))
    scheme.keygen(KeyRequirements(sizes=(8,), rotations=(1,), multiply=True), rng=SeededRandom(5))
    cts = [scheme.encrypt(np.random.default_rng(i).uniform(-1, 1, (4, 8)), rng=SeededRandom(i)) for i in range(8)]
    want = [scheme.mul(c, c, rescale=False).data for c in cts]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            got = list(pool.map(lambda c: scheme.mul(c, c, rescale=False).data, cts))
            assert all(np.array_equal(g, w) for g, w in zip(got, want))


def test_an_in_place_transform_refuses_a_strided_array_with_special_primes():
    buf = np.zeros((len(QS) + len(PS) + 1, N), dtype=np.uint64)
    strided = buf[: len(QS) + len(PS)][::-1]  # its first rows look contiguous, the whole is not
    for transform in (RING.ntt, RING.intt):
        with pytest.raises(ParameterError, match="C-contiguous"):
            transform(strided, special=True)
    assert not buf.any()


def test_a_permutation_of_another_dtype_or_length_is_refused():
    a = poly(2)
    good = RING.galois_perm(3)
    assert good.dtype == np.uint32
    for bad in (good.astype(np.int64), good[:-1], good.astype(np.uint32)[::-1][::-1].copy()[: N // 2]):
        with pytest.raises(ParameterError, match="uint32"):
            RING.permute(a, bad)
    assert np.array_equal(RING.permute(a, good), a[:, good])
