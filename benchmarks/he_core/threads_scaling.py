"""1 -> 2 thread scaling of the native CKKS ops, interleaved in one process.

For each ring size the scheme is set up once (keys made, not timed), each op is checked
once against numpy, then rounds with 1 and with 2 threads alternate (he_core.threads
switches between them), so that load from other processes hits both alike. Each round
records wall time (perf_counter) and this process's CPU time over all its threads
(process_time): CPU / wall says how many cores the round really got, which on a shared
machine is the first thing to read before the speed-up. A control before and after (two
threads hashing, no henn code) says how many cores two threads could get at all. Run
pinned to two cores::

    taskset -c 0,1 python -m benchmarks.he_core.threads_scaling            # N = 8192 and 16384
    taskset -c 0,1 python -m benchmarks.he_core.threads_scaling --quick    # N = 8192, fewer rounds

What is timed (one call each):
  mul+relin   ciphertext x ciphertext with relinearisation, no rescale (the named N* set);
  rotate      rotation by one slot (one key switch);
  keyswitch   the ring's hybrid key switch of one top-level polynomial (the relinearisation key);
  matvec      a 64 x 64 plaintext matrix times a 16-row batch (baby-step / giant-step, hoisted);
  ntt         inverse then forward NTT of both parts of a top-level ciphertext (L+1 limbs each).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import threading
import os
import statistics
import time
import warnings
from typing import Callable, Sequence

import numpy as np

from he_core import KeyRequirements, SeededRandom
from he_core.schemes.ckks import CkksScheme, named
from he_core.threads import available_cores, using_threads

COUNTS = (1, 2)
ROWS, SIZE = 16, 64


def cases(n: int) -> dict[str, Callable[[], object]]:
    """op -> the call to time, at ring size n (each checked against numpy here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CkksScheme(named(f"N{n}"))
    keys = s.keygen(KeyRequirements(sizes=(SIZE, 1), rotations=(1,), multiply=True), rng=SeededRandom(1))
    gen = np.random.default_rng(0)
    x, y, m = gen.uniform(-1, 1, (ROWS, SIZE)), gen.uniform(-1, 1, (ROWS, SIZE)), gen.uniform(-1, 1, (SIZE, SIZE))
    a, b = s.encrypt(x), s.encrypt(y)
    d = np.ascontiguousarray(a.data[0, 1])
    key, alpha = s._relin_key(a.key_id), s.params.alpha
    checks = {"mul+relin": (s.mul(a, b, rescale=False), x * y), "matvec": (s.matvec(a, m), x @ m.T),
              "rotate": (s.rotate(a, 1), np.append(x.ravel()[1:], 0.0).reshape(x.shape))}
    for op, (ct, want) in checks.items():
        err = float(np.max(np.abs(s.decrypt_exact_local(ct, keys.secret) - want)))
        if err > 2.0**-10:
            raise AssertionError(f"{op} at N = {n}: error {err:.3g}")
    parts = [np.ascontiguousarray(p) for p in a.data[0]]

    def ntt():
        for p in parts:
            s.ring.intt(p)
            s.ring.ntt(p)
    return {"mul+relin": lambda: s.mul(a, b, rescale=False), "rotate": lambda: s.rotate(a, 1),
            "keyswitch": lambda: s.switcher.key_switch(d, key, alpha), "matvec": lambda: s.matvec(a, m), "ntt": ntt}


def time_interleaved(fn: Callable[[], object], rounds: int) -> dict[int, dict[str, list[float]]]:
    """Alternate one call with each thread count, ``rounds`` times (after one warm-up call each)."""
    out = {c: {"wall": [], "cpu": []} for c in COUNTS}
    for c in COUNTS:
        with using_threads(c):
            fn()
    for _ in range(rounds):
        for c in COUNTS:
            with using_threads(c):
                w0, c0 = time.perf_counter(), time.process_time()
                fn()
                out[c]["cpu"].append(time.process_time() - c0)
                out[c]["wall"].append(time.perf_counter() - w0)
    return out


def control_cores(rounds: int = 3) -> float:
    """Cores two threads get right now, with no henn code: CPU / wall of two threads
    hashing (hashlib releases the GIL). Near 2 on an idle machine; the ceiling of any
    2-thread speed-up measured beside it."""
    data = os.urandom(32 << 20)

    def work():
        for _ in range(rounds):
            hashlib.sha256(data).digest()
    pair = [threading.Thread(target=work) for _ in range(2)]
    w0, c0 = time.perf_counter(), time.process_time()
    for t in pair:
        t.start()
    for t in pair:
        t.join()
    return (time.process_time() - c0) / (time.perf_counter() - w0)


def summarise(n: int, op: str, t: dict[int, dict[str, list[float]]]) -> dict:
    med = {c: statistics.median(t[c]["wall"]) for c in COUNTS}
    cpu = {c: statistics.median(t[c]["cpu"]) for c in COUNTS}
    return {"n": n, "op": op, "rounds": len(t[1]["wall"]),
            "median_ms": {c: med[c] * 1e3 for c in COUNTS}, "cpu_ms": {c: cpu[c] * 1e3 for c in COUNTS},
            "cores_used": {c: sum(t[c]["cpu"]) / sum(t[c]["wall"]) for c in COUNTS},
            "speedup": med[1] / med[2]}


def table(rows: list[dict]) -> str:
    head = "| N | op | 1 thread (ms) | 2 threads (ms) | speed-up | CPU ms 1 / 2 | cores used 1 / 2 | rounds |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r['n']} | {r['op']} | {r['median_ms'][1]:.2f} | {r['median_ms'][2]:.2f} | "
                     f"{r['speedup']:.2f}x | {r['cpu_ms'][1]:.2f} / {r['cpu_ms'][2]:.2f} | "
                     f"{r['cores_used'][1]:.2f} / {r['cores_used'][2]:.2f} | {r['rounds']} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.he_core.threads_scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N = 8192 only, 7 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per thread count (default 21, quick 7)")
    parser.add_argument("--sizes", type=int, nargs="*", default=None, help="ring sizes (default 8192 16384)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([8192] if args.quick else [8192, 16384])
    rounds = args.rounds or (7 if args.quick else 21)
    if available_cores() < 2:
        print(f"warning: this process may use {available_cores()} core(s): 2 threads cannot run in parallel")
    print(f"cores available: {available_cores()}; load average before: {os.getloadavg()}")
    control = [control_cores()]
    print(f"control: two hashing threads (no henn code) got {control[0]:.2f} cores", flush=True)
    rows = []
    for n in sizes:
        for op, fn in cases(n).items():
            rows.append(summarise(n, op, time_interleaved(fn, rounds)))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    control.append(control_cores())
    print(f"control after: {control[1]:.2f} cores; load average after: {os.getloadavg()}\n")
    print(table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"rows": rows, "loadavg_after": os.getloadavg(), "control_cores": control}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
