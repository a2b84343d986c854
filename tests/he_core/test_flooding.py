"""he_core.flooding: the flooding noise's size, the release grid and the precision it leaves."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from he_core.errors import ParameterError
from he_core.flooding import DEFAULT_STATISTICAL_BITS, Flooding, precision_bits, release_grid


@given(lam=st.integers(30, 128), q=st.integers(1, 2**40), bound=st.floats(0, 2**60))
def test_sigma_is_sqrt_12q_times_2_to_the_half_lambda_times_the_bound(lam, q, bound):
    f = Flooding(statistical_bits=lam, queries=q)
    assert f.sigma(bound) == pytest.approx(math.sqrt(12 * q) * 2 ** (lam / 2) * max(bound, 1.0), rel=1e-12)
    assert f.factor_log2 == pytest.approx(math.log2(math.sqrt(12 * q) * 2 ** (lam / 2)), rel=1e-12)


def test_more_queries_or_security_flood_more():
    base = Flooding()
    assert base.statistical_bits == DEFAULT_STATISTICAL_BITS and base.queries == 1
    assert Flooding(queries=4).sigma(10) == pytest.approx(2 * base.sigma(10))
    assert Flooding(statistical_bits=32).sigma(10) == pytest.approx(2 * base.sigma(10))


@pytest.mark.parametrize("kw", [dict(statistical_bits=29), dict(statistical_bits=129), dict(statistical_bits=True),
                                dict(statistical_bits=40.0), dict(queries=0), dict(queries=True),
                                dict(min_precision_bits=-1), dict(min_precision_bits=math.inf),
                                dict(min_precision_bits=math.nan)])
def test_bad_terms_are_refused(kw):
    with pytest.raises(ParameterError, match="cannot flood"):
        Flooding(**kw)


@pytest.mark.parametrize("bound", [-1.0, math.inf, math.nan])
def test_bad_noise_bounds_are_refused(bound):
    with pytest.raises(ParameterError):
        Flooding().sigma(bound)


@given(sigma=st.floats(1e-300, 1e300))
def test_the_grid_is_the_power_of_two_at_or_below_sigma(sigma):
    g = release_grid(sigma)
    assert g <= sigma < 2 * g and math.log2(g).is_integer()


def test_grid_and_precision_edges():
    assert release_grid(0.0) == 0.0 and release_grid(-1.0) == 0.0
    assert precision_bits(1024.0, 1.0) == 10.0
    assert precision_bits(5.0, 0.0) == math.inf and precision_bits(0.0, 1.0) == 0.0


def test_describe_names_the_formula_and_terms():
    d = Flooding(queries=8, min_precision_bits=16).describe()
    assert d["queries"] == 8 and d["min_precision_bits"] == 16 and "sqrt(12 q)" in d["formula"]
    assert d["sigma_over_bound_log2"] == round(Flooding(queries=8).factor_log2, 2)
