"""Row operations by bags (he_core/bags.py): a batch's gathers and scatters in one call, on every scheme."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import he_core
from he_core import KeyRequirements, MismatchError

from .test_contract import BUILTIN, tolerance

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module", params=BUILTIN)
def ctx(request):
    scheme = he_core.get_scheme(request.param)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        keys = scheme.keygen(KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(5))
    return scheme, keys


cases = st.integers(1, 6).flatmap(lambda rows: st.tuples(
    st.lists(st.floats(-4, 4, allow_nan=False, width=32), min_size=rows * 3, max_size=rows * 3)
    .map(lambda v: np.array(v).reshape(-1, 3)),
    st.lists(st.lists(st.integers(0, rows - 1), max_size=5), min_size=1, max_size=5)))


def _dense(bags, rows):
    out = np.zeros((len(bags), rows))
    for b, bag in enumerate(bags):
        np.add.at(out[b], np.asarray(bag, dtype=np.int64), 1.0)
    return out


def _close(scheme, ct, got, want, magnitude):
    assert got.shape == want.shape
    assert np.max(np.abs(got - want), initial=0.0) <= tolerance(scheme.name, ct, magnitude), (got, want)


@given(case=cases)
@SETTINGS
def test_bag_sum_is_the_count_matrix_times_the_table(ctx, case):
    scheme, keys = ctx
    table, bags = case
    a = scheme.encrypt(table)
    got = scheme.decrypt_exact_local(scheme.bag_sum(a, [np.array(b, dtype=np.int64) for b in bags]), keys.secret)
    _close(scheme, a, got, _dense(bags, table.shape[0]) @ table, 24)  # empty bags: exact zero rows


@given(case=cases, scale=st.floats(-2, 2, allow_nan=False, width=32))
@SETTINGS
def test_bag_add_is_numpy_add_at_bag_by_bag(ctx, case, scale):
    scheme, keys = ctx
    table, bags = case
    update = np.linspace(-1, 1, 3 * len(bags)).reshape(len(bags), 3) * scale
    a = scheme.encrypt(table)
    scheme.bag_add_(a, [np.array(b, dtype=np.int64) for b in bags], scheme.encrypt(update))
    want = table + _dense(bags, table.shape[0]).T @ update  # repeats within and across bags accumulate
    _close(scheme, a, scheme.decrypt_exact_local(a, keys.secret), want, 24)


def test_one_update_row_lands_on_every_bag(ctx):
    scheme, keys = ctx
    a = scheme.encrypt(np.zeros((4, 3)))
    scheme.bag_add_(a, [[0, 1], [1], []], scheme.encrypt(np.array([[0.5, -1.0, 2.0]])))
    want = np.zeros((4, 3))
    want[0], want[1] = [0.5, -1.0, 2.0], [1.0, -2.0, 4.0]
    _close(scheme, a, scheme.decrypt_exact_local(a, keys.secret), want, 8)


def test_every_bag_empty_changes_nothing(ctx):
    scheme, keys = ctx
    a = scheme.encrypt(np.ones((2, 3)))
    before = a.data.copy() if isinstance(a.data, np.ndarray) else tuple(x.copy() for x in a.data)
    scheme.bag_add_(a, [[], []], scheme.encrypt(np.ones((2, 3))))
    for x, y in zip(np.atleast_1d(before) if isinstance(a.data, np.ndarray) else before,
                    np.atleast_1d(a.data) if isinstance(a.data, np.ndarray) else a.data):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("bags, error, match", [
    ([], ValueError, "no bags"),
    (np.array([[0]]), TypeError, "sequence of index arrays"),
    ("01", TypeError, "sequence of index arrays"),
    ([[[0]]], ValueError, "1-D array"),
    ([[0], [4]], IndexError, "out of range"),
    ([[0.5]], TypeError, "integers"),
])
def test_bad_bags_are_refused_by_name(ctx, bags, error, match):
    scheme, _ = ctx
    a = scheme.encrypt(np.zeros((4, 3)))
    with pytest.raises(error, match=match):
        scheme.bag_sum(a, bags)
    with pytest.raises(error, match=match):
        scheme.bag_add_(a, bags, scheme.encrypt(np.zeros((1, 3))))


def test_update_rows_must_match_the_bags(ctx):
    scheme, _ = ctx
    a = scheme.encrypt(np.zeros((4, 3)))
    with pytest.raises(MismatchError, match="2 update rows for 3 bags"):
        scheme.bag_add_(a, [[0], [1], [2]], scheme.encrypt(np.zeros((2, 3))))
    with pytest.raises(MismatchError):
        scheme.bag_add_(a, [[0]], scheme.encrypt(np.zeros((1, 1))))  # another vector size
    with pytest.raises(MismatchError, match="2 update rows for 3 bags"):
        scheme.check_bag_add(a, [[0], [1], [2]], scheme.encrypt(np.zeros((2, 3))))


def test_a_refused_scatter_leaves_the_table_as_it_was():
    """vhe checks the whole batch's noise (repeats across bags included) before any row changes."""
    if "vhe" not in BUILTIN:
        pytest.skip("vhe not built")
    scheme = he_core.get_scheme("vhe")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        scheme.keygen(KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(5))
    a = scheme.encrypt(np.zeros((3, 3)))
    noisy = scheme.encrypt(np.ones((2, 3)))
    # A noise bound just under the limit for one landing: two landings on row 0 (one per bag) exceed it.
    half_w = scheme.params.w // 2
    noisy.meta["noise"] = (half_w - a.meta["noise"]) // 2 + 1
    before = a.data.copy()
    with pytest.raises(he_core.NoiseBudgetExhausted):
        scheme.bag_add_(a, [[0, 1], [0, 2]], noisy)
    np.testing.assert_array_equal(a.data, before)
    scheme.bag_add_(a, [[0, 1], [2]], noisy)  # each row landed once: within the bound
