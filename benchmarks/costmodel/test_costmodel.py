"""The cost model's counting: formulas agree with benchmarks.limits, and the counter sees ring calls."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.costmodel import kernels
from benchmarks.limits import counts


@pytest.mark.parametrize("nq", [1, 2, 3, 6])
def test_keyswitch_counts_match_the_limits_formulas(nq):
    n = 16384
    w = kernels.work("keyswitch", n, nq, np_=1, alpha=1)
    assert w["ntts"] == (nq + 1) * (nq + 2)  # INTT of d, nq(nq+1)-nq mod-up NTTs, 2(1+nq) mod-down
    assert w["modmuls"] == counts.key_switch(n, nq, 1, nq)


def test_hoisted_halves_add_up_to_one_keyswitch():
    n = 4096
    whole = kernels.work("keyswitch", n, 4, np_=1, alpha=1)
    up, dot = kernels.work("modup", n, 4, np_=1, alpha=1), kernels.work("keyswitch_hoisted", n, 4, np_=1, alpha=1)
    assert up["ntts"] + dot["ntts"] == whole["ntts"] and up["modmuls"] + dot["modmuls"] == whole["modmuls"]


def test_counter_counts_ring_calls_per_phase_and_restores():
    from he_core.schemes.ckks.ring import RnsRing
    from he_core.schemes.ckks.primes import ntt_primes

    from benchmarks.costmodel.counter import Counter

    n = 1024
    ring = RnsRing(n, ntt_primes(40, n, 3))
    a = np.ones((3, n), dtype=np.uint64)
    original = RnsRing.ntt
    with Counter() as c:
        with c.open("gather"):
            ring.ntt(a.copy())
            ring.mul(a, a)
        ring.add(a, a)
    assert RnsRing.ntt is original
    rows = {(r["phase"], r["method"]): r for r in c.table()}
    assert rows[("gather", "ntt")]["ntts"] == 3 and rows[("gather", "mul")]["modmuls"] == 3 * n
    assert rows[("other", "add")]["calls"] == 1 and c.phase_entries["gather"] == 1
