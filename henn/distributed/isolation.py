"""The key holder never talks to Dask: a child process runs the cluster's client, the parent keeps the secret key.

Dask's wire protocol unpickles parts of the messages a client receives whatever
deserializers the client names (a worker's error travels that way), so anyone who
controls a worker, the scheduler, or a tenant's plugin on a shared cluster runs code in
the process that holds a Dask client. :class:`ClusterProcess` therefore starts a fresh
process (``spawn``: nothing of the parent's memory is copied) that owns the
:class:`~henn.distributed.cluster.Cluster` and the
:class:`~henn.distributed.inference.ClusterServer`, and holds no secret key. The parent
keeps the client's :class:`~henn.deploy.InferenceClient`; the two exchange over a pipe:

* parent -> child: a JSON header (the operation, the batches' counts) and the public
  keys and queries as :func:`he_core.serialization.dumps` bytes;
* child -> parent: a JSON header (the answer count, the workers, or a named error) and
  the answers as the same format's bytes, read with ``recv_bytes`` (never ``recv``,
  which unpickles) under a size limit, loaded with ``expect_kind="ciphertext"`` and
  checked to be under the client's key.

The child runs as the same user: code the cluster runs there could read the parent's
memory through ptrace or ``/proc/PID/mem`` unless the kernel forbids it, which
:func:`protect_memory` asks for (``henn predict --cluster`` calls it; root is not
stopped by it). What the child can still do is listed in docs/threat_model.md.
"""
from __future__ import annotations

import ctypes
import json
import multiprocessing
import multiprocessing.connection
import time
from typing import Any, Sequence

import dask
import numpy as np

import he_core
from he_core import Ciphertext, PublicKeys

from ..deploy import DeployError, InferenceClient, Query, ServerBundle, check_security
from . import wire
from .cluster import CONNECT_TIMEOUT, LOCAL, Cluster, ClusterError, ClusterUnreachableError, resolve, tls_security
from .inference import ClusterReport, ClusterServer

#: Seconds a child may take to start its cluster (a local one: a few seconds), beyond the connect timeout.
START_SECONDS = 180.0
#: Bytes of one JSON header on the pipe.
HEADER_LIMIT = 1 << 20
#: Errors the child may name; anything else arrives as a DeployError.
ERRORS = {"unreachable": ClusterUnreachableError, "cluster": ClusterError, "deploy": DeployError}
PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4


class ClusterProcess:
    """The server role on a cluster, run by a child process that holds no secret key; a context manager.

    Args:
        bundle: the owner's bundle (the workers evaluate it).
        spec: the cluster (see :func:`~henn.distributed.cluster.resolve`), checked here.
        workers, threads_per_worker, timeout: as for :class:`~henn.distributed.cluster.Cluster`.
        security: TLS files of a ``tls://`` scheduler (default: Dask's configuration, read here).
        allow_insecure: accept insecure parameter sets (tests and teaching only).
        answered_before: batches this bundle answered before, counted against its budget.

    Raises:
        DeployError: an insecure bundle without ``allow_insecure``.
        ClusterError: a bad address or worker count, missing TLS files.
        ClusterUnreachableError: the scheduler did not answer in time.
    """

    def __init__(self, bundle: ServerBundle, spec: str | None = LOCAL, *, workers: int | None = None,
                 threads_per_worker: int = 1, security: Any = None, timeout: float = CONNECT_TIMEOUT,
                 allow_insecure: bool = False, answered_before: int = 0):
        check_security(bundle, allow_insecure)
        address = resolve(spec)
        if address.startswith("tls://"):
            security = tls_security(security)  # the parent's Dask configuration, not the child's
        self.bundle, self.allow_insecure, self._answered = bundle, bool(allow_insecure), answered_before
        config = {"spec": address, "workers": workers, "threads_per_worker": threads_per_worker, "timeout": timeout,
                  "allow_insecure": self.allow_insecure, "answered_before": answered_before}
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe(duplex=True)
        self._process = context.Process(target=_child_main, name="henn-cluster", daemon=False,
                                        args=(child_end, config, bundle.to_bytes(), security, dask.config.config))
        self._process.start()
        child_end.close()  # the child's death then reads as the end of the pipe here
        try:
            header, _ = self._receive(timeout + START_SECONDS, 0)
        except BaseException:
            self._stop()
            raise
        self.address, self._workers = str(header.get("address")), _workers(header)

    def answer(self, public: PublicKeys, queries: Sequence[Query]) -> list[Ciphertext]:
        """The answers of ``queries``, in order, each loaded here and checked to be under ``public``'s key.

        Raises:
            DeployError: the child refused (its message), or an answer that is not a
                ciphertext of this client (anything the cluster side sends is checked).
            ClusterError: the cluster has no workers, or the child process died.
        """
        if not isinstance(public, PublicKeys):
            raise DeployError(f"cannot answer: expected the client's public keys, got {type(public).__name__}")
        queries = list(queries)
        if not all(isinstance(q, Query) and isinstance(q.ciphertext, Ciphertext) for q in queries):
            raise DeployError("cannot answer: expected henn.deploy.Query batches")
        sent = [he_core.serialization.dumps(q.ciphertext) for q in queries]
        self._send({"op": "answer", "counts": [q.count for q in queries]},
                   [he_core.serialization.dumps(public)] + sent)
        # an answer is no larger than its query times the outputs (a generous cap on what the child may send)
        limit = max(map(len, sent), default=0) * max(1, self.bundle.circuit.n_outputs) + (1 << 20)
        header, frames = self._receive(None, limit)
        if len(frames) != len(queries):
            raise DeployError(f"cannot answer: {len(frames)} answers came back for {len(queries)} batches")
        return [self._load(data, public, i) for i, data in enumerate(frames)]

    def answered(self) -> int:
        """Batches counted against the bundle's budget, earlier runs included (the child's count)."""
        return self._answered

    def workers(self) -> dict[str, int]:
        """Worker address -> its threads, as the scheduler sees them now."""
        self._send({"op": "workers"})
        return _workers(self._receive(CONNECT_TIMEOUT + 60, 0)[0])

    def close(self) -> None:
        """Ask the child to close its client and cluster, then wait for it (killed if it does not stop)."""
        if self._process.is_alive():
            try:
                self._send({"op": "close"})
            except OSError:
                pass
        self._stop()

    def _stop(self) -> None:
        self._process.join(timeout=60)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()

    def _load(self, data: bytes, public: PublicKeys, i: int) -> Ciphertext:
        try:
            answer = he_core.serialization.loads(data, expect_kind="ciphertext", allow_insecure=self.allow_insecure)
        except he_core.HEError as exc:
            raise DeployError(f"cannot answer: the answer to batch {i} is not a ciphertext ({exc})") from None
        if answer.key_id != public.key_id:
            raise DeployError(f"cannot answer: the answer to batch {i} is not under the client's key")
        return answer

    def _send(self, header: dict, frames: Sequence[bytes] = ()) -> None:
        _send(self._conn, header, frames)

    def _receive(self, timeout: float | None, frame_limit: int) -> tuple[dict, list[bytes]]:
        """The child's next message (bytes only); its error raised as the named exception."""
        ready = multiprocessing.connection.wait([self._conn, self._process.sentinel], timeout)
        if self._conn not in ready:
            if not ready:
                raise ClusterUnreachableError(f"the cluster process did not answer within {timeout:g} s")
            raise ClusterError(f"the cluster process exited (status {self._process.exitcode})")
        try:
            header = json.loads(self._conn.recv_bytes(HEADER_LIMIT))
            count = header.get("frames") if isinstance(header, dict) else None
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 1 << 20:
                raise ValueError("a malformed header")
            frames = [self._conn.recv_bytes(frame_limit) for _ in range(count)]
        except (EOFError, OSError, ValueError) as exc:
            raise ClusterError(f"the cluster process broke the pipe: {type(exc).__name__}: {exc}") from None
        answered = header.get("answered")
        if isinstance(answered, int) and not isinstance(answered, bool) and answered >= self._answered:
            self._answered = answered
        if "error" in header:
            raise ERRORS.get(header["error"], DeployError)(str(header.get("message", "the cluster side failed"))[:4096])
        return header, frames

    def __enter__(self) -> "ClusterProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ClusterProcess({self.address!r}, pid {self._process.pid})"


def predict_on_cluster(cluster: ClusterProcess, X: Any, *, batch_rows: int | None = None,
                       ledger: Any = None) -> ClusterReport:
    """Encrypt ``X`` here, answer it on the cluster's workers, decrypt here.

    This process plays the client (its secret key is made here, after the cluster's
    process started, and never leaves it); the child process dispatches.

    Args:
        cluster: a :class:`ClusterProcess` (its bundle is the model).
        X: ``(n, features)`` rows.
        batch_rows: rows per encrypted batch (default the bundle's batch); fewer spread a
            small input over more workers, at the price of more batches of the budget.
        ledger: a :class:`henn.serving.AnswerLedger` shared with other processes that
            answer for the bundle: the batches are reserved there before dispatch.

    Returns:
        A :class:`~henn.distributed.inference.ClusterReport`.

    Raises:
        DeployError: the data do not fit the model, the budget is spent, or the server refused.
    """
    start = time.perf_counter()
    bundle = cluster.bundle
    X = np.asarray(X, dtype=np.float64)
    rows = bundle.batch if batch_rows is None else batch_rows
    if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= bundle.batch:
        raise DeployError(f"cannot predict: batch_rows must lie in 1..{bundle.batch}, got {batch_rows!r}")
    t0 = time.perf_counter()
    client = InferenceClient(bundle.client_info())
    t1 = time.perf_counter()
    if X.ndim != 2 or X.shape[0] == 0:
        raise DeployError(f"cannot predict: expected (n, {bundle.circuit.n_features}) rows, got {X.shape}")
    queries = [q for lo in range(0, X.shape[0], rows) for q in client.encrypt(X[lo:lo + rows])]
    t2 = time.perf_counter()
    if ledger is not None:
        ledger.reserve(len(queries), bundle.queries_per_key)
    answers = cluster.answer(client.public, queries)
    t3 = time.perf_counter()
    outputs = np.vstack([client.decrypt(a, q.rows) for a, q in zip(answers, queries)])
    t4 = time.perf_counter()
    threads = cluster.workers()
    size = he_core.serialization.dumps
    return ClusterReport(outputs, len(threads), sum(threads.values()), len(queries), t1 - t0, t2 - t1, t3 - t2,
                         t4 - t3, time.perf_counter() - start, len(size(client.public)),
                         sum(len(size(q.ciphertext)) for q in queries), sum(len(size(a)) for a in answers))


def protect_memory() -> bool:
    """Make this process non-dumpable (Linux ``prctl(PR_SET_DUMPABLE, 0)``): no core files, and processes of the
    same user without ``CAP_SYS_PTRACE`` (the cluster's child among them) can neither ptrace it nor read
    ``/proc/PID/mem``. Root, or a holder of ``CAP_SYS_PTRACE``, still can.

    Returns:
        Whether the setting took effect (False off Linux).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 and libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


# ---------------------------------------------------------------------------- both ends of the pipe
def _send(conn: Any, header: dict, frames: Sequence[bytes] = ()) -> None:
    conn.send_bytes(json.dumps({**header, "frames": len(frames)}).encode())
    for frame in frames:
        conn.send_bytes(frame)


def _workers(header: dict) -> dict[str, int]:
    workers = header.get("workers")
    if not isinstance(workers, dict) or not all(isinstance(k, str) and type(v) is int and v >= 1
                                                for k, v in workers.items()):
        raise ClusterError("cannot read the cluster process: a malformed list of workers")
    return workers


def _child_main(conn: Any, config: dict, bundle_bytes: bytes, security: Any, dask_config: dict) -> None:
    """(In the child.) Start the cluster and its server, then answer the parent until it says close."""
    # the parent's Dask configuration (dask.config.set included) is the child's
    dask.config.update(dask.config.config, dask_config, priority="new")
    try:
        cluster = Cluster(config["spec"], workers=config["workers"], threads_per_worker=config["threads_per_worker"],
                          security=security, timeout=config["timeout"])
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        _send(conn, _error(exc))
        return
    with cluster:
        try:
            server = ClusterServer(cluster, ServerBundle.from_bytes(bundle_bytes),
                                   allow_insecure=config["allow_insecure"], answered_before=config["answered_before"])
            _send(conn, {"address": cluster.client.scheduler.address, "workers": cluster.workers()})
        except BaseException as exc:  # noqa: BLE001
            _send(conn, _error(exc))
            return
        while True:
            try:
                header = json.loads(conn.recv_bytes())
                frames = [conn.recv_bytes() for _ in range(header["frames"])]
            except EOFError:  # the parent is gone
                return
            if header["op"] == "close":
                return
            try:
                if header["op"] == "workers":
                    _send(conn, {"workers": cluster.workers()})
                    continue
                public = wire.from_bytes(frames[0], "public_keys")
                queries = [Query(wire.from_bytes(f, "ciphertext"), count, count)
                           for f, count in zip(frames[1:], header["counts"])]
                answers = server.answer(public, queries)
                _send(conn, {"answered": server.answered()}, [wire.to_bytes(a) for a in answers])
            except Exception as exc:  # noqa: BLE001 - one refused request does not end the session
                _send(conn, {**_error(exc), "answered": server.answered()})


def _error(exc: BaseException) -> dict:
    kind = "unreachable" if isinstance(exc, ClusterUnreachableError) else \
        "cluster" if isinstance(exc, ClusterError) else "deploy"
    message = str(exc) if isinstance(exc, he_core.HEError) else f"cannot answer: {type(exc).__name__}: {exc}"
    return {"error": kind, "message": message}


__all__ = ["ClusterProcess", "HEADER_LIMIT", "START_SECONDS", "predict_on_cluster", "protect_memory"]
