"""ModRaise and the subring trace, checked on the decrypted phases (Python integers)."""
from __future__ import annotations

import numpy as np
import pytest

from he_core import LevelExhaustedError
from he_core.schemes.ckks import reference
from he_core.schemes.ckks.bootstrap.modraise import mod_raise, raised_overflow, subring_trace
from he_core.schemes.ckks.bootstrap.role import spec_for


def phase_ints(scheme, ct, secret) -> list[int]:
    """The phase c0 + c1 s as centred integers modulo the ciphertext's whole modulus."""
    limbs = scheme._phase_limbs(ct, scheme._s_full(secret))[0]
    return reference.crt(limbs, scheme.ring.q[: limbs.shape[0]])


def test_raised_phase_is_the_level0_phase_plus_q0_times_a_small_integer(sparse, level0):
    s, keys = sparse
    h, q0 = s.params.hamming_weight, s.ring.q[0]
    worst = 0
    for seed in range(3):
        ct = level0(s, np.random.default_rng(seed).uniform(-1, 1, (1, 8)), seed)
        raised = mod_raise(s.booter.roles, ct)
        assert s.level(raised) == s.params.levels and raised.scale == float(q0)
        overflow = raised_overflow(phase_ints(s, raised, keys.secret), phase_ints(s, ct, keys.secret), q0)
        # |c0 + c1 s| <= q0 (1 + h) / 2 for centred c0, c1: the proven bound; and I is not trivially 0.
        assert np.max(np.abs(overflow)) <= (1 + h) / 2 + 1
        assert np.any(overflow != 0)
        worst = max(worst, int(np.max(np.abs(overflow))))
    # EvalMod's range holds what the raise produced (K = ceil(8 sigma_I), sigma_I^2 = (h + 1) / 12).
    assert worst < spec_for(s.params).K


def test_mod_raise_refuses_a_ciphertext_above_level_0(sparse):
    s, _ = sparse
    with pytest.raises(LevelExhaustedError, match="not 0"):
        mod_raise(s.booter.roles, s.encrypt(np.zeros((1, 8))))


def test_trace_replicates_a_clean_level0_batch_into_every_block(sparse, level0):
    s, keys = sparse
    x = np.random.default_rng(4).uniform(-1, 1, (1, 8))
    traced = subring_trace(s.booter.roles, level0(s, x, 4), 8)
    slots = s._decrypt_slots(traced, s._s_full(keys.secret))[0]
    assert np.max(np.abs(slots - np.tile(x[0], s.params.slots // 8))) < 2.0**-30


def test_trace_after_the_raise_keeps_gap_times_the_subring_part_of_the_phase(sparse, level0):
    s, keys = sparse
    n = 8
    gap = s.params.poly_degree // (2 * n)
    roles = s.booter.roles
    raised = mod_raise(roles, subring_trace(roles, level0(s, np.full((1, n), 0.5), 5), n))
    before = np.array(phase_ints(s, raised, keys.secret), dtype=object)
    after = np.array(phase_ints(s, subring_trace(roles, raised, n), keys.secret), dtype=object)
    on = np.arange(0, s.params.poly_degree, gap)
    off = np.setdiff1d(np.arange(s.params.poly_degree), on)
    noise = 2**20  # key-switching noise of the trace's rotations, far below q_0 = 2^61
    assert max(abs(int(v)) for v in after[off]) < noise
    assert max(abs(int(a) - gap * int(b)) for a, b in zip(after[on], before[on])) < noise
    assert max(abs(int(v)) for v in after[on]) > 2**61  # the q_0 I part is there, not noise
