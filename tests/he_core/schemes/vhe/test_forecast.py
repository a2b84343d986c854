"""The noise forecast: an upper bound on what each operation's own bookkeeping records, and not a loose one."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from he_core.schemes.vhe.forecast import NoiseForecast

from .conftest import SIZES

values = st.floats(min_value=-8.0, max_value=8.0, allow_nan=False, allow_infinity=False)
sizes = st.sampled_from([s for s in SIZES if s > 1])


def _pair(scheme, data, size):
    a = np.array(data.draw(st.lists(values, min_size=size, max_size=size)))
    b = np.array(data.draw(st.lists(values, min_size=size, max_size=size)))
    return scheme.encrypt(a.reshape(1, -1)), scheme.encrypt(b.reshape(1, -1))


def _aged(scheme, ct, products: int):
    """``ct`` after a few products by one (its noise grown the way a computation grows it)."""
    one = scheme.encrypt(np.ones((1, ct.size)))
    for _ in range(products):
        ct = scheme.mul(ct, one)
    return ct


def _spent(scheme, before, out) -> float:
    """Bits of headroom the result lost against its noisiest operand, as the budget reports them."""
    return min(scheme.budget(c)["remaining"] for c in before) - scheme.budget(out)["remaining"]


@settings(max_examples=25, deadline=None)
@given(data=st.data(), size=sizes, age=st.integers(0, 2))
def test_products_and_sums_spend_no_more_than_forecast(vhe, data, size, age):
    scheme, _ = vhe
    a, b = _pair(scheme, data, size)
    a = _aged(scheme, a, age)
    for op, run in (("mul", scheme.mul), ("inner", scheme.inner), ("add", scheme.add), ("sub", scheme.sub)):
        forecast = scheme.op_cost(op, a, b).noise_bits
        assert forecast is not None and forecast >= 0
        assert _spent(scheme, (a, b), run(a, b)) <= forecast + 1e-9, op


@settings(max_examples=25, deadline=None)
@given(data=st.data(), c=st.floats(min_value=-40.0, max_value=40.0, allow_nan=False))
def test_a_scaling_spends_no_more_than_forecast(vhe, data, c):
    scheme, _ = vhe
    a, _ = _pair(scheme, data, 8)
    forecast = scheme.op_cost("mul_plain", a, values=c).noise_bits
    assert _spent(scheme, (a,), scheme.mul_plain(a, c)) <= forecast + 1e-9
    # Without the factor nothing is forecast: the caller charges its own rate per level.
    assert scheme.op_cost("mul_plain", a).noise_bits is None


@settings(max_examples=15, deadline=None)
@given(data=st.data(), coeffs=st.lists(st.floats(min_value=-2.0, max_value=2.0, allow_nan=False), min_size=1,
                                       max_size=6))
def test_a_polynomial_spends_no_more_than_forecast(vhe, data, coeffs):
    scheme, _ = vhe
    x = scheme.encrypt(np.array(data.draw(st.lists(st.floats(-1.5, 1.5), min_size=8, max_size=8))).reshape(1, -1))
    forecast = scheme.op_cost("polyval", x, coeffs=coeffs).noise_bits
    assert _spent(scheme, (x,), scheme.polyval(x, coeffs)) <= forecast + 1e-9


def test_the_forecast_is_within_a_few_bits_of_what_is_spent(vhe):
    """Worst-case key switches make it an upper bound; on ordinary operands it stays close (measured gap)."""
    scheme, _ = vhe
    rng = np.random.default_rng(3)
    gaps = []
    for _ in range(20):
        a = _aged(scheme, scheme.encrypt(rng.uniform(-4, 4, (1, 8))), 1)
        b = scheme.encrypt(rng.uniform(-4, 4, (1, 8)))
        gaps.append(scheme.op_cost("mul", a, b).noise_bits - _spent(scheme, (a, b), scheme.mul(a, b)))
        x = scheme.encrypt(rng.uniform(-1, 1, (1, 8)))
        coeffs = [0.5, 0.2, 0.0, -0.01, 0.0, 0.0001]
        gaps.append(scheme.op_cost("polyval", x, coeffs=coeffs).noise_bits
                    - _spent(scheme, (x,), scheme.polyval(x, coeffs)))
    assert min(gaps) >= 0 and max(gaps) <= 4.0, gaps


def test_operations_without_a_forecast_say_so(vhe):
    scheme, _ = vhe
    a = scheme.encrypt(np.zeros((3, 8)))
    assert scheme.op_cost("row_sum", a, rows=[0, 1]).noise_bits is None
    with pytest.raises(ValueError, match="coefficients"):
        scheme.op_cost("polyval", a)


def test_bounds_follow_the_schemes_own_bookkeeping(vhe):
    scheme, _ = vhe
    forecast = NoiseForecast(scheme)
    a = scheme.encrypt(np.full((1, 8), 3.0))
    bound = forecast.of(a)
    assert bound.size == 8 and bound.noise == max(a.meta["noise"], 1)
    assert math.isclose(bound.value / a.scale, 3.0, rel_tol=1e-3, abs_tol=2.0 / a.scale + 1e-3)
