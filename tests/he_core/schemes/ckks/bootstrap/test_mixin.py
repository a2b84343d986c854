"""The ckks side of the Bootstrapping protocol: the plan, the key set, the EvalMod range per secret."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from he_core import Capability, ParameterError, SecurityWarning, SeededRandom, protocols
from he_core.schemes.ckks import CkksParams, CkksScheme
from he_core.schemes.ckks.bootstrap.mixin import spec_for


def test_the_scheme_declares_the_capability_and_its_protocol():
    assert Capability.BOOTSTRAP in CkksScheme.capabilities
    assert protocols.capability_of(protocols.Bootstrapping) is Capability.BOOTSTRAP


''' + open('/tmp/keytest.py').read() + '''
@pytest.mark.parametrize("weight, k", [(32, 14), (192, 33)])
def test_the_evalmod_range_is_eight_sigma_of_the_raise_overflow(weight, k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        params = CkksParams(poly_degree=1024, levels=2, secret="hamming", hamming_weight=weight, allow_insecure=True)
    assert spec_for(params).K == k == int(np.ceil(8 * np.sqrt((weight + 1) / 12)))


def test_a_set_that_cannot_bootstrap_says_why_and_refuses():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        s = CkksScheme(CkksParams(poly_degree=1024, levels=2, allow_insecure=True))
    plan = s.bootstrap_plan(4)
    assert not plan["possible"] and plan["reason"] and plan["keys"] == 0
    keys = s.keygen(rng=SeededRandom(1))
    with pytest.raises(ParameterError, match="cannot bootstrap"):
        s.bootstrap(s.encrypt(np.ones((1, 4)), keys.secret))
    with pytest.raises(ParameterError, match="cannot make bootstrapping keys"):
        s.bootstrap_keygen(4)
    with pytest.raises(ParameterError, match="power of two"):
        s.bootstrap_plan(3)
