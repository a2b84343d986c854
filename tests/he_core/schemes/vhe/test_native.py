"""The C side of the vhe bindings: NULL pointers, short scratch and out-of-bounds k / noise are
refused with named errors, in Python before C where the binding can tell, and by C itself."""
import numpy as np
import pytest

from he_core.errors import HEOverflowError, ParameterError
from he_core.native import NativeArgumentError, NativeRangeError, NullPointerError, ScratchError, check
from he_core.schemes.vhe import native, reference
from he_core.threads import using_threads

LIB, FFI = native.lib, native.ffi
NULL = FFI.NULL
LIMIT = 2**62


def p(a):
    return FFI.cast("int64_t *", a.ctypes.data)


def test_bounds_come_from_the_header():
    assert native.MAX_K == 64
    assert native.MAX_NOISE == 2**62 - 1


def test_null_pointers_are_refused():
    a, st = np.zeros((2, 3), dtype=np.int64), FFI.new("int64_t[3]")
    scratch = np.zeros(4096, dtype=np.int64)
    calls = {
        "add": lambda: LIB.vhe_add(p(a), 2, NULL, 2, 2, 3, 1, 1, LIMIT, p(a), st),
        "scale": lambda: LIB.vhe_scale(p(a), 2, p(a), 2, 2, 3, 1, 1, LIMIT, p(a), NULL),
        "combine": lambda: LIB.vhe_combine(NULL, p(a), 2, 3, 1, 4, 1, LIMIT, p(a), st),
        "lincomb": lambda: LIB.vhe_lincomb(p(a), 1, p(a), 2, 3, 1, 1, LIMIT, NULL, st),
        "gather_sum": lambda: LIB.vhe_gather_sum(NULL, 2, 3, NULL, 0, 1, LIMIT, p(a), st),
        "scatter_add": lambda: LIB.vhe_scatter_add(p(a), 2, 3, p(a), 1, p(a), 1, 1, LIMIT, st, NULL, 2),
        "tensor": lambda: LIB.vhe_tensor(p(a), 2, 1, NULL, 2, 1, 2, 2, 1, LIMIT, p(scratch)),
        "keyswitch": lambda: LIB.vhe_keyswitch(p(a), 2, 3, NULL, 3, 4, 2, 1, LIMIT, p(scratch), st, p(scratch), 6),
        "mul": lambda: LIB.vhe_mul(p(a), 2, 1, p(a), 2, 1, 2, 2, 1, p(scratch), 3, 4, 2, 1, LIMIT, p(scratch), st,
                                   NULL, 100),
        "encrypt": lambda: LIB.vhe_encrypt(p(a), 2, 1, 2, NULL, 2, 1, p(a)),
        "decrypt": lambda: LIB.vhe_decrypt(p(a), 2, 1, 2, p(a), 2, NULL),
    }
    for what, call in calls.items():
        with pytest.raises(NullPointerError, match=f"^cannot {what}: "):
            check(call(), what)


@pytest.fixture
def one_thread():
    """Scratch sizes asked at one thread are the kernels' minimum (more threads ask one slice each)."""
    with using_threads(1):
        yield


def test_short_scratch_is_refused(one_thread):
    c = np.ones((2, 3), dtype=np.int64)
    mt = np.ones((3 * 4, 3), dtype=np.int64)
    out, st = np.empty((2, 3), dtype=np.int64), FFI.new("int64_t[3]")
    words = LIB.vhe_keyswitch_scratch(3, 4)
    assert words == 12
    buf = np.zeros(words, dtype=np.int64)
    with pytest.raises(ScratchError):
        check(LIB.vhe_keyswitch(p(c), 2, 3, p(mt), 3, 4, 4, 1, LIMIT, p(out), st, p(buf), words - 1), "keyswitch")
    check(LIB.vhe_keyswitch(p(c), 2, 3, p(mt), 3, 4, 4, 1, LIMIT, p(out), st, p(buf), words), "keyswitch")
    assert out.tolist() == native.keyswitch(c, mt, 4, 4, 1, LIMIT)[0].tolist()
    m, k, ell = 1, 2, 4
    mmt = np.ones((m * (1 + k) ** 2 * ell, m + k), dtype=np.int64)
    words = LIB.vhe_mul_scratch(m, k, ell)
    assert words == m * (1 + k) ** 2 * (1 + ell)
    buf = np.zeros(words, dtype=np.int64)
    with pytest.raises(ScratchError):
        check(LIB.vhe_mul(p(c), 2, m, p(c), 2, m, k, 2, 1, p(mmt), m + k, 4, ell, 1, LIMIT, p(out), st, p(buf),
                          words - 1), "mul")
    idx = np.array([0, 1, 1], dtype=np.int64)
    with pytest.raises(ScratchError):
        check(LIB.vhe_scatter_add(p(c), 2, 3, p(idx), 3, p(c), 1, 1, LIMIT, st, p(buf), 1), "scatter_add")
    assert c.tolist() == [[1, 1, 1], [1, 1, 1]]  # refused before any row was touched


def test_key_columns_beyond_the_bound():
    m, k = 1, native.MAX_K + 1
    x, t = np.zeros((1, m), dtype=np.int64), np.zeros((m, k), dtype=np.int64)
    data = np.zeros((1, m + k), dtype=np.int64)
    with pytest.raises(ParameterError, match=f"^cannot encrypt: {k} key columns"):
        native.encrypt_secret(x, t, 2, 1, data)
    with pytest.raises(ParameterError, match="^cannot decrypt: "):
        native.decrypt(data, m, k, t, 2)
    with pytest.raises(ParameterError, match="^cannot multiply: "):
        native.tensor(data, 1, data, 1, k, 1, LIMIT)
    with pytest.raises(ParameterError, match="^cannot multiply: "):
        native.mul(data, 1, data, 1, k, 1, np.zeros((1, 2), dtype=np.int64), 4, 16, 1, LIMIT)
    # C checks the bound on its own too
    with pytest.raises(NativeRangeError):
        check(LIB.vhe_encrypt(p(x), 1, m, k, p(t), 2, 1, p(data)), "encrypt")
    with pytest.raises(NativeRangeError):
        check(LIB.vhe_decrypt(p(data), 1, m, k, p(t), 2, p(x)), "decrypt")
    with pytest.raises(NativeRangeError):
        check(LIB.vhe_tensor(p(data), 1, 1, p(data), 1, 1, k, 1, 1, LIMIT, p(data)), "tensor")


def test_noise_beyond_the_bound():
    x, t = np.zeros((1, 1), dtype=np.int64), np.ones((1, 1), dtype=np.int64)
    for noise in (2**62, 2**63 - 1, -1):
        with pytest.raises(ParameterError, match="^cannot encrypt: noise"):
            native.encrypt_secret(x, t, 2, noise, np.zeros((1, 2), dtype=np.int64))
        with pytest.raises(NativeRangeError):  # 2 noise + 1 would wrap in int64
            check(LIB.vhe_encrypt(p(x), 1, 1, 1, p(t), 2, noise, p(np.zeros((1, 2), dtype=np.int64))), "encrypt")


def test_noise_at_the_bound_matches_the_reference():
    x = np.array([[3, -5]], dtype=np.int64)
    t = np.array([[1, -1], [2, 0]], dtype=np.int64)
    draws = np.array([[2**63 - 1, -(2**63) + 1, 7, -9]], dtype=np.int64)
    outs = []
    for impl in (native, reference):
        data = draws.copy()
        impl.encrypt_secret(x, t, 4, native.MAX_NOISE, data)
        outs.append(data)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_sums_over_many_key_columns_are_checked_not_wrapped():
    """64 products near 2^126 overflow 128 bits: refused, where the unchecked sum used to wrap."""
    m, k = 1, native.MAX_K
    big = 2**63 - 1
    t = np.full((m, k), big, dtype=np.int64)
    c = np.full((1, m + k), big, dtype=np.int64)
    with pytest.raises(HEOverflowError, match="^cannot decrypt: "):
        native.decrypt(c, m, k, t, 2)
    with pytest.raises(HEOverflowError, match="^cannot encrypt: "):
        native.encrypt_secret(np.zeros((1, m), dtype=np.int64), t, 2, 1, c.copy())


def test_keyswitch_digits_of_negative_entries_round_trip():
    """The digit split is exact for negative values (no right shift of a negative number)."""
    c = np.array([[-1, -(2**62), -(2**31) - 1, -12345, 2**62 - 1]], dtype=np.int64)
    digit_bits, ell = 4, 16
    mt = np.zeros((c.shape[1] * ell, c.shape[1]), dtype=np.int64)
    for j in range(c.shape[1]):  # the key that recombines the digits of entry j into column j
        for d in range(ell):
            mt[j * ell + d, j] = 16**d
    out, _ = native.keyswitch(c, mt, digit_bits, ell, 1, LIMIT)
    np.testing.assert_array_equal(out, c)


def test_add_sign_other_than_plus_or_minus_one_is_refused():
    """The contract says sign is 1 or -1: any other factor is refused, not silently applied."""
    a, st = np.ones((1, 3), dtype=np.int64), FFI.new("int64_t[3]")
    out = np.empty_like(a)
    for sign in (0, 2, -2**63):
        with pytest.raises(ValueError, match="sign must be 1 or -1"):
            native.add(a, a, sign, 1, LIMIT)
        with pytest.raises(NativeArgumentError):  # C checks it too
            check(LIB.vhe_add(p(a), 1, p(a), 1, 1, 3, 1, sign, LIMIT, p(out), st), "add")
    check(LIB.vhe_add(p(a), 1, p(a), 1, 1, 3, 1, -1, LIMIT, p(out), st), "add")
    assert out.tolist() == [[0, 0, 0]]


def test_key_switch_digits_beyond_the_bound_are_refused():
    """More than 2^43 digits per row could wrap the 128-bit sums and the int64 digit-L1 count:
    refused by the binding (no buffer read) and by C. With 0 rows C reads no buffer either,
    so the sizes below need no memory behind them."""
    assert native.MAX_DIGITS == 2**43
    c = np.lib.stride_tricks.as_strided(np.zeros(1, dtype=np.int64), shape=(1, 2**38), strides=(0, 0))
    with pytest.raises(ParameterError, match="^cannot key switch: 17592186044416 key-switch digits"):
        native.keyswitch(c, np.zeros((1, 1), dtype=np.int64), 4, 64, 1, LIMIT)
    a, st = np.zeros((1, 4), dtype=np.int64), FFI.new("int64_t[3]")
    n, ell = 2**38, 64  # 2^44 digits
    with pytest.raises(NativeArgumentError):
        check(LIB.vhe_keyswitch(p(a), 0, n, p(a), 1, 4, ell, 1, LIMIT, p(a), st, p(a), n * ell), "key switch")
    check(LIB.vhe_keyswitch(p(a), 0, n // 2, p(a), 1, 4, ell, 1, LIMIT, p(a), st, p(a), n * ell), "key switch")
    m, k = 2**31, 8  # m (1+k)^2 ell = 81 * 2^37 > 2^43
    words = LIB.vhe_mul_scratch(m, k, ell)
    with pytest.raises(NativeArgumentError):
        check(LIB.vhe_mul(p(a), 1, 1, p(a), 1, m, k, 0, 1, p(a), 1, 4, ell, 1, LIMIT, p(a), st, p(a), words), "mul")


def test_lincomb_sums_beyond_128_bits_are_checked_not_wrapped():
    """Four products (-2^63)^2 sum to 2^128, which an unchecked 128-bit sum stores as 0; weight
    rows with an L1 norm of 2^64 or more take the checked path and agree with the exact reference."""
    lo = -(2**63)
    w, a = np.full((1, 4), lo, dtype=np.int64), np.full((4, 1), lo, dtype=np.int64)
    for impl in (native, reference):
        with pytest.raises(HEOverflowError, match="^cannot lincomb: "):
            impl.lincomb(w, a, 1, 1, 2**63 - 1)
    hi = 2**63 - 1
    w = np.array([[hi, -hi, hi, -hi], [hi, hi, 0, 0]], dtype=np.int64)
    a = np.array([[1, 5], [2, 5], [3, 3], [7, 3]], dtype=np.int64)
    got, want = native.lincomb(w, a, 2**62, 1, LIMIT), reference.lincomb(w, a, 2**62, 1, LIMIT)
    assert got[0].tolist() == want[0].tolist() and got[1] == want[1]


def test_misaligned_scratch_is_refused(one_thread):
    """Enough words, but not on an int64 boundary: refused like the ckks kernels' scratch."""
    c, st = np.ones((2, 3), dtype=np.int64), FFI.new("int64_t[3]")
    mt, out = np.ones((3 * 4, 3), dtype=np.int64), np.empty((2, 3), dtype=np.int64)
    words = LIB.vhe_keyswitch_scratch(3, 4)
    buf = np.zeros(words + 1, dtype=np.int64)
    odd = FFI.cast("int64_t *", buf.ctypes.data + 4)
    with pytest.raises(ScratchError):
        check(LIB.vhe_keyswitch(p(c), 2, 3, p(mt), 3, 4, 4, 1, LIMIT, p(out), st, odd, words), "keyswitch")
    m, k, ell = 1, 2, 4
    mmt = np.ones((m * (1 + k) ** 2 * ell, m + k), dtype=np.int64)
    buf = np.zeros(LIB.vhe_mul_scratch(m, k, ell) + 1, dtype=np.int64)
    odd = FFI.cast("int64_t *", buf.ctypes.data + 4)
    with pytest.raises(ScratchError):
        check(LIB.vhe_mul(p(c), 2, m, p(c), 2, m, k, 2, 1, p(mmt), m + k, 4, ell, 1, LIMIT, p(out), st, odd,
                          buf.size - 1), "mul")
    idx = np.array([0, 1], dtype=np.int64)
    with pytest.raises(ScratchError):
        check(LIB.vhe_scatter_add(p(c), 2, 3, p(idx), 2, p(c), 1, 1, LIMIT, st, odd, 2), "scatter_add")
    assert c.tolist() == [[1, 1, 1], [1, 1, 1]]
