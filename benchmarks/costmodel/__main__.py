"""``python -m benchmarks.costmodel count|units|report`` (see the package docstring)."""
from __future__ import annotations

import argparse
import json
import pathlib
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.costmodel")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("count", help="train a slice under the counter; write counts JSON")
    c.add_argument("--limit", type=int, default=200)
    c.add_argument("--warmup", type=int, default=10)
    c.add_argument("--json", required=True)
    c.add_argument("--bare", action="store_true", help="time the steps only (no ring counting)")
    c.add_argument("--scheme", choices=("ckks", "vhe"), default="ckks", help="vhe: phase times only")
    u = sub.add_parser("units", help="measure the per-call cost of each counted ring call (and primitives)")
    u.add_argument("counts", help="counts JSON (which calls to measure)")
    u.add_argument("--repeats", type=int, default=101)
    u.add_argument("--json", required=True)
    r = sub.add_parser("report", help="predicted vs measured, per phase, as markdown")
    r.add_argument("counts")
    r.add_argument("units")
    r.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = ap.parse_args(argv)
    if args.cmd == "count":
        from .count import main as count_main, run_vhe
        if args.scheme == "vhe":
            res = run_vhe(args.limit, args.warmup)
            pathlib.Path(args.json).write_text(json.dumps(res, indent=1))
        else:
            res = count_main(args.limit, args.warmup, args.json, args.bare)
        print(json.dumps(res["measured"], indent=1))
    elif args.cmd == "units":
        from .units import measure
        res = measure(json.loads(pathlib.Path(args.counts).read_text()), args.repeats)
        pathlib.Path(args.json).write_text(json.dumps(res, indent=1))
        print(json.dumps(res["primitives"], indent=1))
    else:
        from .report import render, render_floor
        counts = json.loads(pathlib.Path(args.counts).read_text())
        units = json.loads(pathlib.Path(args.units).read_text())
        print(render(counts, units, args.clock))
        print()
        print(render_floor(counts, units, args.clock))
    return 0


if __name__ == "__main__":
    sys.exit(main())
