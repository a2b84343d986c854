"""Shared keys for the vhe tests (key generation is the slow part, so it is made once)."""
import warnings

import numpy as np
import pytest

import he_core
from he_core import KeyRequirements
from he_core.schemes.vhe import VheScheme

SIZES = (1, 2, 3, 8)


def make(sizes=SIZES, seed=5, **params):
    scheme = VheScheme.create(**params) if params else he_core.get_scheme("vhe")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        keys = scheme.keygen(KeyRequirements(sizes=sizes), rng=he_core.SeededRandom(seed))
    return scheme, keys


@pytest.fixture(scope="session")
def vhe():
    return make()


def unit(ct) -> float:
    """One unit of the fixed-point step of a ciphertext."""
    return 1.0 / ct.scale


def encoded(x, scale=2.0**16):
    """What encoding keeps of x: the nearest multiple of 1/scale."""
    return np.rint(np.asarray(x, dtype=np.float64) * scale) / scale
