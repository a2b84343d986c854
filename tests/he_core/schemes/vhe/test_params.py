"""he_core.schemes.vhe.params: validated integer parameters and the ranges derived from them."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from he_core.errors import ParameterError
from he_core.schemes.vhe.params import VheParams, digits_needed


@given(b=st.integers(2, 16), m=st.integers(1, 62))
def test_digits_needed_is_the_fewest_signed_digits_covering_2_to_the_m(b, m):
    ell = digits_needed(b, m)
    half, base = 2 ** (b - 1), 2**b
    top = lambda k: sum((half - 1) * base**i for i in range(k))  # noqa: E731  largest value k digits reach
    assert top(ell) >= 2**m
    assert ell == 1 or top(ell - 1) < 2**m


def test_defaults_and_derived_values():
    p = VheParams()
    assert p.w == 2**33 and p.scale == 2**16 and p.limit == 2**62
    assert p.max_value == pytest.approx((2**62 - 2**32) / 2**49)
    assert p.key_l1 == 1 + p.k * p.t_bound
    assert p.switch_noise(3) == 3 * p.ell * p.e_bound * 2 ** (p.digit_bits - 1)
    assert p.switch_tail(2) == 2 * p.ell * p.a_bound * 2 ** (p.digit_bits - 1)
    assert p.max_key_entry <= 2**63 - 1


@pytest.mark.parametrize("kw", [dict(w_bits=7), dict(w_bits=61), dict(scale_bits=31), dict(k=0), dict(k=9),
                                dict(t_bound=0), dict(digit_bits=1), dict(digit_bits=17), dict(magnitude_bits=63),
                                dict(w_bits=40, scale_bits=30), dict(enc_noise=-1), dict(tail_bound=2**41)])
def test_out_of_range_values_are_refused(kw):
    with pytest.raises(ParameterError):
        VheParams(**kw)


@pytest.mark.parametrize("kw", [dict(w_bits=33.0), dict(k="1"), dict(scale_bits=None)])
def test_non_integers_are_refused(kw):
    with pytest.raises(ParameterError, match="must be an int"):
        VheParams(**kw)


def test_key_switch_entries_beyond_int64_are_refused():
    with pytest.raises(ParameterError, match="beyond int64"):
        VheParams(t_bound=2**8, digit_bits=16, magnitude_bits=62)


@given(w=st.integers(8, 40), f=st.integers(0, 18))
def test_max_value_is_the_largest_encodable_integer_in_value_units(w, f):
    """max_value (a float) is within one unit of the largest integer X with w X + w / 2 <= limit."""
    p = VheParams(w_bits=w, scale_bits=f)
    xmax = (p.limit - p.w // 2) // p.w
    assert abs(p.max_value * p.scale - xmax) <= 1
