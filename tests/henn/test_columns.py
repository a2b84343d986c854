"""Columns of encrypted batches and encrypted matrix products, against numpy."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from henn import columns
from henn.tensor import EncTensor

SMALL = st.floats(-2, 2, allow_nan=False).map(lambda v: 0.0 if abs(v) < 1e-3 else v)


def enc(env, a):
    return EncTensor.encrypt(env.scheme, a)


@pytest.mark.slow_on_ckks
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_columns_and_place_round_trip(env, data):
    rows, width = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 5))
    x = data.draw(hnp.arrays(np.float64, (rows, width), elements=SMALL))
    basis = columns.basis_for(enc(env, np.zeros((1, 1))))
    cols = columns.columns(enc(env, x), basis)
    assert len(cols) == width and all(c.shape == (rows, 1) for c in cols)
    for j, c in enumerate(cols):
        np.testing.assert_allclose(env.decrypt(c), x[:, j:j + 1], atol=env.tol(4, 2.0), rtol=0)
    placed = columns.place(cols, basis)
    assert placed.shape == (rows, width)
    np.testing.assert_allclose(env.decrypt(placed), x, atol=env.tol(8, 2.0), rtol=0)


@pytest.mark.slow_on_ckks
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_encrypted_matrix_products(env, data):
    """``H @ W`` from W^T rows (the layers' layout), and ``A @ B`` for two encrypted matrices."""
    m, k, n = (data.draw(st.integers(1, 4)) for _ in range(3))
    a = data.draw(hnp.arrays(np.float64, (m, k), elements=SMALL))
    b = data.draw(hnp.arrays(np.float64, (k, n), elements=SMALL))
    basis = columns.basis_for(enc(env, np.zeros((1, 1))))
    # each entry sums k <= 4 products of values up to 2: a few roundings each, amplified by 2
    tol = env.tol(6 * k + 6, 2.0)
    np.testing.assert_allclose(env.decrypt(columns.matmul(enc(env, a), enc(env, b.T), basis)), a @ b, atol=tol,
                               rtol=0)
    np.testing.assert_allclose(env.decrypt(enc(env, a) @ enc(env, b)), a @ b, atol=tol, rtol=0)


def test_basis_rows_are_made_once(env):
    basis = columns.Basis(env.scheme, EncTensor)
    assert basis.unit(3, 1) is basis.unit(3, 1)
    assert len(basis) == 1
    np.testing.assert_allclose(env.decrypt(basis.unit(3, 1)), [[0, 1, 0]], atol=env.tol(1))
    with pytest.raises(ValueError, match="position 3 outside a width of 3"):
        basis.unit(3, 3)


def test_column_errors(env):
    basis = columns.basis_for(enc(env, np.zeros((1, 1))))
    one = enc(env, np.ones((2, 1)))
    with pytest.raises(ValueError, match="column 1 of a one-column"):
        columns.column(one, 1, basis)
    with pytest.raises(ValueError, match="column 0 has width 2"):
        columns.place([enc(env, np.ones((2, 2)))], basis)
    with pytest.raises(ValueError, match="none given"):
        columns.place([], basis)
    with pytest.raises(ValueError, match="width 3, the matrix takes 2"):
        columns.matmul(enc(env, np.ones((2, 3))), enc(env, np.ones((4, 2))), basis)
