"""he_core.schemes.ckks.scales: when two CKKS scales count as equal, and which scalars are free."""
import math
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from he_core.schemes.ckks import CkksParams
from he_core.schemes.ckks.ring import RnsRing
from he_core.schemes.ckks.scales import FREE_SCALAR_MIN, SCALE_TOLERANCE, ScaleLadder, scale_tolerance, scales_match


@given(scale=st.floats(2.0**10, 2.0**80))
def test_the_tolerance_is_the_larger_of_the_fixed_and_the_rounding_one(scale):
    tol = scale_tolerance(scale)
    assert tol == max(SCALE_TOLERANCE, 16.0 / scale)
    assert scales_match(scale, scale * (1 + tol / 2)) and not scales_match(scale, scale * (1 + 2 * tol))
    assert scales_match(scale * (1 + tol / 2), scale)  # symmetric


@pytest.mark.parametrize("bits,tol", [(40, 2.0**-30), (30, 2.0**-26), (21, 2.0**-17)])
def test_small_primes_get_the_looser_rounding_bound(bits, tol):
    assert scale_tolerance(2.0**bits) == tol


def test_free_scalars_span_a_symmetric_band():
    assert 0 < FREE_SCALAR_MIN < 1 and 1 / FREE_SCALAR_MIN == 2.0**10


def test_the_ladder_squares_down_and_bounds_values_by_a_quarter_of_q0():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = CkksParams(poly_degree=1024, levels=3, allow_insecure=True)
    q = RnsRing.for_params(params).q
    ladder = ScaleLadder(params, q)
    assert ladder.at(3) == params.default_scale
    for level in (3, 2, 1):
        assert ladder.at(level - 1) == ladder.at(level) ** 2 / q[level]
    assert ladder.max_value(ladder.at(0), 0) == q[0] / (4.0 * ladder.at(0))
    assert math.isclose(ladder.max_value(ladder.at(3)), ladder.max_value(ladder.at(0), 0))  # the same once rescaled
