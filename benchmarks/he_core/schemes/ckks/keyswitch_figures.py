"""Key-switching figures: per-slot error of conjugate / rotate, per-slot bootstrap precision, key-switch CPU time.

    PYTHONPATH=. taskset -c 1 /work/venv/bin/python -m benchmarks.he_core.schemes.ckks.keyswitch_figures \\
        slots --n 4096 --levels 11 --dnum 2 --weight 192
    ... keyswitch_figures bootstrap --n 16384 --slots 8 --inputs 6 --weight 192 --dnum 3 --seed 2
    ... keyswitch_figures time --n 16384 --dnum 3 --reps 60

``slots``: log2 of the absolute error per slot of ``conjugate`` and ``rotate(1)`` against
the exact decryption of their input (the key switch's error alone), on a set with a
Hamming-weight secret: slot 0, the worst slot and the median. ``bootstrap``: the
precision of ``bootstrap_figures`` (bits, -log2 |error|) printed for every slot of every
input. ``time``: median and min CPU time (thread time, one thread) of
``KeySwitcher.key_switch`` and of the hoisted ``key_switch_hoisted`` on a bootstrappable
set's ring, random operands. Each prints one JSON line with the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np

from he_core import KeyRequirements, SeededRandom, SecurityWarning
from he_core.schemes.ckks import CkksParams, CkksScheme
from he_core.schemes.ckks.bootstrap import bootstrappable
from he_core.schemes.ckks.keyswitch import KeySwitcher


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def slot_errors(n: int, levels: int, dnum: int, weight: int, inputs: int, seed: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = CkksParams(poly_degree=n, levels=levels, dnum=dnum, secret="hamming", hamming_weight=weight,
                            allow_insecure=True)
        scheme = CkksScheme(params)
    keys = scheme.keygen(KeyRequirements(sizes=(params.slots,), rotations=(1,)), rng=SeededRandom(seed))
    s_full = scheme._s_full(keys.secret)
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(inputs):
        ct = scheme.encrypt(rng.uniform(-1, 1, (1, params.slots)), rng=SeededRandom(int(rng.integers(1 << 30))))
        base = scheme._decrypt_slots(ct, s_full)[0]
        for name, got, want in (("conjugate", scheme.conjugate(ct), np.conj(base)),
                                ("rotate", scheme.rotate(ct, 1), np.roll(base, -1))):
            e = np.log2(np.abs(scheme._decrypt_slots(got, s_full)[0] - want))
            rows.append({"op": name, "slot0": round(float(e[0]), 2), "worst": round(float(e.max()), 2),
                         "worst_at": int(e.argmax()), "median": round(float(np.median(e)), 2)})
    return {"N": n, "levels": levels, "dnum": params.digits, "special_primes": params.alpha, "h": weight,
            "log2_abs_error": rows, "load": _load()}


def bootstrap_slots(n: int, slots: int, inputs: int, weight: int, levels_after: int, dnum: int, seed: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        params = bootstrappable(n, levels_after=levels_after, hamming_weight=weight, dnum=dnum, allow_insecure=True)
    scheme = CkksScheme(params)
    keys = scheme.bootstrap_keygen(slots, rng=SeededRandom(seed))
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(inputs):
        x = rng.uniform(-1, 1, (1, slots))
        fresh = scheme.encrypt(x, scale=scheme._scale_at(0), rng=SeededRandom(int(rng.integers(1 << 30))))
        err = np.abs(scheme.decrypt_exact_local(scheme.bootstrap(scheme.level_drop(fresh, 0)), keys.secret) - x)
        rows.append([round(float(b), 1) for b in -np.log2(np.maximum(err, 2.0**-60))[0]])
    return {"N": n, "slots": slots, "h": weight, "dnum": params.digits, "special_primes": params.alpha,
            "levels": params.levels, "seed": seed, "bits_per_slot": rows, "load": _load()}


def keyswitch_time(n: int, dnum: int, reps: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        params = bootstrappable(n, hamming_weight=192, dnum=dnum, allow_insecure=True)
    ks = KeySwitcher.for_params(params)
    ring = ks.ring
    rng = np.random.default_rng(0)
    d = np.stack([rng.integers(0, q, n, dtype=np.uint64) for q in ring.q])
    limbs = np.stack([rng.integers(0, q, n, dtype=np.uint64) for q in ring.q + ring.p])
    key = np.ascontiguousarray(np.broadcast_to(limbs, (params.digits, 2) + limbs.shape))
    ext, perm = ks.mod_up(d, params.alpha), ring.galois_perm(5)
    full, hoisted = [], []
    for _ in range(reps):
        start = time.thread_time()
        ks.key_switch(d, key, params.alpha)
        full.append(time.thread_time() - start)
        start = time.thread_time()
        ks.key_switch_hoisted(ext, key, params.alpha, perm)
        hoisted.append(time.thread_time() - start)
    ms = lambda xs: {"median": round(1e3 * float(np.median(xs)), 2), "min": round(1e3 * min(xs), 2)}  # noqa: E731
    return {"N": n, "q_primes": len(ring.q), "special_primes": len(ring.p), "reps": reps,
            "keyswitch_cpu_ms": ms(full), "ks_dot_cpu_ms": ms(hoisted), "load": _load()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("slots")
    s.add_argument("--n", type=int, default=4096)
    s.add_argument("--levels", type=int, default=11)
    s.add_argument("--dnum", type=int, default=2)
    s.add_argument("--weight", type=int, default=192)
    s.add_argument("--inputs", type=int, default=3)
    s.add_argument("--seed", type=int, default=5)
    b = sub.add_parser("bootstrap")
    b.add_argument("--n", type=int, default=16384)
    b.add_argument("--slots", type=int, default=8)
    b.add_argument("--inputs", type=int, default=6)
    b.add_argument("--weight", type=int, default=192)
    b.add_argument("--levels-after", type=int, default=3)
    b.add_argument("--dnum", type=int, default=3)
    b.add_argument("--seed", type=int, default=2)
    t = sub.add_parser("time")
    t.add_argument("--n", type=int, default=16384)
    t.add_argument("--dnum", type=int, default=3)
    t.add_argument("--reps", type=int, default=60)
    a = ap.parse_args()
    if a.what == "slots":
        out = slot_errors(a.n, a.levels, a.dnum, a.weight, a.inputs, a.seed)
    elif a.what == "bootstrap":
        out = bootstrap_slots(a.n, a.slots, a.inputs, a.weight, a.levels_after, a.dnum, a.seed)
    else:
        out = keyswitch_time(a.n, a.dnum, a.reps)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
