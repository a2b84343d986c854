"""Adding ciphertexts whose scales left the working scale (free scalar factors): realigned, or refused.

Found training an MLP on breast-cancer data: a sum at scale Delta/100 and a term at
Delta/30 (their scalar factors fold into the recorded scale) needed a realignment factor
above the first prime; the factor was refused, the operand kept its scale, and the
addition read it at the other's scale -- a decryption off by a factor of 2^6.6.
"""
import math
import warnings

import numpy as np
import pytest

import he_core
from he_core.errors import MismatchError
from he_core.schemes.ckks.params import CkksParams
from he_core.schemes.ckks.scheme import CkksScheme


@pytest.fixture(scope="module")
def ckks():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The shape of the parameters the MLP estimator chose: a 60-bit q0, 54-bit scaling primes.
        scheme = CkksScheme(CkksParams(poly_degree=1024, levels=3, first_bits=60, scale_bits=54, special_bits=60,
                                       allow_insecure=True))
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(4,)), rng=he_core.SeededRandom(7))
    return scheme, secret


@pytest.mark.parametrize("fa, fb", [(100.0, 30.0), (300.0, 0.01), (-250.0, 7.0), (1.0, 900.0)])
def test_add_realigns_operands_far_from_the_working_scale(ckks, fa, fb):
    scheme, secret = ckks
    x = np.array([[0.5, -1.25, 0.0, 2.0]])
    y = np.array([[-0.75, 0.3, 1.5, 0.0]])
    a = scheme.mul_plain(scheme.level_drop(scheme.encrypt(x), 2), fa)
    b = scheme.mul_plain(scheme.level_drop(scheme.encrypt(y), 2), fb)
    assert abs(math.log2(a.scale / b.scale)) > 1  # the case under test: scales far apart at one level
    total = scheme.add(a, b)
    want = fa * x + fb * y
    got = scheme._decrypt(total, secret)
    # Measured error ~2^-30 of the values; 2^-20 leaves room and fails on any misweighting.
    assert np.max(np.abs(got - want)) <= 2.0**-20 * (1 + np.max(np.abs(want)))


def test_add_refuses_scales_it_cannot_align(ckks):
    scheme, _ = ckks
    a = scheme.mul_plain(scheme.level_drop(scheme.encrypt(np.ones((1, 4))), 0), 100.0)
    b = scheme.level_drop(scheme.encrypt(np.ones((1, 4))), 0)
    with pytest.raises(MismatchError, match="cannot add"):
        scheme.add(a, b)
