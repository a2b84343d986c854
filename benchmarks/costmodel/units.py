"""What one counted ring call costs on this machine: each (method, limbs) of a counts file, replayed.

Every call kind the training run made (:mod:`.count`) is replayed on random reduced
polynomials of the run's ring (same N, primes and key-switching digits), one call per
repeat, and timed with both the wall clock and the thread's CPU clock; the medians are
kept. On a shared machine the CPU clock is the steadier of the two (time spent
descheduled is not counted; cache and frequency interference still is).

Also the primitives the model is stated in: one NTT of one limb, one element-wise
product (``mul``) and one addition of one limb, and one key switch at every level.
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np

from he_core.schemes.ckks.keyswitch import KeySwitcher
from he_core.schemes.ckks.ring import RnsRing


def _ring(counts: dict) -> tuple[RnsRing, int]:
    """The ring of the task's parameter set (the one the counts were made with: checked)."""
    import he_core
    from henn.tasks import sentiment as T

    p = counts["params"]
    chosen = he_core.scheme_class("ckks").params_for_depth(T.STEP_DEPTH)
    scheme = he_core.get_scheme("ckks", chosen)
    ring = RnsRing.for_params(scheme.params)
    if [int(q).bit_length() for q in ring.q] != p["q_bits"] or ring.n != p["poly_degree"]:
        raise RuntimeError("cannot replay: the task's parameter set is not the one the counts were made with")
    return ring, scheme.params.alpha


def _rand(ring: RnsRing, limbs: int, rng: np.random.Generator) -> np.ndarray:
    primes = ring.q[:limbs] if limbs <= len(ring.q) else ring.q + ring.p  # a prefix of Q, or all of Q*P
    return np.ascontiguousarray(np.stack([rng.integers(0, q, ring.n, dtype=np.uint64) for q in primes]))


def _call(ring: RnsRing, method: str, limbs: int, alpha: int, extra: int, rng: np.random.Generator):
    """A zero-argument callable doing one call of ``method`` at ``limbs`` (inputs made here, outside the timing)."""
    nq, k = len(ring.q), len(ring.p)
    special = limbs > nq
    a, b = _rand(ring, limbs, rng), _rand(ring, limbs, rng)
    if method == "ntt":
        return lambda: ring.ntt(a, special=special)
    if method == "intt":
        return lambda: ring.intt(a, special=special)
    if method in ("add", "sub", "mul"):
        fn, out = getattr(ring, method), np.empty_like(a)
        return lambda: fn(a, b, out)
    if method == "muladd":
        acc = _rand(ring, limbs, rng)
        return lambda: ring.muladd(a, b, acc)
    if method == "neg":
        out = np.empty_like(a)
        return lambda: ring.neg(a, out)
    if method == "mul_int":
        out = np.empty_like(a)
        return lambda: ring.mul_int(a, 12345678901, out)
    if method == "mul_scalar_limb":
        v = a[0].copy()
        return lambda: ring.mul_scalar_limb(v, 987654321, 0)
    if method == "from_signed":
        x = rng.integers(-2**40, 2**40, ring.n, dtype=np.int64)
        return lambda: ring.from_signed(x, limbs - (k if special else 0), special=special)
    if method == "rescale":
        return lambda: ring.rescale(a)
    if method == "drop_special":
        return lambda: ring.drop_special(a)
    if method == "permute":
        perm = ring.galois_perm(2 * ring.n - 1)
        return lambda: ring.permute(a, perm)
    if method == "base_conv":
        x = _rand(ring, limbs, rng)
        src, dst = list(range(limbs)), list(range(limbs, limbs + extra))
        return lambda: ring.base_conv(x, src, dst)
    if method in ("keyswitch", "modup", "keyswitch_hoisted"):
        ltot = nq + k
        dnum = -(-nq // alpha)
        key = np.ascontiguousarray(np.stack([np.stack([_rand(ring, ltot, rng) for _ in range(2)])
                                             for _ in range(dnum)]))
        ks = KeySwitcher.for_ring(ring)
        if method == "keyswitch":
            return lambda: ks.key_switch(a, key, alpha)
        if method == "modup":
            return lambda: ks.mod_up(a, alpha)
        ext = ks.mod_up(a, alpha)
        return lambda: ks.key_switch_hoisted(ext, key, alpha)
    raise ValueError(f"cannot replay {method}")


def _time(fn, repeats: int) -> dict:
    fn()  # warm the scratch buffers and caches
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu), "repeats": repeats,
            "wall_min": min(wall), "cpu_min": min(cpu)}


def measure(counts: dict, repeats: int = 101) -> dict:
    ring, alpha = _ring(counts)
    rng = np.random.default_rng(0)
    kinds = sorted({(r["method"], r["limbs"], r["alpha"], r["extra"]) for r in counts["ring"]})
    calls = []
    for method, limbs, al, extra in kinds:
        reps = max(15, repeats // 4) if method in ("keyswitch", "drop_special") else repeats
        t = _time(_call(ring, method, limbs, al, extra, rng), reps)
        calls.append({"method": method, "limbs": limbs, "alpha": al, "extra": extra, **t})
    prim = {"ntt_limb": _time(_call(ring, "ntt", 1, 1, 0, rng), repeats * 4),
            "intt_limb": _time(_call(ring, "intt", 1, 1, 0, rng), repeats * 4),
            "mul_limb": _time(_call(ring, "mul", 1, 1, 0, rng), repeats * 4),
            "muladd_limb": _time(_call(ring, "muladd", 1, 1, 0, rng), repeats * 4),
            "add_limb": _time(_call(ring, "add", 1, 1, 0, rng), repeats * 4),
            "ntt_6limbs": _time(_call(ring, "ntt", 6, 1, 0, rng), repeats),
            "intt_6limbs": _time(_call(ring, "intt", 6, 1, 0, rng), repeats),
            "mul_6limbs": _time(_call(ring, "mul", 6, 1, 0, rng), repeats),
            "muladd_6limbs": _time(_call(ring, "muladd", 6, 1, 0, rng), repeats),
            "add_6limbs": _time(_call(ring, "add", 6, 1, 0, rng), repeats),
            "rescale_6limbs": _time(_call(ring, "rescale", 6, 1, 0, rng), repeats)}
    for nq in range(1, len(ring.q) + 1):
        prim[f"keyswitch_{nq}"] = _time(_call(ring, "keyswitch", nq, alpha, 0, rng), max(15, repeats // 4))
    return {"n": ring.n, "q_bits": [int(q).bit_length() for q in ring.q], "alpha": alpha, "calls": calls,
            "primitives": prim, "ceiling": _ceiling(), "affinity": sorted(os.sched_getaffinity(0)),
            "loadavg": os.getloadavg()}


def _ceiling() -> dict:
    """The machine's modular multiply-add rate (benchmarks.limits' Shoup and Barrett loops, best of 1 s each)."""
    try:
        from benchmarks.limits import kernel
        return {"shoup": kernel.peak("shoup", 1.0), "barrett": kernel.peak("barrett", 1.0)}
    except Exception as exc:  # noqa: BLE001 (no compiler: the model is then stated in measured units only)
        return {"error": str(exc)}


def vhe_table_ops(bags: list, vocab: int, hidden: int = 8, repeats: int = 3) -> dict:
    """``vhe``: a review's gather (``row_sum``) and scatter (``index_add_``) on the W01 table, per review.

    Times the scheme calls themselves (Python included) over ``bags``, CPU and wall; the
    median over ``repeats`` passes of the per-review mean.
    """
    import warnings

    import he_core

    warnings.simplefilter("ignore", he_core.SecurityWarning)
    scheme = he_core.get_scheme("vhe")
    scheme.keygen(he_core.KeyRequirements(sizes=(1, hidden)))
    table = scheme.encrypt(np.zeros((vocab, hidden)), layout="table")
    row = scheme.encrypt(np.zeros((1, hidden)))
    out = {}
    for name, fn in (("gather", lambda b: scheme.row_sum(table, b)), ("scatter", lambda b: scheme.index_add_(table, b, row))):
        cpu, wall = [], []
        for _ in range(repeats):
            c0, t0 = time.thread_time(), time.perf_counter()
            for b in bags:
                fn(b)
            cpu.append((time.thread_time() - c0) / len(bags))
            wall.append((time.perf_counter() - t0) / len(bags))
        out[name] = {"cpu": statistics.median(cpu), "wall": statistics.median(wall)}
    return out
