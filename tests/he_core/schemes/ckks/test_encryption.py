"""CKKS public-key encryptions of zero computed over a prefix of the primes (and P) alone."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from he_core import KeyRequirements, SeededRandom
from he_core.schemes.ckks import CkksParams, CkksScheme


@pytest.fixture(scope="module")
def scheme():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CkksScheme(CkksParams(poly_degree=2048, levels=4, allow_insecure=True))
    s.keygen(KeyRequirements(sizes=(4,)), rng=SeededRandom(1))
    return s


@pytest.mark.parametrize("limbs", [1, 2, 3, 5])
def test_a_prefix_encryption_of_zero_is_the_full_ones_first_limbs(scheme, limbs):
    """Dividing by P reads limb i and P only: the same residues from the same draws, whatever the prefix."""
    public = scheme.public_keys.data["pk"]
    assert public.shape[1] == len(scheme.ring.q) + len(scheme.ring.p)  # a key over Q*P
    full = scheme._public_zero(public, SeededRandom(7))
    short = scheme._public_zero(public, SeededRandom(7), limbs)
    for f, s in zip(full, short):
        assert s.shape == (limbs, scheme.ring.n)
        np.testing.assert_array_equal(s, f[:limbs])
    other = scheme._public_zero(public, SeededRandom(8), limbs)
    assert not np.array_equal(other[0], short[0])  # the draws matter: fresh randomness, fresh encryption

