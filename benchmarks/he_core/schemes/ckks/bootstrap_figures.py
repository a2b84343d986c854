"""Bootstrapping figures: precision (bits), levels, key bytes, time per bootstrap and memory peak.

    taskset -c 0 /work/venv/bin/python -m benchmarks.he_core.schemes.ckks.bootstrap_figures \\
        --n 2048 --slots 8 --inputs 10

Encrypts ``--inputs`` random vectors uniform in [-1, 1] at level 0 (at the level's
working scale), bootstraps each and prints one JSON line: precision = -log2 |error|
over the n slots, its min and median over slots (and the min over inputs), the time of
each bootstrap (median, wall and CPU: the CPU time is what load from other processes
does not inflate), the levels consumed and left, the key set's size, the peak
resident memory (ru_maxrss) and the load average. Key generation is timed apart.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import time
import warnings

import numpy as np

from he_core import SeededRandom, SecurityWarning
from he_core.schemes.ckks import CkksScheme
from he_core.schemes.ckks.bootstrap import bootstrappable


def measure(n_ring: int, slots: int, inputs: int, weight: int, levels_after: int, dnum: int, seed: int,
            transform_levels: int = 1) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        params = bootstrappable(n_ring, levels_after=levels_after, hamming_weight=weight, dnum=dnum,
                                transform_levels=transform_levels, allow_insecure=True)
    scheme = CkksScheme(params)
    plan = scheme.bootstrap_plan(slots)
    load_before = [round(v, 2) for v in os.getloadavg()]
    start, start_cpu = time.perf_counter(), time.process_time()
    keys = scheme.bootstrap_keygen(slots, rng=SeededRandom(seed))
    keygen_s, keygen_cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
    rng = np.random.default_rng(seed)
    times, cpu, mins, medians = [], [], [], []
    for _ in range(inputs):
        x = rng.uniform(-1, 1, (1, slots))
        fresh = scheme.encrypt(x, scale=scheme._scale_at(0), rng=SeededRandom(int(rng.integers(1 << 30))))
        ct = scheme.level_drop(fresh, 0)
        start, start_cpu = time.perf_counter(), time.process_time()
        out = scheme.bootstrap(ct)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        err = np.abs(scheme.decrypt_exact_local(out, keys.secret) - x)
        bits = -np.log2(np.maximum(err, 2.0**-60))
        mins.append(float(bits.min()))
        medians.append(float(np.median(bits)))
    return {
        "N": n_ring, "slots": slots, "hamming_weight": weight, "security_bits": params.security_bits,
        "log2_qp": round(params.log_qp, 1), "levels": params.levels, "dnum": params.digits,
        "evalmod": plan["evalmod"], "transform_levels": plan["transform_levels"],
        "levels_consumed": plan["levels_consumed"], "levels_left": plan["output_level"],
        "keys": plan["keys"], "key_bytes": plan["key_bytes"], "keygen_s": round(keygen_s, 2),
        "keygen_cpu_s": round(keygen_cpu_s, 2),
        "bootstrap_s_median": round(float(np.median(times)), 3),
        "bootstrap_cpu_s_median": round(float(np.median(cpu)), 3), "inputs": inputs,
        "precision_bits_min": round(min(mins), 2), "precision_bits_median_of_min": round(float(np.median(mins)), 2),
        "precision_bits_median": round(float(np.median(medians)), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_before": load_before, "load_after": [round(v, 2) for v in os.getloadavg()],
        "scale_in_log2": round(math.log2(scheme._scale_at(0)), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048, help="ring dimension N")
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--inputs", type=int, default=10)
    ap.add_argument("--weight", type=int, default=32, help="the secret's Hamming weight")
    ap.add_argument("--levels-after", type=int, default=3)
    ap.add_argument("--dnum", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--transform-levels", type=int, default=1, help="levels of CoeffToSlot and of SlotToCoeff")
    a = ap.parse_args()
    print(json.dumps(measure(a.n, a.slots, a.inputs, a.weight, a.levels_after, a.dnum, a.seed, a.transform_levels)))


if __name__ == "__main__":
    main()
