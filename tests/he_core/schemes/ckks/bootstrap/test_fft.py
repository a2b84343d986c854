"""The slot DFT's butterfly factorisation in diagonal form, against the dense definition."""
from __future__ import annotations

import numpy as np
import pytest

from he_core.schemes.ckks.bootstrap import fft
from he_core.schemes.ckks.bootstrap.transforms import subring_dft


def product(maps, n):
    m = np.eye(n, dtype=complex)
    for d in maps:
        m = fft.to_dense(d, n) @ m
    return m


@pytest.mark.parametrize("n, levels", [(2, 1), (8, 1), (8, 3), (64, 2), (512, 3)])
def test_the_levels_multiply_to_the_slot_dft_up_to_the_bit_reversal(n, levels):
    r = np.eye(n)[fft.bit_reversal(n)]
    assert np.allclose(product(fft.levels_of(n, levels, inverse=False), n) @ r, subring_dft(n))
    assert np.allclose(product(fft.levels_of(n, levels, inverse=True), n), r @ np.linalg.inv(subring_dft(n)))
    assert len(fft.levels_of(n, levels, inverse=True)) == levels


def test_a_level_of_s_stages_has_at_most_2_pow_s_plus_1_minus_1_diagonals():
    for inverse in (False, True):
        assert all(len(d) <= 15 for d in fft.levels_of(2**12, 4, inverse))  # 12 stages, 3 per level
        assert [sorted(d) for d in fft.levels_of(64, 6, inverse)][0 if not inverse else -1] == [-1, 0, 1]


def test_composition_and_lifting_are_the_dense_operations():
    rng = np.random.default_rng(0)
    a = {k: rng.normal(size=8) + 1j for k in (-1, 0, 3)}
    b = {k: rng.normal(size=8) for k in (2, 4)}
    assert np.allclose(fft.to_dense(fft.compose(a, b, 8), 8), fft.to_dense(a, 8) @ fft.to_dense(b, 8))
    x = np.tile(rng.normal(size=8), 2)
    assert np.allclose(fft.to_dense(fft.lift(a, 16), 16) @ x, np.tile(fft.to_dense(a, 8) @ x[:8], 2))
