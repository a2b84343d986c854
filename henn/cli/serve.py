"""``henn serve`` and ``henn predict``: inference on encrypted data across processes.

* ``henn serve --bundle FILE --listen unix:PATH|tls://HOST:PORT [--tls-dir DIR]``: the
  server. It reads the owner's bundle (circuit, parameters, weights in the clear) and
  answers encrypted queries; it never holds a secret key.
* ``henn predict --server ADDR --data X.csv --out Y.csv [--tls-dir DIR]``: the client.
  It makes its own keys (only the evaluation key the circuit needs), encrypts the rows
  of ``X.csv`` (numbers, an optional header), sends them, decrypts the answers and
  writes one row of outputs per query plus the index of the largest output; latency
  and bytes in both directions go to stderr (``--json`` for a machine-readable line).
* ``henn predict --bundle FILE --cluster local|ADDRESS [--workers N] --data X.csv --out Y.csv``:
  the same output, the batches answered on a Dask cluster's workers
  (:mod:`henn.distributed`; a local cluster on loopback, or ``tls://HOST:PORT`` with
  Dask's TLS configuration or ``--tls-ca/--tls-cert/--tls-key``). This process keeps
  the client's secret key and never talks to Dask: a child process runs the cluster's
  client and passes ciphertexts back as bytes. The batches are reserved in the bundle's
  answer ledger (``--state``, shared with ``henn serve``) before they are sent; the
  workers get the bundle, the public keys and ciphertexts.

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

from ..deploy import ServerBundle, check_security
from ..serving import AnswerLedger, predict_remote, serve
from .common import guarded, positive_int


def _serve(args: argparse.Namespace) -> int:
    bundle = ServerBundle.from_bytes(Path(args.bundle).read_bytes())
    check_security(bundle, args.allow_insecure)  # before anything listens
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


def _check_predict_usage(args: argparse.Namespace) -> None:
    """Usage errors of ``henn predict`` that argparse cannot express (exit 2)."""
    cluster_only = [name for name, value in (("--workers", args.workers), ("--batch-rows", args.batch_rows),
                                              ("--state", args.state), ("--tls-ca", args.tls_ca),
                                              ("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key))
                    if value is not None]
    if args.bundle is not None and args.cluster is None:
        args.parser.error("--bundle needs --cluster local|ADDRESS (a server is reached with --server)")
    if args.cluster is not None and args.bundle is None:
        args.parser.error("--cluster needs --bundle FILE: the workers evaluate the owner's bundle")
    if args.cluster is None and cluster_only:
        args.parser.error(f"{', '.join(cluster_only)} apply with --cluster only")
    if args.cluster is not None:
        from ..distributed import ClusterError, resolve  # needs the distributed extra (dask, ~0.5 s to import)
        try:
            resolve(args.cluster)
        except ClusterError as exc:
            args.parser.error(f"--cluster: {exc}")
    if args.cluster is not None and args.tls_dir is not None:
        args.parser.error("--tls-dir is the henn server's TLS; a cluster takes --tls-ca/--tls-cert/--tls-key")
    if args.cluster is not None and args.cluster != "local" and args.workers is not None:
        args.parser.error("--workers applies to --cluster local; an existing cluster has its own workers")
    if args.cluster == "local" and args.workers is not None:
        from ..distributed import cores  # needs the distributed extra (dask, ~0.5 s to import)
        if args.workers > cores():
            args.parser.error(f"--workers {args.workers}: a local cluster runs one single-threaded worker per core at "
                              f"most ({cores()} here)")
    tls = [args.tls_ca, args.tls_cert, args.tls_key]
    if any(v is not None for v in tls) and not (args.cluster or "").startswith("tls://"):
        args.parser.error("--tls-ca/--tls-cert/--tls-key apply to a tls:// cluster")
    if any(v is not None for v in tls) and (args.tls_ca is None or args.tls_cert is None):
        args.parser.error("a tls:// cluster needs both --tls-ca and --tls-cert (and --tls-key unless the "
                          "certificate file holds the key)")


def _predict_on_cluster(args: argparse.Namespace, X: np.ndarray):
    from ..distributed import ClusterProcess, predict_on_cluster  # needs the distributed extra (dask, ~0.5 s to import)
    from ..distributed.isolation import protect_memory

    bundle = ServerBundle.from_bytes(Path(args.bundle).read_bytes())
    check_security(bundle, args.allow_insecure)  # before a cluster is started
    ledger = AnswerLedger(args.state or args.bundle.with_name(args.bundle.name + ".answered"))
    security = None
    if args.tls_ca is not None:
        from distributed.security import Security  # dask's: the distributed extra
        security = Security(tls_ca_file=str(args.tls_ca), tls_client_cert=str(args.tls_cert),
                            tls_client_key=None if args.tls_key is None else str(args.tls_key),
                            require_encryption=True)
    # the cluster's client runs in a child process: this one keeps the secret key, reads bytes only, and is not
    # readable by the child's ptrace or /proc/PID/mem (unless the user is root)
    protect_memory()
    with ClusterProcess(bundle, args.cluster, workers=args.workers, security=security,
                        allow_insecure=args.allow_insecure, answered_before=ledger.count()) as cluster:
        report = predict_on_cluster(cluster, X, batch_rows=args.batch_rows, ledger=ledger)
    print(f"predict: {len(X)} rows in {report.batches} batch(es) on {report.workers} worker(s) "
          f"({report.threads} threads): encrypt {report.seconds_encrypt:.2f} s, evaluate {report.seconds_evaluate:.2f} s, "
          f"keys {report.key_bytes / 1e6:.1f} MB, queries {report.query_bytes / 1e6:.1f} MB, answers "
          f"{report.answer_bytes / 1e6:.1f} MB -> {args.out}", file=sys.stderr)
    return report


def _write_outputs(path: Path, out: np.ndarray) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"output{j}" for j in range(out.shape[1])] + ["argmax"])
        for row in out:
            writer.writerow([repr(float(v)) for v in row] + [int(np.argmax(row))])


def _predict(args: argparse.Namespace) -> int:
    _check_predict_usage(args)
    X = read_rows(args.data)
    if args.cluster is not None:
        report = _predict_on_cluster(args, X)
        _write_outputs(args.out, report.outputs)
        if args.json:
            print(json.dumps(report.to_dict()))
        return 0
    report = predict_remote(args.server, X, tls_dir=args.tls_dir, allow_insecure=args.allow_insecure)
    _write_outputs(args.out, report.outputs)
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

    p = subparsers.add_parser("predict", help="client: encrypt rows, have a server (or a Dask cluster) evaluate "
                                              "them, decrypt here")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", help="the server's address (unix:PATH or tls://HOST:PORT)")
    where.add_argument("--bundle", type=Path, help="the owner's bundle, evaluated on --cluster")
    p.add_argument("--cluster", metavar="local|ADDRESS",
                   help="a Dask cluster: 'local' (loopback over TLS, one worker per core) or tls://HOST:PORT (tcp:// "
                        "to loopback only: every local user can join such a cluster)")
    p.add_argument("--workers", type=positive_int, help="workers of --cluster local (default: one per core)")
    p.add_argument("--batch-rows", type=positive_int,
                   help="rows per encrypted batch on a cluster (default the bundle's batch; fewer spread small "
                        "inputs over the workers and spend more of the bundle's answer budget)")
    p.add_argument("--state", type=Path, help="file counting the bundle's answered batches (default: "
                                              "BUNDLE.answered, as henn serve)")
    p.add_argument("--tls-ca", type=Path, help="CA certificate of a tls:// cluster (default: Dask's configuration)")
    p.add_argument("--tls-cert", type=Path, help="client certificate for a tls:// cluster")
    p.add_argument("--tls-key", type=Path, help="client key for a tls:// cluster")
    p.add_argument("--data", required=True, type=Path, help="CSV of feature rows (optional header)")
    p.add_argument("--out", required=True, type=Path, help="CSV to write: the outputs and their argmax per row")
    p.add_argument("--tls-dir", type=Path, help="client certificates for tls://")
    p.add_argument("--allow-insecure", action="store_true", help="accept an insecure scheme (tests only)")
    p.add_argument("--json", action="store_true", help="also print the timings and bytes as JSON")
    p.set_defaults(func=guarded(_predict, "predict"), parser=p)
