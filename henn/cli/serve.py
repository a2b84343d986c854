"""``henn serve`` and ``henn predict``: inference on encrypted data across processes.

* ``henn serve --bundle FILE --listen unix:PATH|tls://HOST:PORT [--tls-dir DIR]``: the
  server. It reads the owner's bundle (circuit, parameters, weights in the clear) and
  answers encrypted queries; it never holds a secret key.
* ``henn predict --server ADDR --data X.csv --out Y.csv [--tls-dir DIR]``: the client.
  It makes its own keys (only the evaluation key the circuit needs), encrypts the rows
  of ``X.csv`` (numbers, an optional header), sends them, decrypts the answers and
  writes one row of outputs per query plus the index of the largest output; latency
  and bytes in both directions go to stderr (``--json`` for a machine-readable line).

Exit status: 0, 1 with one ``henn <command>: error: ...`` line, 2 for usage errors.
"""
from __future__ import annotations

import argparse
import csv
import json
import signal
import sys
from pathlib import Path

import numpy as np

from ..deploy import ServerBundle
from ..serving import predict_remote, serve
from .common import guarded


def _serve(args: argparse.Namespace) -> int:
    bundle = ServerBundle.from_bytes(Path(args.bundle).read_bytes())
    if bundle.params is not None and bundle.params.security_bits == 0 and not args.allow_insecure:
        raise ValueError(f"the bundle's {bundle.scheme} parameters give no security; pass --allow-insecure (tests)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    def ready(address: str) -> None:
        print(f"serve: {bundle.scheme} circuit {bundle.circuit.n_features} -> {bundle.circuit.n_outputs}, batches of "
              f"{bundle.batch}, listening on {address}", flush=True)

    state = args.state or args.bundle.with_name(args.bundle.name + ".answered")
    server = serve(bundle, args.listen, tls_dir=args.tls_dir, connections=args.connections,
                   allow_insecure=args.allow_insecure, on_ready=ready, state=state)
    print(f"serve: done ({server.answered()} batches answered)", flush=True)
    return 0


def read_rows(path: Path) -> np.ndarray:
    """Numeric rows of a CSV file; a first line that is not numeric is taken as a header."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if rows and not _numeric(rows[0]):
        rows = rows[1:]
    if not rows or not all(_numeric(r) for r in rows):
        raise ValueError(f"{path}: expected rows of numbers (and an optional header)")
    return np.array([[float(v) for v in r] for r in rows])


def _numeric(row: list[str]) -> bool:
    try:
        [float(v) for v in row]
    except ValueError:
        return False
    return True


def _predict(args: argparse.Namespace) -> int:
    X = read_rows(args.data)
    report = predict_remote(args.server, X, tls_dir=args.tls_dir, allow_insecure=args.allow_insecure)
    out = report.outputs
    with open(args.out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"output{j}" for j in range(out.shape[1])] + ["argmax"])
        for row in out:
            writer.writerow([repr(float(v)) for v in row] + [int(np.argmax(row))])
    median = float(np.median(report.seconds_per_batch))
    print(f"predict: {len(X)} rows in {report.batches} batch(es), {median:.3f} s per batch (median), keys "
          f"{report.key_bytes / 1e6:.1f} MB, queries {report.query_bytes / 1e6:.1f} MB, answers "
          f"{report.answer_bytes / 1e6:.1f} MB, key generation {report.seconds_keygen:.2f} s -> {args.out}",
          file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict()))
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``henn serve`` and ``henn predict``."""
    p = subparsers.add_parser("serve", help="server: answer encrypted queries with an owner's bundle (no secret key)")
    p.add_argument("--bundle", required=True, type=Path, help="the owner's server bundle file")
    p.add_argument("--listen", required=True, help="unix:PATH (same user) or tls://HOST:PORT (mutual TLS)")
    p.add_argument("--tls-dir", type=Path, help="server certificates for tls:// (henn.keyservice.tls.make_pki)")
    p.add_argument("--connections", type=int, help="stop after this many clients (default: serve until stopped)")
    p.add_argument("--state", type=Path, help="file counting answered batches across restarts "
                                              "(default: BUNDLE.answered beside the bundle)")
    p.add_argument("--allow-insecure", action="store_true", help="serve an insecure scheme (tests only)")
    p.set_defaults(func=guarded(_serve, "serve"))

    p = subparsers.add_parser("predict", help="client: encrypt rows, have a server evaluate them, decrypt here")
    p.add_argument("--server", required=True, help="the server's address (unix:PATH or tls://HOST:PORT)")
    p.add_argument("--data", required=True, type=Path, help="CSV of feature rows (optional header)")
    p.add_argument("--out", required=True, type=Path, help="CSV to write: the outputs and their argmax per row")
    p.add_argument("--tls-dir", type=Path, help="client certificates for tls://")
    p.add_argument("--allow-insecure", action="store_true", help="accept an insecure scheme (tests only)")
    p.add_argument("--json", action="store_true", help="also print the timings and bytes as JSON")
    p.set_defaults(func=guarded(_predict, "predict"))
