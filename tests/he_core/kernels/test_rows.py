"""The Numba row kernels against their NumPy references."""
import numpy as np
from hypothesis import given, settings, strategies as st

from he_core.kernels import rows as K


@st.composite
def cases(draw):
    nrows = draw(st.integers(1, 6))
    size = draw(st.integers(1, 5))
    vals = st.floats(-1e6, 1e6, allow_nan=False)
    table = np.array(draw(st.lists(vals, min_size=nrows * size, max_size=nrows * size))).reshape(nrows, size)
    idx = np.array(draw(st.lists(st.integers(0, nrows - 1), max_size=8)), dtype=np.int64)
    one_row = draw(st.booleans())
    upd_rows = 1 if one_row or idx.size == 0 else idx.size
    update = np.array(draw(st.lists(vals, min_size=upd_rows * size, max_size=upd_rows * size))).reshape(upd_rows, size)
    return table, idx, update


@given(cases())
@settings(max_examples=150, deadline=None)
def test_gather_and_scatter_match_numpy(case):
    table, idx, update = case
    np.testing.assert_allclose(K.gather_sum(table, idx), K.gather_sum_reference(table, idx), rtol=1e-12, atol=1e-6)
    got, want = table.copy(), table.copy()
    K.scatter_add(got, idx, update)
    K.scatter_add_reference(want, idx, update)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-6)


def test_repeated_indices_accumulate():
    table = np.zeros((3, 2))
    K.scatter_add(table, np.array([1, 1, 2], dtype=np.int64), np.array([[1.0, -2.0]]))
    assert table.tolist() == [[0.0, 0.0], [2.0, -4.0], [1.0, -2.0]]
    assert K.gather_sum(table, np.array([1, 1], dtype=np.int64)).tolist() == [[4.0, -8.0]]
