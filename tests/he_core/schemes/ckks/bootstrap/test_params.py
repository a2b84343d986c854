"""Bootstrappable parameter sets: the chain's shape, the levels left, the security label."""
from __future__ import annotations

import math
import warnings

import pytest

from he_core import InsecureParametersError, SecurityWarning
from he_core.schemes.ckks import CkksScheme
from he_core.schemes.ckks.bootstrap import bootstrappable


def test_the_chain_puts_a_level0_message_twelve_bits_below_q0():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        s = CkksScheme(bootstrappable(1024, levels_after=4, allow_insecure=True))
    assert s.bootstrap_plan(8)["output_level"] == 5  # CtS in one level here (1 / (gap K) = 2^-9.8)
    assert s.bootstrap_plan(2)["output_level"] == 4  # in two (2^-11.8)
    assert round(math.log2(s.ring.q[0] / s._scale_at(0))) == 12
    assert round(math.log2(s._scale_at(s.params.levels))) == 58


def test_the_128_bit_sparse_set_is_labelled_from_the_published_estimate_and_small_rings_are_refused():
    params = bootstrappable(65536, levels_after=8, hamming_weight=192, dnum=6)
    assert params.security_bits == 128 and params.log_qp <= 1550
    with pytest.raises(InsecureParametersError):
        bootstrappable(1024)
