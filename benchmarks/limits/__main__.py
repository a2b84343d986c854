"""``python -m benchmarks.limits [--quick]``: how close the NTT and ct-ct products get to the machine.

Prints the measured peak of 64-bit modular multiply-adds per second (tight C loops on
data in L1) and, for henn's CKKS and SEAL, the modular multiplications per second their
NTT and ciphertext product achieve, with the fraction of the peak.
"""
from __future__ import annotations

import argparse
import json
import sys

import benchmarks.peers  # noqa: F401  (sets the one-thread environment before numeric imports)
from henn.bench import report
from henn.bench.timing import Budget

from . import achieved, kernel

BITS = {8192: (60, 40, 40, 60), 16384: (60, 40, 40, 40, 40, 40, 40, 60)}


def _workloads(n: int) -> tuple[list[achieved.Workload], list[str]]:
    """Every workload available at ring dimension ``n`` (libraries that are missing become notes)."""
    from benchmarks.peers.adapters import HennCkksAdapter, PeerMissing, SealAdapter, Setting

    bits = BITS[n]
    limbs = len(bits) - 1  # data primes of a fresh ciphertext
    loads, notes = [], []
    makers = [("henn NTT", lambda: achieved.henn_native_ntt(n, 2 * limbs)),
              ("SEAL NTT", lambda: achieved.seal_ntt(n, bits))]
    for cls in (HennCkksAdapter, SealAdapter):
        def make(cls=cls):
            adapter = cls()
            adapter.setup(Setting(n, bits))
            return achieved.ct_ct_multiply(adapter, n, limbs)
        makers.append((f"{cls.name} mul+relin", make))
    for what, make in makers:
        try:
            loads.append(make())
        except (ImportError, PeerMissing) as exc:
            notes.append(f"{what} at N={n}: skipped ({exc})")
        except Exception as exc:
            notes.append(f"{what} at N={n}: error ({type(exc).__name__}: {exc})")
    return loads, notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.limits", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 8192 only, short timing")
    parser.add_argument("--json", dest="json_path", metavar="FILE")
    args = parser.parse_args(argv)
    budget = Budget(target_round_s=5e-3, max_time_s=0.3 if args.quick else 1.0, min_rounds=5, warmup_s=0.01)
    kinds = ("shoup", "barrett") + (("shoup_ifma",) if kernel.has_ifma() else ())
    best = {kind: kernel.peak(kind, 0.3 if args.quick else 1.0) for kind in kinds}
    print(f"CPU: {report.cpu_model()}, one thread")
    print(f"best observed, Shoup multiply-add (constant operand): {best['shoup']:.3g} modmul/s")
    print(f"best observed, Barrett multiply-add (two operands):   {best['barrett']:.3g} modmul/s")
    if "shoup_ifma" in best:
        print(f"best observed, Shoup on AVX-512 IFMA lanes (q < 2^50): {best['shoup_ifma']:.3g} modmul/s")
    rows, notes = [], []
    for n in [8192] if args.quick else sorted(BITS):
        loads, more = _workloads(n)
        notes += more
        # The limit loops run interleaved with the workloads, so the fraction compares like with like.
        rows += achieved.measure_interleaved([achieved.kernel_workload(kind) for kind in kinds] + loads, budget)
    print(f"\n{'library':<8} {'op':<12} {'N':>6} {'limbs':>5} {'modmuls':>10} {'median':>9} "
          f"{'modmul/s':>10} {'of peak':>8}")
    peak = None
    for r in rows:
        if r.library == "machine":
            # The ceiling: the faster Shoup loop (scalar, or IFMA lanes where the CPU has them).
            if r.op in ("shoup loop", "shoup_ifma loop"):
                peak = r.per_second if r.op == "shoup loop" else max(peak or 0.0, r.per_second)
            frac = ""
        else:
            frac = f"{r.per_second / peak:.0%}"
        print(f"{r.library:<8} {r.op:<12} {r.n or '-':>6} {r.limbs:>5} {r.modmuls:>10,} "
              f"{report.format_seconds(r.median_s):>9} {r.per_second:>10.3g} {frac:>8}")
    for note in notes:
        print(note)
    print("\nmodmul counts are analytic (benchmarks/limits/counts.py); 'of peak' is against the faster Shoup "
          "loop (scalar or IFMA lanes) timed in the same interleaved run just above.")
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as fh:
            json.dump({"header": report.header(kind="limits"), "best_observed": best,
                       "rows": [{**r.__dict__, "per_second": r.per_second} for r in rows], "notes": notes},
                      fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
