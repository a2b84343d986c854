"""EncTensor operators against numpy, on every scheme."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from henn.tensor import EncTensor

VALUES = st.floats(-4, 4, allow_nan=False, allow_infinity=False).map(lambda v: 0.0 if abs(v) < 1e-3 else v)


def matrices(rows=st.integers(1, 4), cols=st.sampled_from([1, 3, 4])):
    return st.tuples(rows, cols).flatmap(lambda s: hnp.arrays(np.float64, s, elements=VALUES))


def enc(env, a):
    return EncTensor.encrypt(env.scheme, a)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_add_sub_neg_match_numpy(env, data):
    a = data.draw(matrices())
    b = data.draw(hnp.arrays(np.float64, a.shape, elements=VALUES))
    ta, tb = enc(env, a), enc(env, b)
    dec = env.decrypt
    # encoding rounds each input once; add/sub do not round again
    tol = env.tol(2)
    np.testing.assert_allclose(dec(ta + tb), a + b, atol=tol, rtol=0)
    np.testing.assert_allclose(dec(ta - tb), a - b, atol=tol, rtol=0)
    np.testing.assert_allclose(dec(-ta), -a, atol=env.tol(1), rtol=0)
    np.testing.assert_allclose(dec(ta + 1.5), a + 1.5, atol=tol, rtol=0)
    np.testing.assert_allclose(dec(1.5 - ta), 1.5 - a, atol=tol, rtol=0)
    np.testing.assert_allclose(dec(ta - b), a - b, atol=tol, rtol=0)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_products_match_numpy(env, data):
    a = data.draw(matrices())
    b = data.draw(hnp.arrays(np.float64, a.shape, elements=VALUES))
    ta, tb = enc(env, a), enc(env, b)
    dec = env.decrypt
    # x*y with both inputs off by u/2: error <= (|x|+|y|) u/2 + u^2/4 + one rounding of the product
    tol = env.tol(1 + 4.0 + 1)
    np.testing.assert_allclose(dec(ta * tb), a * b, atol=tol, rtol=0)
    np.testing.assert_allclose(dec(ta * b), a * b, atol=tol, rtol=0)
    np.testing.assert_allclose(dec(0.25 * ta), 0.25 * a, atol=tol, rtol=0)
    np.testing.assert_allclose(dec(ta.inner(tb)), np.sum(a * b, axis=1, keepdims=True),
                               atol=env.tol(1 + 4.0 * a.shape[1] + 1), rtol=0)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_plaintext_matmul_and_rows(env, data):
    w = data.draw(matrices())
    x = data.draw(hnp.arrays(np.float64, (3, w.shape[0]), elements=VALUES))
    tw = enc(env, w)
    dec = env.decrypt
    rows = w.shape[0]
    # each output sums `rows` products |x| <= 4 times an encoding error u/2, plus roundings
    np.testing.assert_allclose(dec(x @ tw), x @ w, atol=env.tol(2 + 2.0 * rows * 4), rtol=0)
    idx = data.draw(st.lists(st.integers(0, rows - 1), min_size=1, max_size=5))
    np.testing.assert_allclose(dec(tw.row_sum(idx)), w[idx].sum(axis=0, keepdims=True),
                               atol=env.tol(len(idx)), rtol=0)
    np.testing.assert_allclose(dec(tw.row_sum()), w.sum(axis=0, keepdims=True), atol=env.tol(rows), rtol=0)
    np.testing.assert_allclose(dec(tw.take_rows(idx)), w[idx], atol=env.tol(1), rtol=0)
    acc = enc(env, np.zeros_like(w))
    add = data.draw(hnp.arrays(np.float64, (1, w.shape[1]), elements=VALUES))
    acc.index_add_(idx, enc(env, add))
    expect = np.zeros_like(w)
    np.add.at(expect, idx, add[0])
    np.testing.assert_allclose(dec(acc), expect, atol=env.tol(len(idx)), rtol=0)


def test_polyval_matches_numpy(env):
    x = np.array([[-1.5, -0.5, 0.0, 0.5, 1.25]])
    t = enc(env, x)
    coeffs = (0.5, 0.25, 0.0, -0.02)
    expect = np.polynomial.polynomial.polyval(x, coeffs)
    np.testing.assert_allclose(env.decrypt(t.polyval(coeffs)), expect, atol=env.tol(20, 2.0), rtol=0)


def test_shape_and_copy(env):
    t = enc(env, np.ones((2, 3)))
    assert t.shape == (2, 3) and t.rows == 2 and t.size == 3 and len(t) == 2
    c = t.copy()
    c.index_add_([0], enc(env, np.ones((1, 3))))
    np.testing.assert_allclose(env.decrypt(t), np.ones((2, 3)), atol=env.tol(1))


def test_errors_are_clear(env):
    t = enc(env, np.ones((2, 3)))
    with pytest.raises(ValueError, match="3 columns, the batch 2 rows"):
        t @ t
    with pytest.raises(ValueError, match=r"by a matrix of shape \(2, 2\)"):
        t @ np.ones((2, 2))
    with pytest.raises(TypeError, match="expected an EncTensor"):
        t.inner(np.ones((2, 3)))
    with pytest.raises(TypeError, match="expected a Ciphertext"):
        EncTensor(env.scheme, np.ones(3))
    with pytest.raises(Exception, match="broadcast|shape"):
        t + enc(env, np.ones((2, 4)))
