"""Exact RNS integer helpers (he_core.schemes.ckks.exact) against Python integers."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from he_core.schemes.ckks import exact
from he_core.schemes.ckks.params import CkksParams
from he_core.schemes.ckks.ring import RnsRing

PARAMS = CkksParams(poly_degree=1024, levels=3, first_bits=60, scale_bits=45, special_bits=60, allow_insecure=True)
RING = RnsRing.for_params(PARAMS)


def residues_of(values: list[int], nl: int) -> np.ndarray:
    return np.array([[v % q for v in values] for q in RING.q[:nl]], dtype=np.uint64)


def ints_strategy(bits: int):
    return st.lists(st.integers(-(2**bits), 2**bits), min_size=1, max_size=40)


@settings(max_examples=40, deadline=None)
@given(nl=st.integers(1, 4), data=st.data())
def test_lift_recovers_centred_integers(nl, data):
    big_q = math.prod(RING.q[:nl])
    bound = big_q.bit_length() - 4  # |y| <= Q / 8
    values = data.draw(ints_strategy(bound))
    lifted = exact.lift(RING, residues_of(values, nl))
    assert lifted.to_ints() == values
    for limb in range(len(RING.q) + len(RING.p)):
        p = (RING.q + RING.p)[limb]
        np.testing.assert_array_equal(lifted.mod_prime(limb), [v % p for v in values])
    np.testing.assert_array_equal(lifted.mod_2_64(), [v % 2**64 for v in values])


def test_lift_at_the_edge_of_its_range_and_zero():
    big_q = math.prod(RING.q[:2])
    values = [0, 1, -1, big_q // 8, -(big_q // 8)]
    assert exact.lift(RING, residues_of(values, 2)).to_ints() == values


@settings(max_examples=40, deadline=None)
@given(values=ints_strategy(110), ratio=st.floats(2.0**-20, 2.0**11))
def test_scale_round_is_exact_rounding(values, ratio):
    num = int(ratio * 2**50)
    mod_p = {limb: np.array([v % p for v in values], dtype=np.uint64) for limb, p in enumerate(RING.q)}
    low = np.array([v % 2**64 for v in values], dtype=np.uint64)
    out = exact.scale_round(RING, mod_p, low, num)
    expected = [(v * num + 2**49) >> 50 for v in values]  # floor((y num + 2^49) / 2^50)
    for limb, p in enumerate(RING.q):
        np.testing.assert_array_equal(out[limb], [e % p for e in expected])


def test_scale_ratio_refuses_extreme_ratios():
    assert exact.scale_ratio(2.0**40, 2.0**40) == 2**50
    with pytest.raises(ValueError, match="outside"):
        exact.scale_ratio(1.0, 2.0**40)
    with pytest.raises(ValueError, match="outside"):
        exact.scale_ratio(2.0**52, 2.0**40)


def test_lift_refuses_malformed_residues():
    with pytest.raises(ValueError, match="cannot lift"):
        exact.lift(RING, np.zeros((len(RING.q) + 1, 3), dtype=np.uint64))
    with pytest.raises(ValueError, match="cannot lift"):
        exact.lift(RING, np.zeros((2, 3), dtype=np.int64))
