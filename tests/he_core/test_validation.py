"""he_core.validation.Checks: membership, broadcasting, finite plaintexts and row indices, on a bare host class."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from he_core.ciphertext import Ciphertext
from he_core.errors import EncodingError, MismatchError
from he_core.keys import SecretKey
from he_core.validation import Checks


class Host(Checks):
    name, params_id = "toy", "p1"


H = Host()


def ct(shape=(2, 3), key="k", scheme="toy", params="p1", scale=1.0):
    return Ciphertext(scheme, params, key, shape, scale, np.zeros(shape))


def test_membership_is_checked_by_scheme_parameters_and_key():
    H._check_ct(ct())
    for bad in (ct(scheme="other"), ct(params="p2")):
        with pytest.raises(MismatchError, match="does not belong"):
            H._check_ct(bad)
    with pytest.raises(TypeError, match="expected a Ciphertext"):
        H._check_ct(np.zeros((2, 3)))
    with pytest.raises(MismatchError, match="different keys"):
        H._check_pair(ct(), ct(key="j"), "add", allow_size_broadcast=False)
    H._check_secret(SecretKey("toy", "p1", "k", None))
    with pytest.raises(MismatchError, match="parameter set p2"):
        H._check_secret(SecretKey("toy", "p2", "k", None))
    with pytest.raises(TypeError):
        H._check_secret("key")


shape = st.tuples(st.integers(1, 4), st.integers(1, 4))


@given(a=shape, b=shape, sizes=st.booleans(), rows=st.booleans())
def test_pairs_broadcast_like_numpy_where_allowed(a, b, sizes, rows):
    ok = (a[0] == b[0] or (rows and 1 in (a[0], b[0]))) and (a[1] == b[1] or (sizes and 1 in (a[1], b[1])))
    call = lambda: H._check_pair(ct(a), ct(b), "mul", allow_size_broadcast=sizes, allow_row_broadcast=rows)  # noqa
    if ok:
        call()
    else:
        with pytest.raises(MismatchError, match="do not broadcast"):
            call()


@given(a=shape, b=shape)
def test_row_counts_are_not_compared_for_concat_and_index_add(a, b):
    for op in ("concat_rows", "index_add_"):
        if a[1] == b[1]:
            H._check_pair(ct(a), ct(b), op, allow_size_broadcast=False, allow_row_broadcast=False)


@given(x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=3)))
def test_finite_reals_pass_and_nan_or_inf_are_refused(x):
    if np.all(np.isfinite(x)):
        out = H._as_finite(x, "v")
        assert out.flags.c_contiguous and out.dtype == np.float64
        np.testing.assert_array_equal(out, x)
    else:
        with pytest.raises(EncodingError, match="NaN or infinity"):
            H._as_finite(x, "v")


@pytest.mark.filterwarnings("ignore:Casting complex values")
@pytest.mark.parametrize("bad", [[1 + 1j], ["a"], {"a": 1}, ct()])
def test_non_reals_are_type_errors(bad):
    with pytest.raises(TypeError):
        H._as_finite(bad, "v")


def test_plain_matrices_are_non_empty_one_or_two_dimensional():
    assert H._as_plain_matrix([1.0, 2.0]).shape == (1, 2)
    assert H._as_plain_matrix([[1.0], [2.0]]).shape == (2, 1)
    for bad in ([], [[]], np.zeros((0, 2)), np.zeros((1, 1, 1))):
        with pytest.raises(EncodingError, match="non-empty"):
            H._as_plain_matrix(bad)


def test_a_numpy_scalar_stays_a_scalar():
    assert H._as_finite(np.float64(2.0), "v").ndim == 0


def test_a_scalar_is_not_a_batch_to_encrypt():
    with pytest.raises(EncodingError, match="non-empty"):
        H._as_plain_matrix(3.0)


@given(rows=st.integers(1, 4), size=st.integers(1, 4), op_shape=st.tuples(st.integers(1, 5), st.integers(1, 5)),
       ndim=st.integers(1, 2))
def test_plain_operands_broadcast_to_the_ciphertext_without_growing_it(rows, size, op_shape, ndim):
    shp = op_shape[2 - ndim:] if ndim else ()
    values = np.ones(shp)
    try:
        grown = np.broadcast_shapes(shp, (rows, size))
    except ValueError:
        grown = None
    if grown == (rows, size):
        assert H._as_plain_operand(values, (rows, size), "op").shape == shp
    else:
        with pytest.raises(EncodingError, match="cannot op"):
            H._as_plain_operand(values, (rows, size), "op")


@pytest.mark.parametrize("scalar", [float("nan"), float("inf"), -float("inf")])
def test_the_scalar_fast_path_still_refuses_nan_and_inf(scalar):
    with pytest.raises(EncodingError, match="NaN or infinity"):
        H._as_plain_operand(scalar, (1, 1), "op")
    assert H._as_plain_operand(3, (1, 1), "op") == 3.0


@given(n=st.integers(1, 8), idx=st.lists(st.integers(-10, 10), max_size=8))
def test_row_indices_are_normalised_or_refused(n, idx):
    arr = np.array(idx, dtype=np.int64)
    if idx and (min(idx) < -n or max(idx) >= n):
        with pytest.raises(IndexError):
            H._as_rows(arr, n)
    else:
        out = H._as_rows(arr, n)
        np.testing.assert_array_equal(out, np.arange(n)[arr] if idx else np.zeros(0))
        assert out.dtype == np.int64


def test_boolean_masks_and_non_integer_indices():
    np.testing.assert_array_equal(H._as_rows(np.array([True, False, True]), 3), [0, 2])
    with pytest.raises(ValueError, match="boolean row mask"):
        H._as_rows(np.array([True, False]), 3)
    with pytest.raises(TypeError, match="integers"):
        H._as_rows([0.0, 1.0], 3)
    np.testing.assert_array_equal(H._as_rows([[0, 1], [2, 0]], 3), [0, 1, 2, 0])


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf"), True])
def test_validate_refuses_a_bad_scale(scale):
    with pytest.raises(MismatchError, match="invalid scale"):
        H.validate(ct(scale=scale))
    H.validate(ct(scale=2.0**40))


def test_validate_refuses_a_string_scale_by_name():
    with pytest.raises(MismatchError, match="invalid scale"):
        H.validate(ct(scale="1"))
    with pytest.raises(MismatchError, match="invalid scale"):
        H.validate(ct(scale=None))
