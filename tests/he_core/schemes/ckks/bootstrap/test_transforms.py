"""CoeffToSlot / SlotToCoeff: the matrices against the encoder, then the homomorphic maps against them."""
from __future__ import annotations

import numpy as np
import pytest

from he_core import ParameterError
from he_core.schemes.ckks import encoder, reference
from he_core.schemes.ckks.bootstrap.modraise import mod_raise, subring_trace
from he_core.schemes.ckks.bootstrap.fft import bit_reversal
from he_core.schemes.ckks.bootstrap.transforms import (LinearTransform, apply_reference, block_diagonals, cts_block,
                                                        giant_step, stc_block, subring_dft)


@pytest.mark.parametrize("n_ring, n", [(64, 4), (64, 32), (1024, 8)])
def test_subring_slots_are_the_dft_of_the_folded_coefficients(n_ring, n):
    gap = n_ring // (2 * n)
    tau = np.random.default_rng(n).normal(size=2 * n)
    coeffs = np.zeros(n_ring)
    coeffs[::gap] = tau
    z = encoder.decode(coeffs, 1.0)
    assert np.allclose(z, np.tile(z[:n], n_ring // 2 // n))  # n-periodic
    assert np.allclose(z[:n], subring_dft(n) @ (tau[:n] + 1j * tau[n:]))


def test_cts_then_stc_is_the_identity_on_plaintext_slots():
    n, slots = 8, 512
    tau = np.random.default_rng(1).normal(size=2 * n)
    z = np.tile(subring_dft(n) @ (tau[:n] + 1j * tau[n:]), slots // n)
    v = apply_reference(cts_block(n, 0.5), z)
    real = v + np.conj(v)  # what the conjugation step adds
    assert np.allclose(real, np.tile(tau, slots // (2 * n)))
    assert np.allclose(apply_reference(stc_block(n, 1.0), real), z)


def test_full_packing_cts_halves_and_stc_invert_each_other_on_plaintext_slots():
    """n = N/2: w = U0^-1 z / 2; w + conj(w) and -i (w - conj(w)) are the halves; U0 (re + i im) = z."""
    n = 32
    tau = np.random.default_rng(4).normal(size=2 * n)
    coeffs = np.zeros(2 * n)
    coeffs[:] = tau
    z = encoder.decode(coeffs, 1.0)
    w = np.linalg.inv(subring_dft(n)) @ z / 2
    re, im = w + np.conj(w), -1j * (w - np.conj(w))
    assert np.allclose(re, tau[:n]) and np.allclose(im, tau[n:])
    assert np.allclose(subring_dft(n) @ (re + 1j * im), z)


def test_the_giant_step_takes_few_rotations_for_a_butterfly():
    assert giant_step([-1, 0, 1]) in (1, 2, 4)
    assert giant_step(list(range(-7, 8))) in (4, 8)


def test_the_diagonal_form_is_the_block_map_on_periodic_vectors():
    block = np.random.default_rng(2).normal(size=(16, 16)) + 1j
    x = np.tile(np.random.default_rng(3).normal(size=16), 4)
    diags = block_diagonals(block, 64)
    assert np.allclose(sum(d * np.roll(x, -k) for k, d in diags.items()), apply_reference(block, x))
    with pytest.raises(ParameterError, match="cannot use"):
        block_diagonals(block, 40)


def test_homomorphic_cts_puts_the_raised_coefficients_over_q0_k_in_real_slots(sparse, level0, bits):
    """Stage check: decrypt the CtS output and compare with tau / (q_0 K) from the raised, traced phase."""
    s, keys = sparse
    boot, n, roles = s.booter.pipeline(8), 8, s.booter.roles
    gap, q0, k = boot.gap, s.ring.q[0], boot.spec.K
    ct = level0(s, np.random.default_rng(6).uniform(-1, 1, (1, n)), 6)
    [out] = boot.raise_to_slots(ct)
    assert s.level(out) == s.params.levels - 1
    # Reference: the raised, traced phase's subring coefficients (Python integers), over gap.
    raised = subring_trace(roles, mod_raise(roles, subring_trace(roles, boot._whole(ct), n)), n)
    limbs = s._phase_limbs(raised, s._s_full(keys.secret))[0]
    tau = np.array([float(v) for v in reference.crt(limbs, s.ring.q)[::gap]]) / gap
    rev = bit_reversal(n)  # CtS by F^-1 leaves each half in bit-reversed order (SlotToCoeff by F undoes it)
    want = np.tile(np.concatenate([tau[:n][rev], tau[n:][rev]]) / (q0 * k), s.params.slots // (2 * n))
    got = s._decrypt_slots(out, s._s_full(keys.secret))[0]
    assert np.max(np.abs(got.imag)) < 2.0**-35
    # Resolution needed: EvalMod must see delta = Delta m / q_0 (about 2^-12 / sqrt(n)) to ~2^-20 of it.
    assert bits(got.real, want) >= 38


def test_homomorphic_stc_matches_the_plaintext_map(sparse, bits):
    s, keys = sparse
    n = 8
    tau = np.random.default_rng(7).uniform(-1, 1, 2 * n)
    x = np.tile(tau, s.params.slots // (2 * n))[None, :]
    ct = s.encrypt(x)  # one row of all the slots
    out = LinearTransform.from_block(stc_block(n, 1.0), s.params.slots).apply(s.booter.roles, ct)
    assert s.level(out) == s.level(ct) - 1
    got = s._decrypt_slots(out, s._s_full(keys.secret))[0]
    assert bits(got, apply_reference(stc_block(n, 1.0), x[0].astype(complex))) >= 38
