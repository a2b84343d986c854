"""``henn bench``: time every op of the scheme interface for the installed schemes.

The dispatcher in :mod:`henn.cli` calls :func:`add_parser`; :func:`main` runs the same
command stand-alone (``python -m henn.bench``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Sequence

import he_core

from ..bench import report, runner
from ..bench.ops import OP_NAMES

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``bench`` options to ``parser`` and set its handler."""
    parser.add_argument("--scheme", dest="schemes", nargs="+", metavar="S",
                        help="schemes to time (default: every available scheme)")
    parser.add_argument("--sizes", nargs="+", type=_positive_int, metavar="N",
                        help="vector sizes (default: 8 64 256, or 8 64 with --quick)")
    parser.add_argument("--ops", nargs="+", choices=OP_NAMES, metavar="OP",
                        help=f"only these ops (of: {', '.join(OP_NAMES)})")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and a short time budget per op (well under two minutes)")
    parser.add_argument("--json", dest="json_path", metavar="FILE",
                        help="write a header and one record per (scheme, op, size) to FILE")
    parser.add_argument("--plot", metavar="FILE.png", help="bar chart of the medians (log scale)")
    parser.add_argument("--peers", action="store_true",
                        help="also run the side-by-side comparison with peer libraries (source tree only)")
    parser.add_argument("--train", action="store_true",
                        help="time encrypted-weight training instead (the sentiment network on synthetic reviews, "
                             "per scheme and batch size, with the key service in a process of its own)")
    parser.add_argument("--batch-sizes", nargs="+", type=_positive_int, default=[1, 8], metavar="B",
                        help="with --train: reviews per step (default 1 8)")
    parser.add_argument("--train-seconds", type=float, default=None, metavar="S",
                        help="with --train: time budget per scheme and batch size (default 20, or 5 with --quick)")
    parser.add_argument("--in-process", action="store_true",
                        help="with --train: keep the key holder in this process (no round trip)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(func=run_command)
    return parser


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``bench`` on the dispatcher's subparsers."""
    parser = subparsers.add_parser("bench", help="time the scheme operations",
                                   description="Time every op each installed scheme supports.")
    return configure(parser)


def _kernels_line() -> str:
    """The native code paths the figures were taken with (the JSON header has them too)."""
    paths = he_core.kernel_paths()
    return f"kernels: {paths['cpu_path'] or 'not built'}, vector path {paths['vector'] or '-'}"


def _usage_error(message: str) -> int:
    print(f"henn bench: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run_command(args: argparse.Namespace) -> int:
    """Run the benchmark described by parsed arguments; returns the exit code."""
    available = he_core.available_schemes()
    unknown = [s for s in args.schemes or () if s not in available]
    if unknown:
        return _usage_error(f"unknown scheme(s) {', '.join(unknown)}; available: {', '.join(available)}")
    if args.plot and not args.plot.lower().endswith(".png"):
        return _usage_error(f"--plot needs a .png file name, got {args.plot!r}")

    def progress(rec: runner.Record) -> None:
        if not args.quiet:
            what = report.format_seconds(rec.median_s) if rec.status == "ok" else rec.status
            print(f"  {rec.scheme:<6} {rec.op:<10} size {rec.size:<4} {what}", file=sys.stderr, flush=True)

    if args.train:
        return _run_training(args)
    if args.in_process or args.train_seconds is not None:
        return _usage_error("--in-process and --train-seconds go with --train")
    start = time.perf_counter()
    records = runner.run(args.schemes, args.sizes, quick=args.quick, ops=args.ops, progress=progress)
    wall = time.perf_counter() - start
    print(report.table(records, show_skipped=True))
    print(f"\n{sum(r.status == 'ok' for r in records)} timings in {wall:.1f} s ({_kernels_line()})")
    if args.json_path:
        report.write_json(args.json_path, records, quick=bool(args.quick), wall_s=round(wall, 3),
                          command=" ".join(sys.argv))
    if args.plot and any(r.status == "ok" for r in records):
        report.plot(args.plot, records)
    status = EXIT_FAILED if any(r.status == "error" for r in records) else EXIT_OK
    if args.peers:
        status = max(status, _run_peers(args.quick))
    return status


def _run_training(args: argparse.Namespace) -> int:
    """``henn bench --train``: reviews/s and refresh rounds per review (see :mod:`henn.bench.training`)."""
    from ..bench import training

    if args.ops or args.sizes or args.plot or args.peers:
        return _usage_error("--train times training: --ops, --sizes, --plot and --peers go with the op timings")
    seconds = args.train_seconds if args.train_seconds is not None else (5.0 if args.quick else 20.0)
    if not seconds > 0:
        return _usage_error(f"--train-seconds must be positive, got {seconds}")

    def progress(rec: training.TrainRecord) -> None:
        if not args.quiet:
            what = f"{rec.reviews_per_s:,.0f} reviews/s" if rec.status == "ok" else rec.status
            print(f"  {rec.scheme:<6} batch {rec.batch_size:<4} {what}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    records = training.run(args.schemes or he_core.available_schemes(), args.batch_sizes, seconds=seconds,
                           in_process=args.in_process, progress=progress)
    wall = time.perf_counter() - start
    print(training.table(records))
    print(f"\n{sum(r.status == 'ok' for r in records)} training runs in {wall:.1f} s ({_kernels_line()})")
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as fh:
            json.dump({"header": report.header(kind="train", wall_s=round(wall, 3), command=" ".join(sys.argv)),
                       "records": [r.to_dict() for r in records]}, fh, indent=1)
    return EXIT_FAILED if any(r.status == "error" for r in records) else EXIT_OK


def _run_peers(quick: bool) -> int:
    """Run the peer comparison, a program of the source tree (``python -m benchmarks.peers``).

    It is started as a separate program, not imported: ``benchmarks/`` is not part of
    the installed package, and henn must not depend on it.
    """
    command = [sys.executable, "-m", "benchmarks.peers", "all"] + (["--quick"] if quick else [])
    print()
    status = subprocess.run(command, check=False).returncode
    if status != 0:
        print(f"henn bench: the peer comparison ({' '.join(command[1:])}) exited with status {status}; it "
              "lives in the source tree's benchmarks/peers: run it from the repository root", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m henn.bench``)."""
    parser = configure(argparse.ArgumentParser(prog="henn bench", description=__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    return args.func(args)
