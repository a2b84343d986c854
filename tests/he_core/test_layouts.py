"""he_core.layouts.Layouts: the defaults of a scheme with one layout, and declared bounds."""
import math

import numpy as np
import pytest

import he_core
from he_core.errors import EncodingError


@pytest.fixture(scope="module")
def plain():
    s = he_core.get_scheme("plain")
    return s, s.keygen(rng=he_core.SeededRandom(3)).secret


def test_one_layout_schemes_take_the_table_hint_and_nothing_else(plain):
    s, key = plain
    x = np.arange(6.0).reshape(3, 2)
    for ct in (s.encrypt(x, layout="table"), s.encrypt(x, key, layout="table")):
        assert s.in_default_layout(ct) and s.layout_of(ct) is None
        np.testing.assert_array_equal(s.decrypt(ct, key), x)
    with pytest.raises(EncodingError, match="has no layout 'slots'"):
        s.encrypt(x, layout="slots")
    assert s.natural_size is None


@pytest.mark.parametrize("bound", [0, -1.0, math.inf, math.nan, True, "3"])
def test_a_declared_bound_must_be_positive_and_finite(plain, bound):
    s, _ = plain
    with pytest.raises(ValueError, match="cannot declare a bound"):
        s.declare_bound(s.encrypt([1.0]), bound)


def test_a_scheme_without_bounds_returns_the_ciphertext_as_it_is(plain):
    s, _ = plain
    ct = s.encrypt([1.0])
    assert s.declare_bound(ct, 2.0) is ct
    with pytest.raises(TypeError):
        s.layout_of(np.ones(2))


def test_ckks_records_a_declared_bound():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = he_core.get_scheme("ckks", poly_degree=1024, levels=2, allow_insecure=True)
    s.keygen(he_core.KeyRequirements(sizes=(2,)), rng=he_core.SeededRandom(1))
    ct = s.encrypt([[3.0, -5.0]])
    assert s.declare_bound(ct, 6.0).meta["vmax"] == 6.0
    assert s.declare_bound(ct, 1e9).meta["vmax"] == ct.meta["vmax"]  # only ever tighter
