"""The whole pipeline at N = 1024 (insecure, h = 32): level-0 ciphertexts come back at level 3.

Precision bounds are the measured minimum over inputs (docs/bootstrapping.md) less
about 3 bits: sparse packing (8 slots) >= 21 bits, full packing (512 slots) >= 23 bits.
The 128-bit set (N = 2^16, h = 192) runs under ``-m slow``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from he_core import (EncodingError, KeyMissingError, KeyRequirements, ParameterError, SecurityWarning,
                     SeededRandom, protocols)
from he_core.schemes.ckks import CkksScheme
from he_core.schemes.ckks.bootstrap import bootstrappable

SPARSE_BITS, FULL_BITS = 21, 23


def test_sparse_bootstrap_restores_levels_within_the_stated_precision(sparse, level0, bits):
    s, keys = sparse
    plan = s.bootstrap_plan(8)
    rng = np.random.default_rng(0)
    for seed in range(3):
        x = rng.uniform(-1, 1, (1, 8))
        ct = level0(s, x, seed)
        before = ct.data.copy()
        out = protocols.view(s, protocols.Bootstrapping).bootstrap(ct)
        assert np.array_equal(ct.data, before)  # the input is left as it was
        assert s.level(out) == plan["output_level"] == s.params.levels - plan["levels_consumed"]
        assert abs(out.scale / s._scale_at(s.level(out)) - 1) < 1e-9  # the working scale: ready for more work
        got = s.decrypt_exact_local(out, keys.secret)
        assert bits(got, x) >= SPARSE_BITS
        # The noise record covers the error (conservatively: see docs/bootstrapping.md).
        assert s.noise_estimate(out)["slot_bound"] >= np.max(np.abs(got - x))


def test_a_bootstrapped_ciphertext_computes_on(sparse, level0, bits):
    s, keys = sparse
    x = np.random.default_rng(1).uniform(-1, 1, (1, 5))
    out = s.bootstrap(level0(s, x, 1), slots=8)
    sq = s.mul(out, out)
    assert s.level(sq) == s.level(out) - 1
    assert bits(s.decrypt_exact_local(sq, keys.secret), x * x) >= SPARSE_BITS - 1


def test_bootstrapping_a_ciphertext_above_level_0_drops_it_first(sparse, bits):
    s, keys = sparse
    x = np.random.default_rng(2).uniform(-1, 1, (2, 4))  # two rows of stride 4: the first 8 slots
    ct = s.encrypt(x, scale=s._scale_at(0))
    assert bits(s.decrypt_exact_local(s.bootstrap(ct), keys.secret), x) >= SPARSE_BITS


def test_without_the_pipelines_keys_it_names_the_missing_one(level0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        s = CkksScheme(bootstrappable(1024, allow_insecure=True))
    s.keygen(KeyRequirements(minimal=True, multiply=True), rng=SeededRandom(1))
    with pytest.raises(KeyMissingError, match="cannot rotate"):
        s.bootstrap(level0(s, np.zeros((1, 8)), 1))


def test_bad_inputs_are_refused_before_any_work(sparse, level0):
    s, _ = sparse
    dirty = s.rotate(level0(s, np.ones((1, 4)), 2), 1)
    with pytest.raises(EncodingError, match="garbage"):
        s.bootstrap(dirty, slots=8)
    with pytest.raises(EncodingError, match="first 8 slots"):
        s.bootstrap(level0(s, np.ones((3, 4)), 3), slots=8)
    with pytest.raises(ParameterError, match="power of two"):
        s.bootstrap(level0(s, np.ones((1, 4)), 4), slots=6)


def test_full_packing_bootstraps_every_slot(level0, bits):
    """512 slots, CoeffToSlot and SlotToCoeff in three levels each (the FFT's nine stages, 3 per level)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        s = CkksScheme(bootstrappable(1024, transform_levels=3, allow_insecure=True))
    keys = s.bootstrap_keygen(512, rng=SeededRandom(5))
    x = np.random.default_rng(5).uniform(-1, 1, (1, 512))
    out = s.bootstrap(level0(s, x, 5))
    plan = s.bootstrap_plan(512)
    assert plan["transform_levels"] == 3 and plan["keys"] < 24
    assert s.level(out) == plan["output_level"] >= 3 and not out.meta["dirty"]
    assert bits(s.decrypt_exact_local(out, keys.secret), x) >= FULL_BITS


@pytest.mark.slow  # ~3 min of key generation and 14 s of CPU per bootstrap; 4 GB peak (docs/bootstrapping.md)
def test_the_128_bit_set_bootstraps_at_n_65536(level0, bits):
    s = CkksScheme(bootstrappable(65536, levels_after=8, hamming_weight=192, dnum=6))
    assert s.params.security_bits == 128
    keys = s.bootstrap_keygen(8, rng=SeededRandom(1))
    x = np.random.default_rng(1).uniform(-1, 1, (1, 8))
    out = s.bootstrap(level0(s, x, 1))
    assert s.level(out) == 8
    assert bits(s.decrypt_exact_local(out, keys.secret), x) >= 15  # measured min 17.2 over 3 inputs
