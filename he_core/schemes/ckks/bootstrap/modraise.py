"""ModRaise and the subring trace: the first two steps of bootstrapping.

ModRaise reads a level-0 ciphertext (c0, c1) mod q_0 as centred integers and reduces
them modulo every prime of the chain: the phase becomes t = c0 + c1 s = Delta m + e +
q_0 I over the full modulus, with I an integer polynomial, |I_i| <= (1 + ||s||_1) / 2
coefficient-wise (each of c0, c1 is centred, so |c0 + c1 s|_inf <= q_0 (1 + h) / 2).

The trace Tr(t) = sum_k rot_{k n}(t) over the N / (2n) rotations by multiples of n
(the automorphisms X -> X^(5^(kn)) fixing the subring Z[X^gap], gap = N / (2n))
projects onto that subring, times gap. Applied to a clean level-0 ciphertext whose
values fill the first n slots, it replicates them n-periodically (the message then
lies in the subring); applied after ModRaise it removes the non-subring part of q_0 I,
which the sparse CoeffToSlot could not read (Cheon-Han-Kim-Kim-Song 2018, "SubSum").
"""
from __future__ import annotations

import numpy as np

from ....ciphertext import Ciphertext
from ....errors import LevelExhaustedError
from .. import layout
from .pipeline_roles import PipelineRoles


def raise_data(ring, data: np.ndarray, nlimbs: int) -> np.ndarray:
    """(nct, parts, 1, N) NTT-form limbs mod q_0 -> the same centred integers over ``nlimbs`` primes."""
    q0 = ring.q[0]
    out = np.empty(data.shape[:2] + (nlimbs, ring.n), dtype=np.uint64)
    for i in range(data.shape[0]):
        for p in range(data.shape[1]):
            coeffs = ring.intt(data[i, p, :1].copy()).reshape(-1).astype(np.int64)  # intt works in place
            centred = np.where(coeffs > q0 // 2, coeffs - q0, coeffs)
            out[i, p] = ring.ntt(ring.from_signed(centred, nlimbs))
    return out


def mod_raise(roles: PipelineRoles, ct: Ciphertext) -> Ciphertext:
    """ct (level 0) over the whole chain, read at scale q_0: its message is t / q_0 = Delta m / q_0 + I.

    Raises:
        LevelExhaustedError: ct is not at level 0 (drop it there first).
    """
    if layout.level(ct) != 0:
        raise LevelExhaustedError(f"cannot mod-raise {ct.describe()}: it is at level {layout.level(ct)}, not 0")
    top = len(roles.ring.q)
    data = raise_data(roles.ring, roles.evaluator.relin(ct).data, top)
    meta = {**ct.meta, "level": top - 1}
    q0 = float(roles.ring.q[0])
    raised = ct.replace(data=data, meta=meta, scale=q0)
    # Same phase, so the same error in integer units; values are now dominated by I (|I| <= (1 + h) / 2).
    return roles.records.noisy(raised, roles.records.nv(ct)[0], 1.0 + roles.ring.n / 2)


def trace_rotations(n: int, slots: int) -> list[int]:
    """Rotations n, 2n, 4n, .. slots/2: log2(slots / n) steps of the rotate-and-sum."""
    out, k = [], n
    while k < slots:
        out.append(k)
        k *= 2
    return out


def subring_trace(roles: PipelineRoles, ct: Ciphertext, n: int) -> Ciphertext:
    """Tr(ct) = sum of the rotations of ct by every multiple of n (gap = N / (2n) of them)."""
    for k in trace_rotations(n, roles.params.slots):
        ct = roles.evaluator.add(ct, roles.rotator.rotate(ct, k), rule="rotation")
    return ct


def raised_overflow(phase_raised, phase_low, q0: int) -> np.ndarray:
    """I = (t_raised - t_low) / q_0 from the two phases (Python ints): the plaintext check of ModRaise.

    Raises:
        ValueError: a difference is not a multiple of q_0 (the raise is wrong).
    """
    out = []
    for hi, lo in zip(phase_raised, phase_low):
        d = int(hi) - int(lo)
        if d % q0:
            raise ValueError("the raised phase differs from the level-0 phase by a non-multiple of q_0")
        out.append(d // q0)
    return np.array(out, dtype=np.int64)
