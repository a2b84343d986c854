"""he_core.schemes.vhe.reference, the executable definition of the vhe kernels, against explicit loops
over Python integers (and fractions for the roundings) on small inputs, and its documented limits.

The native kernels are checked against this reference in test_kernels.py; here the reference itself is
checked against the definitions its docstrings state, so a slip in its numpy vectorisation cannot hide.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from he_core.errors import HEOverflowError
from he_core.schemes.vhe import reference as ref

LIMIT = 2**62


def ints(shape, bound, seed):
    return np.random.default_rng(seed).integers(-bound, bound + 1, shape, dtype=np.int64)


def nearest(num: int, div: int) -> int:
    """The nearest integer to num / div, ties up (the rounding every vhe kernel states)."""
    return math.floor(Fraction(num, div) + Fraction(1, 2))


def stats(out: np.ndarray, head: int) -> tuple[int, int]:
    mags = [[abs(int(v)) for v in row] for row in out.reshape(-1, out.shape[-1])]
    return max((v for row in mags for v in row[:head]), default=0), max((v for row in mags for v in row[head:]), default=0)


@settings(max_examples=200, deadline=None)
@given(st.integers(-2**70, 2**70), st.integers(1, 2**20))
def test_round_div_is_nearest_with_ties_up(num, div):
    assert ref.round_div(num, div) == nearest(num, div)


def test_round_div_ties():
    assert [ref.round_div(x, 2) for x in (-3, -1, 1, 3)] == [-1, 0, 1, 2]


def test_add_and_sub_with_row_broadcast_and_stats():
    a, b = ints((5, 7), 2**40, 1), ints((1, 7), 2**40, 2)
    for sign in (1, -1):
        out, st_ = ref.add(a, b, sign, 3, LIMIT)
        want = np.array([[int(a[r, j]) + sign * int(b[0, j]) for j in range(7)] for r in range(5)], dtype=np.int64)
        assert np.array_equal(out, want) and st_ == stats(want, 3)


def test_scale_combine_and_lincomb_round_to_nearest():
    a, p = ints((4, 6), 2**30, 3), ints(4, 2**10, 4)
    out, _ = ref.scale(a, p, 7, 2, LIMIT)
    assert out.tolist() == [[nearest(int(a[r, j]) * int(p[r]), 7) for j in range(6)] for r in range(4)]
    hi, lo = ints((3, 5), 2**20, 5), ints((3, 5), 2**20, 6)
    out, _ = ref.combine(hi, lo, 20, 3, 5, LIMIT)
    assert out.tolist() == [[nearest(int(hi[r, j]) * 2**20 + int(lo[r, j]), 3) for j in range(5)] for r in range(3)]
    w, x = ints((2, 4), 2**10, 7), ints((4, 6), 2**30, 8)
    out, st_ = ref.lincomb(w, x, 5, 6, LIMIT)
    want = [[nearest(sum(int(w[i, r]) * int(x[r, j]) for r in range(4)), 5) for j in range(6)] for i in range(2)]
    assert out.tolist() == want and st_ == stats(np.array(want), 6)


def test_results_past_the_limit_are_an_overflow_error():
    a = np.array([[2**40, 0]], dtype=np.int64)
    assert ref.add(a, a, 1, 1, 2**41)[0].tolist() == [[2**41, 0]]  # the limit itself is allowed
    with pytest.raises(HEOverflowError, match="cannot add"):
        ref.add(a, a, 1, 1, 2**41 - 1)
    with pytest.raises(HEOverflowError, match="cannot lincomb"):
        ref.lincomb(np.array([[3]]), a, 1, 1, 2**41)


def test_gather_sum_of_chosen_rows_all_rows_and_none():
    a = ints((6, 4), 2**30, 9)
    idx = np.array([0, 3, 3, 5])
    out, _ = ref.gather_sum(a, idx, 4, LIMIT)
    assert out.tolist() == [[sum(int(a[i, j]) for i in idx) for j in range(4)]]
    assert ref.gather_sum(a, None, 4, LIMIT)[0].tolist() == [[int(a[:, j].sum()) for j in range(4)]]
    empty, st_ = ref.gather_sum(a, np.array([], dtype=np.int64), 4, LIMIT)
    assert empty.tolist() == [[0, 0, 0, 0]] and st_ == (0, 0)


def test_scatter_add_applies_in_order_in_place_and_is_all_or_nothing():
    a = ints((5, 3), 2**20, 10)
    b = ints((3, 3), 2**20, 11)
    idx = np.array([4, 1, 4])
    want = a.copy()
    for j, r in enumerate(idx):
        want[r] += b[j]
    work = a.copy()
    mh, mt, mult = ref.scatter_add(work, idx, b, 2, LIMIT)
    assert np.array_equal(work, want) and mult == 2
    assert (mh, mt) == stats(want[[1, 4]], 2)  # only the touched rows count
    big = np.full((1, 3), 2**45, dtype=np.int64)
    before = a.copy()
    with pytest.raises(HEOverflowError, match="index_add_"):
        ref.scatter_add(a, np.array([0, 0]), big, 2, 2**45 + 2**21)  # the second update overflows
    assert np.array_equal(a, before)


def explicit_tensor(a, ma, b, m, k, div):
    """Row r, slot i: (a_i or a_0 when ma == 1, a's k tail entries) x (b_i, b's tail), flattened, rounded."""
    rows = max(a.shape[0], b.shape[0])
    out = []
    for r in range(rows):
        ar, br = a[0 if a.shape[0] == 1 else r], b[0 if b.shape[0] == 1 else r]
        row = []
        for i in range(m):
            left = [int(ar[0 if ma == 1 else i])] + [int(v) for v in ar[ma:]]
            right = [int(br[i])] + [int(v) for v in br[m:]]
            row += [nearest(u * v, div) for u in left for v in right]
        out.append(row)
    return out


@pytest.mark.parametrize("ma", [1, 4])
def test_tensor_is_the_slotwise_outer_product(ma):
    m, k = 4, 2
    a, b = ints((3, ma + k), 2**20, 12), ints((3, m + k), 2**20, 13)
    assert ref.tensor(a, ma, b, m, k, 3, LIMIT).tolist() == explicit_tensor(a, ma, b, m, k, 3)
    assert ref.tensor(a[:1], ma, b, m, k, 1, LIMIT).tolist() == explicit_tensor(a[:1], ma, b, m, k, 1)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-2**40, 2**40), min_size=1, max_size=8), st.integers(2, 16))
def test_decompose_gives_balanced_digits_that_recompose(values, bits):
    ell = -(-42 // (bits - 1)) + 1  # enough digits for 41-bit magnitudes
    digits = ref.decompose(np.array([values], dtype=np.int64), bits, ell).reshape(len(values), ell)
    half = 1 << (bits - 1)
    assert np.all(digits >= -half) and np.all(digits < half)
    assert [sum(int(d) << (bits * i) for i, d in enumerate(row)) for row in digits] == values


def test_decompose_refuses_an_entry_needing_more_digits():
    with pytest.raises(HEOverflowError, match="more than 2 base-2\\^4 digits"):
        ref.decompose(np.array([[200]], dtype=np.int64), 4, 2)  # the most two digits reach: 7 + 16 * 7 = 119


def test_keyswitch_is_digits_times_the_key_with_its_stats():
    c, mt = ints((3, 4), 2**10, 14), ints((4 * 3, 5), 2**10, 15)
    out, (mh, mtail, l1) = ref.keyswitch(c, mt, 5, 3, 2, LIMIT)
    digits = ref.decompose(c, 5, 3)
    want = [[sum(int(digits[r, i]) * int(mt[i, j]) for i in range(12)) for j in range(5)] for r in range(3)]
    assert out.tolist() == want and (mh, mtail) == stats(np.array(want), 2)
    assert l1 == max(sum(abs(int(d)) for d in row) for row in digits)
    m, k = 2, 1
    a, b = ints((3, m + k), 2**6, 16), ints((3, m + k), 2**6, 17)
    key = ints((m * (1 + k) ** 2 * 3, 4), 2**8, 18)
    assert same_pair(ref.mul(a, m, b, m, k, 2, key, 5, 3, 2, LIMIT),
                     ref.keyswitch(ref.tensor(a, m, b, m, k, 2, LIMIT), key, 5, 3, 2, LIMIT))


def same_pair(x, y) -> bool:
    return np.array_equal(x[0], y[0]) and x[1] == y[1]


def test_secret_key_encryption_then_decryption_gives_the_message_back():
    """Head = w x + e - T tail with |e| <= noise < w / 2, so rounding (head + T tail) / w recovers x."""
    rows, m, k, w, noise = 6, 5, 3, 2**16, 2**10
    x, t = ints((rows, m), 2**20, 19), ints((m, k), 2**12, 20)
    data = ints((rows, m + k), 2**40, 21)
    tail = data[:, m:].copy()
    ref.encrypt_secret(x, t, w, noise, data)
    assert np.array_equal(data[:, m:], tail)  # the key columns stay
    err = [[int(data[r, j]) - w * int(x[r, j]) + sum(int(t[j, i]) * int(tail[r, i]) for i in range(k))
            for j in range(m)] for r in range(rows)]
    assert max(abs(e) for row in err for e in row) <= noise
    assert np.array_equal(ref.decrypt(data, m, k, t, w), x)
    with pytest.raises(HEOverflowError, match="cannot encrypt"):
        ref.encrypt_secret(np.full((1, m), 2**50, dtype=np.int64), t, w, noise, data[:1].copy())
