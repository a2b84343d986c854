"""Native vhe kernels against the exact NumPy reference, on random and extreme inputs."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from he_core.errors import HEOverflowError
from he_core.schemes.vhe import native, reference

LIMIT = 2**62
SETTINGS = settings(max_examples=40, deadline=None)
# Values from the full range the kernels accept, with the edges over-represented.
entries = st.one_of(st.integers(-LIMIT, LIMIT), st.sampled_from([0, 1, -1, LIMIT, -LIMIT, LIMIT - 1, -(2**31)]),
                    st.integers(-100, 100))


def arrays(rows, cols, elements=entries):
    return st.lists(elements, min_size=rows * cols, max_size=rows * cols).map(
        lambda v: np.array(v, dtype=np.int64).reshape(rows, cols))


def both(fn, *args):
    """Run one kernel on both back ends: equal results, or the same overflow refusal."""
    outs = []
    for impl in (native, reference):
        try:
            outs.append(getattr(impl, fn)(*[a.copy() if isinstance(a, np.ndarray) else a for a in args]))
        except HEOverflowError:
            outs.append("overflow")
    n, r = outs
    if isinstance(n, tuple):
        assert len(n) == len(r)
        for x, y in zip(n, r):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    else:
        assert type(n) is type(r)
        np.testing.assert_array_equal(np.asarray(n), np.asarray(r))
    return n


shapes = st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 3))  # rows, m, k


@given(shapes.flatmap(lambda s: st.tuples(st.just(s), arrays(s[0], s[1] + s[2]), arrays(s[0], s[1] + s[2]),
                                          st.booleans(), st.sampled_from([1, -1]))))
@SETTINGS
def test_add_parity(case):
    (rows, m, k), a, b, one_row, sign = case
    both("add", a, b[:1] if one_row else b, sign, m, LIMIT)


@given(shapes.flatmap(lambda s: st.tuples(st.just(s), arrays(s[0], s[1] + s[2]),
                                          arrays(1, s[0], st.integers(-2**40, 2**40)),
                                          st.sampled_from([1, 2, 3, 2**16, 2**50 + 7]))))
@SETTINGS
def test_scale_parity(case):
    (rows, m, k), a, p, div = case
    both("scale", a, np.ascontiguousarray(p[0]), div, m, LIMIT)
    both("scale", a, np.ascontiguousarray(p[0, :1]), div, m, LIMIT)


@given(shapes.flatmap(lambda s: st.tuples(st.just(s), arrays(s[0], s[1] + s[2]), arrays(s[0], s[1] + s[2], st.integers(0, 2**32 - 1)),
                                          st.sampled_from([1, 2**16]))))
@SETTINGS
def test_combine_parity(case):
    (rows, m, k), hi, lo, div = case
    both("combine", hi >> 20, lo, 32, div, m, LIMIT)


@given(shapes.flatmap(lambda s: st.tuples(st.just(s), arrays(s[0], s[1] + s[2]),
                                          arrays(3, s[0], st.integers(-2**20, 2**20)), st.sampled_from([1, 2**16]))))
@SETTINGS
def test_lincomb_parity(case):
    (rows, m, k), a, w, div = case
    both("lincomb", w, a, div, m, LIMIT)


@given(shapes.flatmap(lambda s: st.tuples(st.just(s), arrays(s[0], s[1] + s[2]),
                                          st.lists(st.integers(0, s[0] - 1), max_size=8))))
@SETTINGS
def test_gather_and_scatter_parity(case):
    (rows, m, k), a, idx = case
    idx = np.array(idx, dtype=np.int64)
    both("gather_sum", a, idx, m, LIMIT)
    both("gather_sum", a, None, m, LIMIT)
    b = a[::-1][: max(1, len(idx))].copy() if len(idx) <= rows else a[:1].copy()
    if b.shape[0] not in (1, len(idx)):
        b = b[:1].copy()
    targets = [a.copy(), a.copy()]
    results = []
    for impl, t in zip((native, reference), targets):
        try:
            results.append(impl.scatter_add(t, idx, b, m, LIMIT))
        except HEOverflowError:
            results.append("overflow")
    assert results[0] == results[1]
    np.testing.assert_array_equal(targets[0], targets[1])
    if results[0] == "overflow":  # an overflowing scatter leaves the target untouched
        np.testing.assert_array_equal(targets[0], a)


@given(shapes.flatmap(lambda s: st.tuples(st.just(s), arrays(s[0], s[1] + s[2], st.integers(-2**62, 2**62)),
                                          arrays(s[0], s[1] + s[2], st.integers(-2**62, 2**62)), st.booleans(),
                                          st.sampled_from([1, 2**34, 2**50]))))
@SETTINGS
def test_tensor_parity(case):
    (rows, m, k), a, b, scalar, div = case
    if scalar:
        a = np.ascontiguousarray(a[:, [0] + list(range(m, m + k))])
    both("tensor", a, 1 if scalar else m, b, m, k, div, LIMIT)


@given(st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4), st.sampled_from([2, 4, 6, 8]))
       .flatmap(lambda s: st.tuples(st.just(s), arrays(s[0], s[1]), st.data())))
@SETTINGS
def test_keyswitch_parity(case):
    (rows, n, out_len, bits), c, data = case
    from he_core.schemes.vhe.params import digits_needed
    ell = digits_needed(bits, 62)
    mt = np.array(data.draw(st.lists(st.integers(-2**40, 2**40), min_size=n * ell * out_len,
                                     max_size=n * ell * out_len)), dtype=np.int64).reshape(n * ell, out_len)
    both("keyswitch", c, mt, bits, ell, max(out_len - 1, 0), LIMIT)


def test_decompose_reconstructs_extremes():
    c = np.array([[0, 1, -1, 2**62, -(2**62), 12345678901234, -98765432109876]], dtype=np.int64)
    for bits in (2, 3, 4, 8, 16):
        from he_core.schemes.vhe.params import digits_needed
        ell = digits_needed(bits, 62)
        digits = reference.decompose(c, bits, ell).reshape(c.shape[1], ell)
        weights = np.array([2 ** (bits * d) for d in range(ell)], dtype=object)
        assert [int(v) for v in digits.astype(object) @ weights] == [int(v) for v in c[0]]
        assert np.all(digits >= -(2 ** (bits - 1))) and np.all(digits < 2 ** (bits - 1))


def test_decrypt_parity():
    rng = np.random.default_rng(0)
    for m, k in ((1, 1), (5, 2), (8, 1)):
        c = rng.integers(-2**62, 2**62, (4, m + k))
        t = rng.integers(-3, 4, (m, k))
        np.testing.assert_array_equal(native.decrypt(c, m, k, t, 2**34), reference.decrypt(c, m, k, t, 2**34))


def test_overflow_is_detected_not_wrapped():
    big = np.array([[2**62, 1]], dtype=np.int64)
    for impl in (native, reference):
        with pytest.raises(HEOverflowError):
            impl.add(big, big, 1, 1, LIMIT)
        with pytest.raises(HEOverflowError):
            impl.scale(big, np.array([3], dtype=np.int64), 1, 1, LIMIT)
        with pytest.raises(HEOverflowError):
            impl.tensor(big, 1, big, 1, 1, 1, LIMIT)
        with pytest.raises(HEOverflowError):
            impl.gather_sum(np.vstack([big, big]), None, 1, LIMIT)
    # just inside the limit passes on both
    ok = np.array([[2**61, 1]], dtype=np.int64)
    both("add", ok, ok, 1, 1, LIMIT)


def test_keyswitch_refuses_entries_beyond_the_digits():
    c = np.array([[2**62 + 2**61]], dtype=np.int64)
    mt = np.ones((4, 1), dtype=np.int64)  # 4 digits of 4 bits cannot hold 2^62
    for impl in (native, reference):
        with pytest.raises(HEOverflowError):
            impl.keyswitch(c, mt, 4, 4, 1, LIMIT)


def test_bad_arrays_raise_clear_errors():
    a = np.zeros((2, 4), dtype=np.int64)
    with pytest.raises(TypeError, match="int64"):
        native.add(a.astype(np.float64), a, 1, 3, LIMIT)
    with pytest.raises(ValueError, match="C-contiguous"):
        native.add(np.asfortranarray(np.zeros((3, 4), dtype=np.int64)), np.zeros((3, 4), dtype=np.int64), 1, 3, LIMIT)
    with pytest.raises(ValueError, match="C-contiguous"):
        native.scale(np.zeros((4, 4), dtype=np.int64)[:, ::2], np.ones(1, dtype=np.int64), 1, 1, LIMIT)
    with pytest.raises(ValueError):
        native.add(a, np.zeros((3, 4), dtype=np.int64), 1, 3, LIMIT)
    with pytest.raises(ValueError):
        native.keyswitch(a, np.zeros((5, 2), dtype=np.int64), 4, 16, 1, LIMIT)
    with pytest.raises(ValueError):
        native.tensor(a, 2, a, 3, 1, 1, LIMIT)
    with pytest.raises(ValueError):
        native.scatter_add(a, np.array([0, 1], dtype=np.int64), np.zeros((3, 4), dtype=np.int64), 3, LIMIT)


def test_wide_rows_parity():
    """Rows longer than the kernels' on-stack buffers (size 256 + k)."""
    rng = np.random.default_rng(4)
    a = rng.integers(-2**60, 2**60, (7, 300))
    idx = np.array([0, 3, 3, 6], dtype=np.int64)
    both("gather_sum", a, idx, 256, LIMIT)
    both("gather_sum", a, None, 256, LIMIT)
    both("lincomb", rng.integers(-4, 5, (2, 7)), a, 2**16, 256, LIMIT)
    both("tensor", a[:, :258], 256, a[:, :258], 256, 2, 2**40, LIMIT)


def test_scatter_into_a_read_only_array_is_refused():
    a = np.zeros((3, 2), dtype=np.int64)
    a.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        native.scatter_add(a, np.array([0], dtype=np.int64), np.ones((1, 2), dtype=np.int64), 1, LIMIT)


@given(shapes.flatmap(lambda s: st.tuples(st.just(s), arrays(s[0], s[1] + s[2], st.integers(-2**40, 2**40)),
                                          arrays(s[0], s[1] + s[2], st.integers(-2**40, 2**40)), st.booleans(),
                                          st.booleans(), st.sampled_from([1, 2**16, 2**30]),
                                          st.integers(0, 2**32))))
@SETTINGS
def test_fused_mul_parity(case):
    """The fused product equals tensor then key switch, stats (with the digit L1) included."""
    (rows, m, k), a, b, scalar, one_row, div, seed = case
    from he_core.schemes.vhe.params import digits_needed
    if scalar:
        a = np.ascontiguousarray(a[:, [0] + list(range(m, m + k))])
    if one_row:
        b = np.ascontiguousarray(b[:1])
    ell = digits_needed(4, 62)
    tlen, out_len = m * (1 + k) ** 2, m + k
    mt = np.random.default_rng(seed).integers(-2**20, 2**20, (tlen * ell, out_len))
    ma = 1 if scalar else m
    fused = both("mul", a, ma, b, m, k, div, mt, 4, ell, m, LIMIT)
    if fused != "overflow":
        t = native.tensor(a, ma, b, m, k, div, LIMIT)
        out, stats = native.keyswitch(t, mt, 4, ell, m, LIMIT)
        np.testing.assert_array_equal(fused[0], out)
        assert tuple(fused[1]) == tuple(stats)


def test_keyswitch_reports_the_digit_l1():
    c = np.array([[0, 1, -1, 9, -(2**20)], [7, 0, 0, 0, 0]], dtype=np.int64)
    mt = np.zeros((5 * 16, 2), dtype=np.int64)
    for impl in (native, reference):
        _, (_, _, l1) = impl.keyswitch(c, mt, 4, 16, 1, LIMIT)
        digits = reference.decompose(c, 4, 16)
        assert l1 == int(np.abs(digits).sum(axis=1).max())
        assert l1 == 0 + 1 + 1 + (7 + 1) + 1  # 9 = 16 - 7 -> digits (-7, 1); -2^20 = -1 * 16^5


@given(st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 3)).flatmap(
    lambda s: st.tuples(st.just(s), arrays(s[0], s[1], st.integers(-2**28, 2**28)),
                        arrays(s[1], s[2], st.integers(-3, 3)), arrays(s[0], s[1] + s[2], st.integers(-2**16, 2**16)),
                        st.sampled_from([0, 1, 16]))))
@SETTINGS
def test_encrypt_secret_parity(case):
    (rows, m, k), x, t, draws, noise = case
    outs = []
    for impl in (native, reference):
        data = draws.copy()
        impl.encrypt_secret(x, t, 2**33, noise, data)
        outs.append(data)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0][:, m:], draws[:, m:])  # key columns kept
    e = outs[0][:, :m] + draws[:, m:] @ t.T - x * 2**33  # the noise: in [-noise, noise]
    assert np.all(np.abs(e) <= noise)
