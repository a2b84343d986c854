"""CKKS bootstrapping side by side: henn against OpenFHE at N = 2^16, 8 slots, one thread.

    taskset -c 1 /work/venv/bin/python -m benchmarks.peers.bootstrap_side_by_side \\
        --ofhe-python /work/venv-ofhe/bin/python [--inputs 3] [--ofhe-json rows.jsonl]

Each row runs in its own process (one key set in memory at a time, and each process's
peak RSS is its row's): henn through :mod:`benchmarks.he_core.schemes.ckks.bootstrap_figures`
(``bootstrappable(65536, levels_after=8, hamming_weight=192, dnum=6)``, the set of
docs/bootstrapping.md), OpenFHE through ``openfhe_bootstrap.py`` in its own Python 3.10
venv, once per ``--ofhe-rows`` entry (secret, levels left, digits: by default uniform
ternary with 2 left, then OpenFHE's sparse ternary with 2, 8, and 6 within the sparse
estimate's log QP), henn's row after OpenFHE's first. Both sides encrypt inputs uniform in [-1, 1] at their last
level, bootstrap each once and report precision = -log2 |error| per slot (worst slot of
the worst input, median over slots and inputs) and CPU time next to wall time (the
machine is shared: CPU is what other jobs do not inflate). The child processes inherit
the caller's CPU pinning.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
HENN_SET = {"weight": 192, "levels_after": 8, "dnum": 6}
# the published estimate behind henn's 2^16 sparse set (docs/bootstrapping.md)
SPARSE_BOUND = 1550  # log2 QP at 128 bits for h = 192, N = 2^16 (Bossuat et al. 2022/024)
HENN_SECURITY = f"128 (sparse-secret estimate, Bossuat et al. 2022/024: log QP <= {SPARSE_BOUND})"


def json_rows(text: str) -> list[dict]:
    """The JSON objects of a child's output, one per line; other lines (warnings) are skipped."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    return rows


def _child_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", HENN_THREADS="1", NUMBA_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_henn(ring: int, slots: int, inputs: int, seed: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.he_core.schemes.ckks.bootstrap_figures", "--n", str(ring),
           "--slots", str(slots), "--inputs", str(inputs), "--weight", str(HENN_SET["weight"]),
           "--levels-after", str(HENN_SET["levels_after"]), "--dnum", str(HENN_SET["dnum"]), "--seed", str(seed)]
    done = subprocess.run(cmd, cwd=ROOT, env=_child_env(), capture_output=True, text=True, check=False)
    rows = json_rows(done.stdout)
    if done.returncode != 0 or not rows:
        raise RuntimeError(f"henn's bootstrap figures failed ({done.returncode}): {done.stderr[-2000:]}")
    return {**rows[0], "library": "henn", "secret": f"sparse ternary, h = {rows[0]['hamming_weight']}"}


def run_openfhe(python: str, secret: str, ring: int, slots: int, inputs: int, seed: int,
                insecure: bool = False, levels_after: int = 2, digits: str = "auto") -> dict | None:
    cmd = [python, str(HERE / "openfhe_bootstrap.py"), "--secret", secret, "--ring", str(ring),
           "--slots", str(slots), "--inputs", str(inputs), "--seed", str(seed),
           "--levels-after", str(levels_after), "--digits", digits] + ["--insecure"] * insecure
    done = subprocess.run(cmd, env=_child_env(), capture_output=True, text=True, check=False)
    rows = json_rows(done.stdout)
    if done.returncode != 0 or not rows:
        print(f"OpenFHE ({secret}) exited with {done.returncode}: {done.stderr[-2000:]}", file=sys.stderr)
        return None
    return rows[0]


def row_spec(spec: str) -> tuple[str, int, str]:
    """``secret:levels-left[:digits]`` -> (secret, levels left, digits or "auto")."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[0] not in ("uniform", "sparse") or not parts[1].isdigit():
        raise ValueError(f"cannot read the OpenFHE row {spec!r}: expected secret:levels-left[:digits]")
    return parts[0], int(parts[1]), parts[2] if len(parts) == 3 else "auto"


def _gb(n_bytes) -> str:
    return "—" if n_bytes is None else f"{n_bytes / 1e9:.2f} GB"


def table_row(r: dict) -> str:
    """One Markdown row from either side's JSON (the two differ in a few field names)."""
    if r["library"] == "henn":
        scheme = f"henn ckks (dnum {r['dnum']}, 58-bit scaling primes)"
        secret, security, keygen_cpu = r["secret"], HENN_SECURITY, r.get("keygen_cpu_s")
    else:
        scheme = f"OpenFHE {r['version']} (dnum {r['dnum']}, {r['scale_bits']}-bit scaling primes)"
        h = r.get("hamming_weight")
        secret = "uniform ternary" if h is None else f"sparse ternary, h = {h}"
        security, keygen_cpu = r["security"], r.get("keygen_cpu_s")
        if h is not None:  # OpenFHE checks sparse secrets against its uniform-ternary table
            side = "within" if r["log2_qp"] <= SPARSE_BOUND else "above"
            security += f"; {side} the h = 192 estimate's {SPARSE_BOUND}"
    keygen = f"{r['keygen_s']:.1f}" + (f" ({keygen_cpu:.1f} CPU)" if keygen_cpu is not None else "")
    cells = [scheme, secret, str(r["N"]), f"{r['log2_qp']:.0f}", security, keygen,
             f"{r['bootstrap_cpu_s_median']:.1f} / {r['bootstrap_s_median']:.1f}",
             f"{r['precision_bits_min']:.1f} / {r['precision_bits_median']:.1f}", str(r["levels_left"]),
             _gb(r.get("key_bytes")), f"{r['peak_rss_mb'] / 1024:.2f} GB"]
    return "| " + " | ".join(cells) + " |"


def table(rows: list[dict]) -> str:
    head = ["scheme", "secret", "N", "log QP", "security claim", "keygen s", "bootstrap s (CPU / wall)",
            "precision bits (min / median)", "levels left", "key bytes", "peak RSS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + [table_row(r) for r in rows])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ofhe-python", help="OpenFHE's interpreter (its own Python 3.10 venv)")
    ap.add_argument("--ofhe-json", help="reuse openfhe_bootstrap.py's output lines instead of running it")
    ap.add_argument("--ring", type=int, default=1 << 16)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--inputs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ofhe-rows", nargs="+", default=["uniform:2", "sparse:2", "sparse:8", "sparse:6:12"],
                    help="OpenFHE's rows as secret:levels-left[:digits] (secret uniform or sparse; "
                         "digits default: the fewest OpenFHE accepts)")
    ap.add_argument("--insecure", action="store_true", help="a trial ring below OpenFHE's 128-bit table")
    ap.add_argument("--from-json", help="print the table of a saved --out file and stop")
    ap.add_argument("--out", default="bootstrap_side_by_side.json")
    a = ap.parse_args(argv)
    if a.from_json:
        print(table(json.loads(Path(a.from_json).read_text())["rows"]))
        return 0
    load = [round(v, 2) for v in os.getloadavg()]
    if not (a.ofhe_python or a.ofhe_json):
        print("no --ofhe-python or --ofhe-json: henn's row only", file=sys.stderr)
    peers = json_rows(Path(a.ofhe_json).read_text()) if a.ofhe_json else []
    wanted = [row_spec(spec) for spec in a.ofhe_rows] if a.ofhe_python and not a.ofhe_json else []
    henn: dict | None = None
    # OpenFHE's first row, henn, then OpenFHE's others: the load drifts across, not between, libraries
    for secret, levels, digits in wanted:
        peers.append(run_openfhe(a.ofhe_python, secret, a.ring, a.slots, a.inputs, a.seed, a.insecure, levels, digits))
        print(json.dumps(peers[-1]), flush=True)
        if henn is None:
            henn = run_henn(a.ring, a.slots, a.inputs, a.seed)
            print(json.dumps(henn), flush=True)
    rows = [henn or run_henn(a.ring, a.slots, a.inputs, a.seed)] + [p for p in peers if p]
    Path(a.out).write_text(json.dumps({"load_at_start": load, "load_at_end": [round(v, 2) for v in os.getloadavg()],
                                       "rows": rows}, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
