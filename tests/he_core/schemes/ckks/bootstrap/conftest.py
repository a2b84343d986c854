"""A small insecure ring (N = 1024, h = 32) shaped for bootstrapping, its keys for 8 and 512 slots."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from he_core import SecurityWarning, SeededRandom
from he_core.schemes.ckks import CkksScheme
from he_core.schemes.ckks.bootstrap import bootstrappable

RING = 1024
WEIGHT = 32


def small_scheme() -> CkksScheme:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        return CkksScheme(bootstrappable(RING, hamming_weight=WEIGHT, allow_insecure=True))


@pytest.fixture(scope="module")
def sparse():
    """(scheme, keys) for bootstrapping 8 slots."""
    scheme = small_scheme()
    return scheme, scheme.bootstrap_keygen(8, rng=SeededRandom(11))


def _level0(scheme, x: np.ndarray, seed: int):
    ct = scheme.encrypt(x, scale=scheme._scale_at(0), rng=SeededRandom(seed))
    return scheme.level_drop(ct, 0)


@pytest.fixture
def level0():
    """f(scheme, x, seed): x encrypted at level 0, at that level's working scale (where a computation leaves it)."""
    return _level0


@pytest.fixture
def bits():
    """f(got, want): the precision in bits, -log2 max |got - want|."""
    return lambda got, want: float(-np.log2(np.max(np.abs(np.asarray(got) - np.asarray(want)))))
