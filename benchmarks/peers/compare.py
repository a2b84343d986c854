"""Op-level comparison: henn's CKKS against each installed peer, interleaved in one process.

For each setting (N and prime sizes, scale 2^40) every library is set up (keys made,
not timed), each op is checked once against numpy, then the libraries' rounds of the
same op are timed round-robin so that machine noise hits them alike. The table gives
medians and the ratio henn / peer (below 1: henn is faster).

    python -m benchmarks.peers ops --quick          # N = 8192
    python -m benchmarks.peers ops --json peers.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, Sequence

import numpy as np

from henn.bench import report
from henn.bench.timing import Budget, interleaved

from . import THREAD_VARS, matvec
from .adapters import OPS, Adapter, PeerMissing, Setting, adapters

SETTINGS = {
    8192: Setting(8192, (60, 40, 40, 60)),
    16384: Setting(16384, (60, 40, 40, 40, 40, 40, 40, 60)),
    # Twelve levels; no matvec here (its ~23 Galois keys would take ~4 GB per library).
    32768: Setting(32768, (60,) + (40,) * 12 + (60,), matvec_size=0),
}
QUICK_BUDGET = Budget(target_round_s=2e-3, max_time_s=0.25, min_rounds=5, max_rounds=60, warmup_s=0.01)
FULL_BUDGET = Budget(target_round_s=5e-3, max_time_s=1.5, min_rounds=10, max_rounds=300, warmup_s=0.05)
HENN = "henn"


def _inputs(slots: int, seed: int = 0) -> dict[str, np.ndarray]:
    gen = np.random.default_rng(seed)
    return {k: gen.uniform(-1.0, 1.0, slots) for k in ("x", "y", "p")}


def op_cases(lib: Adapter, v: dict[str, np.ndarray]) -> dict[str, tuple[Any, Any, np.ndarray]]:
    """op -> (call to time, call giving the decrypted result, expected values); inputs made here."""
    a, b = lib.encrypt(v["x"]), lib.encrypt(v["y"])
    prod = lib.mul(a, b)
    x, y, p = v["x"], v["y"], v["p"]
    cases = {
        "encrypt": (lambda: lib.encrypt(x), x),
        "decrypt": (lambda: lib.decrypt(a), x),
        "add": (lambda: lib.add(a, b), x + y),
        "mul_plain": (lambda: lib.mul_plain(a, p), x * p),
        "mul": (lambda: lib.mul(a, b), x * y),
        "rescale": (lambda: lib.rescale(prod), x * y),
        "rotate": (lambda: lib.rotate(a, 1), np.roll(x, -1)),
    }
    out = {}
    for op, (call, expected) in cases.items():
        result = (lambda c=call: c()) if op == "decrypt" else (lambda c=call: lib.decrypt(c()))
        out[op] = (call, result, expected)
    if lib.setting.matvec_size:
        try:
            out["matvec"] = matvec_case(lib, v["x"], lib.setting.matvec_size)
        except PeerMissing:
            pass  # the op's row shows "-" for this library
    return out


def matvec_case(lib: Adapter, x: np.ndarray, size: int) -> tuple[Any, Any, np.ndarray]:
    """The matvec op: a fixed random (T, T) matrix, rows summing to at most 1 in absolute value."""
    matrix = np.random.default_rng(1).uniform(-1.0, 1.0, (size, size)) / size
    op = lib.matvec_of(matrix)
    a = op.encrypt(x)
    op(a)  # encodes and caches the diagonals (henn) / the plaintexts (SEAL) before any timing
    return (lambda: op(a)), (lambda: op.decrypt(op(a))), matvec.expected(x, matrix)


def precision_bits(got: np.ndarray, want: np.ndarray) -> float:
    """-log2 of the largest absolute error (higher is better; inf when exact)."""
    err = float(np.max(np.abs(np.asarray(got)[: want.size] - want)))
    return math.inf if err == 0 else -math.log2(err)


def setup_all(libs: list[Adapter], setting: Setting) -> tuple[list[Adapter], list[dict]]:
    """Set every library up; returns the ready ones and one status row per library."""
    ready, status = [], []
    for lib in libs:
        start = time.perf_counter()
        try:
            lib.setup(setting)
        except PeerMissing as exc:
            status.append({"library": lib.name, "status": "skipped", "reason": str(exc)})
            continue
        except Exception as exc:  # a peer that fails to set up must not stop the others
            status.append({"library": lib.name, "status": "error", "reason": f"{type(exc).__name__}: {exc}"})
            continue
        ready.append(lib)
        status.append({"library": lib.name, "status": "ok", "setup_s": round(time.perf_counter() - start, 3),
                       **lib.describe()})
    return ready, status


def compare_setting(libs: list[Adapter], setting: Setting, budget: Budget) -> dict:
    """Check and time every op of every ready library at one setting."""
    ready, status = setup_all(libs, setting)
    values = _inputs(setting.slots)
    cases: dict[str, dict] = {}
    for lib in list(ready):
        try:
            cases[lib.name] = op_cases(lib, values)
        except Exception as exc:
            ready.remove(lib)
            next(s for s in status if s["library"] == lib.name).update(
                status="error", reason=f"cannot prepare inputs: {type(exc).__name__}: {exc}")
    rows = []
    for op in OPS:
        if not any(op in cases[lib.name] for lib in ready):
            continue  # an op no library offers at this setting (matvec at N = 32768)
        fns, precision, errors = {}, {}, {}
        for lib in ready:
            if op not in cases[lib.name]:
                continue
            call, result, expected = cases[lib.name][op]
            try:
                precision[lib.name] = precision_bits(result(), expected)
            except Exception as exc:
                errors[lib.name] = f"{type(exc).__name__}: {exc}"
                continue
            if precision[lib.name] < 10:  # a wrong result is not timed
                errors[lib.name] = f"wrong result: only {precision[lib.name]:.1f} bits of precision"
                continue
            fns[lib.name] = call
        timings = interleaved(fns, budget) if fns else {}
        rows.append({"op": op, "median_s": {k: t.median_s for k, t in timings.items()},
                     "min_s": {k: t.min_s for k, t in timings.items()},
                     "rounds": {k: t.rounds for k, t in timings.items()},
                     "precision_bits": precision, "errors": errors})
    return {"n": setting.n, "bits": list(setting.bits), "scale": setting.scale, "libraries": status, "ops": rows}


def ratio_table(result: dict) -> str:
    """Medians per library and henn/peer ratios for one setting, then skipped and failed libraries."""
    libs = [s["library"] for s in result["libraries"] if s["status"] == "ok"]
    peers = [name for name in libs if name != HENN]
    head = ["op"] + libs + [f"{HENN}/{p}" for p in peers if HENN in libs] + ["precision bits"]
    lines = []
    for row in result["ops"]:
        med = row["median_s"]
        cells = [row["op"]] + [report.format_seconds(med.get(name)) if name in med else
                               ("error" if name in row["errors"] else "-") for name in libs]
        if HENN in libs:
            cells += [f"{med[HENN] / med[p]:.2f}" if HENN in med and p in med else "-" for p in peers]
        cells.append(" ".join(f"{k}:{v:.0f}" for k, v in row["precision_bits"].items()))
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}"  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    out = [f"N = {result['n']}, primes {result['bits']} bits, scale 2^{math.log2(result['scale']):.0f}, "
           f"one thread", fmt(head), fmt(["-" * w for w in widths])] + [fmt(c) for c in lines]
    for s in result["libraries"]:
        if s["status"] != "ok":
            out.append(f"{s['library']}: {s['status']} ({s['reason']})")
    for row in result["ops"]:
        for name, err in row["errors"].items():
            out.append(f"{name} {row['op']}: error ({err})")
    return "\n".join(out)


def run(ns: Sequence[int], names: Sequence[str] | None, budget: Budget) -> list[dict]:
    results = []
    for n in ns:
        setting = SETTINGS.get(n)
        if setting is None:
            raise ValueError(f"cannot compare at N = {n}: known settings are {sorted(SETTINGS)}")
        results.append(compare_setting(adapters(names), setting, budget))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers ops", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", choices=sorted(SETTINGS),
                        help="ring dimensions (default 8192 and 16384; 32768 only when named)")
    parser.add_argument("--libs", nargs="+", help="only these libraries (henn, SEAL, OpenFHE, Pyfhel)")
    parser.add_argument("--quick", action="store_true", help="N = 8192 only and short timing")
    parser.add_argument("--json", dest="json_path", metavar="FILE", help="write the results as JSON")
    args = parser.parse_args(argv)
    ns = args.n or ([8192] if args.quick else [8192, 16384])
    start = time.perf_counter()
    results = run(ns, args.libs, QUICK_BUDGET if args.quick else FULL_BUDGET)
    for result in results:
        print(ratio_table(result))
        print()
    print(f"peer comparison took {time.perf_counter() - start:.1f} s "
          f"(threads: {', '.join(f'{v}={os.environ.get(v)}' for v in THREAD_VARS)})")
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as fh:
            json.dump({"header": report.header(kind="peers-ops"), "settings": results}, fh, indent=2, default=str)
    failed = any(s["status"] == "error" for r in results for s in r["libraries"]) or any(
        row["errors"] for r in results for row in r["ops"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
