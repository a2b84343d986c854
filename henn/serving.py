"""Encrypted inference over a socket: the server's loop and the client's calls.

The transport is the key service's (:mod:`henn.keyservice.transport`): a Unix socket
in a private directory (the peer's uid checked) or TCP with mutual TLS. Frames carry
the project's file format only (no pickle). One exchange:

1. ``HELLO`` -> ``OK`` + the bundle's client information (JSON; no weights);
2. ``KEYS`` + the client's public keys -> ``OK`` + the key id;
3. ``QUERY`` + count (u32) + one encrypted batch -> ``OK`` + the sanitised answer;
4. ``BYE``.

Errors come back as ``ERROR`` + a message; the connection stays usable after a
refused query (the refusal is about the query, not the stream).
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

import he_core

from .deploy import DeployError, InferenceClient, InferenceServer, ServerBundle
from .keyservice.transport import BYE, ERROR, HELLO, OK, Connection, KeyServiceError, connect, listen

KEYS, QUERY = 20, 21
#: A client silent this long between frames is dropped (clients are served one at a time).
SESSION_IDLE_SECONDS = 30.0
#: The longest one client session may last.
SESSION_LIFETIME_SECONDS = 1800.0
#: Client sessions served at once (more wait for a free one); evaluations still run one at a time.
MAX_SESSIONS = 8
_COUNT = struct.Struct("<I")
log = logging.getLogger("henn.serving")


def frame_limit(bundle: ServerBundle) -> int:
    """Largest frame the server accepts: a batch query with room for the format's headers."""
    scheme = he_core.get_scheme(bundle.scheme, bundle.params) if bundle.params is not None \
        else he_core.get_scheme(bundle.scheme)
    scheme.keygen(bundle.requirements())
    probe = scheme.encrypt(np.zeros(bundle.query_shape(bundle.batch)))
    keys = len(he_core.serialization.dumps(scheme.public_keys))
    return max(len(he_core.serialization.dumps(probe)), keys) + (1 << 20)


def serve(bundle: ServerBundle, address: str, *, tls_dir: str | None = None, connections: int | None = None,
          allow_insecure: bool = False, on_ready: Callable[[str], None] | None = None,
          state: Path | None = None) -> InferenceServer:
    """Answer clients at ``address`` until interrupted (or after ``connections`` clients).

    Args:
        state: a file keeping the count of answered batches across restarts and across
            the processes that answer for the bundle (an :class:`AnswerLedger`: each
            query is reserved there before it is answered; the answers' flooding is
            sized for the bundle's total, not per run).

    Returns:
        The :class:`~henn.deploy.InferenceServer` (its counts), when the loop ends.
    """
    ledger = None if state is None else AnswerLedger(state)
    before = 0 if ledger is None else ledger.count()
    server = InferenceServer(bundle, allow_insecure=allow_insecure, answered_before=before)
    sessions = server if ledger is None else Reserving(server, ledger)
    info = json.dumps(bundle.client_info()).encode()
    lock = threading.Lock()  # one evaluation at a time; sessions wait for frames concurrently
    served, running = 0, set()
    with listen(address, tls_dir=tls_dir, max_bytes=frame_limit(bundle), idle_seconds=SESSION_IDLE_SECONDS,
                lifetime_seconds=SESSION_LIFETIME_SECONDS) as listener, \
            ThreadPoolExecutor(max_workers=MAX_SESSIONS, thread_name_prefix="henn-serve") as pool:
        if on_ready is not None:
            on_ready(str(address))
        while connections is None or served < connections:
            conn = listener.accept(timeout=1.0)
            if conn is None:
                continue
            served += 1
            running.add(pool.submit(_run_session, conn, sessions, info, lock))
            running = {f for f in running if not f.done()}
        wait(running)
    return server


def _run_session(conn: Connection, server: InferenceServer, info: bytes, lock: threading.Lock) -> None:
    with conn:
        _session(conn, server, info, lock)


def read_answer_count(state: Path | None) -> int:
    """Batches a bundle answered in earlier runs, from its state file (0 without one).

    Raises:
        DeployError: the file exists but holds no count (it must not be reset silently).
    """
    if state is None or not state.exists():
        return 0
    try:
        count = json.loads(state.read_text())["answered"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DeployError(f"cannot read the answer count in {state}: {exc}; it must not be reset silently") from None
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise DeployError(f"cannot read the answer count in {state}: not a count")
    return count


def write_answer_count(state: Path | None, count: int) -> None:
    """Record a bundle's answered batches in its state file, atomically (nothing without a file).

    Unlocked: a process that answers uses :meth:`AnswerLedger.reserve`, which calls this
    under the ledger's lock.
    """
    if state is not None:
        tmp = state.with_name(f"{state.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"answered": count}))
        tmp.replace(state)


class Reserving:
    """An :class:`~henn.deploy.InferenceServer` whose every answer is first reserved in an :class:`AnswerLedger`.

    The reservation comes after the query was read and before it is evaluated: other
    processes may answer for the same bundle, and the ledger is the one count.
    """

    def __init__(self, server: InferenceServer, ledger: "AnswerLedger"):
        self._server, self._ledger = server, ledger

    def answer(self, query: Any, count: int) -> Any:
        self._ledger.reserve(1, self._server.bundle.queries_per_key)
        return self._server.answer(query, count)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class AnswerLedger:
    """A bundle's answered batches, shared by every process that answers for it (``serve``, ``predict --cluster``).

    The count lives in the state file; each change holds an exclusive ``flock`` on
    ``STATE.lock`` while it re-reads the count, checks the budget and writes the new
    count atomically. Answers are reserved before they are computed: a process that
    dies after reserving leaves the count too high, never too low.

    Args:
        state: the state file (``BUNDLE.answered`` by default in the CLI).
    """

    def __init__(self, state: Path):
        self.state = Path(state)
        self.lock_path = self.state.with_name(self.state.name + ".lock")

    def count(self) -> int:
        """Batches reserved so far, by every process."""
        with self._locked():
            return read_answer_count(self.state)

    def reserve(self, batches: int, limit: int) -> int:
        """Count ``batches`` more answers before they are given.

        Args:
            batches: answers about to be computed.
            limit: the bundle's ``queries_per_key``.

        Returns:
            The count before this reservation.

        Raises:
            DeployError: the reservation would pass ``limit`` (nothing is reserved).
        """
        if isinstance(batches, bool) or not isinstance(batches, int) or batches < 0:
            raise DeployError(f"cannot reserve answers: expected a count, got {batches!r}")
        with self._locked():
            before = read_answer_count(self.state)
            if before + batches > limit:
                raise DeployError(f"cannot answer: {batches} more batches would pass the {limit} the answers' flooding "
                                  f"is sized for ({before} answered, {self.state}); the owner must issue a new bundle")
            write_answer_count(self.state, before + batches)
        return before

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


def _session(conn: Connection, server: InferenceServer, info: bytes, lock: threading.Lock) -> None:
    """Serve one client until it says BYE, hangs up, stalls, or breaks the framing: never the whole server."""
    while True:
        try:
            frame = conn.recv()
            if frame is None or frame[0] == BYE:
                return
            op, payload = frame
            try:
                with lock:
                    status, reply = OK, _handle(server, op, payload, info)
            except (he_core.HEError, ValueError, TypeError) as exc:
                status, reply = ERROR, str(exc).encode()[:4096]
            except Exception as exc:  # noqa: BLE001 - a query must never take the server down
                log.exception("query from %s failed", conn.peer)
                status, reply = ERROR, f"cannot answer: {type(exc).__name__} while evaluating".encode()
            conn.send(status, reply)
        except KeyServiceError as exc:
            log.warning("dropping %s: %s", conn.peer, exc)
            return


def _handle(server: InferenceServer, op: int, payload: bytes, info: bytes) -> bytes:
    if op == HELLO:
        return info
    if op == KEYS:
        return server.register(payload).encode()
    if op == QUERY:
        if len(payload) < _COUNT.size:
            raise DeployError("cannot answer: a query frame without its count")
        (count,) = _COUNT.unpack_from(payload)
        query = he_core.serialization.loads(payload[_COUNT.size:], expect_kind="ciphertext",
                                            allow_insecure=server.allow_insecure)
        return he_core.serialization.dumps(server.answer(query, int(count)))
    raise DeployError(f"cannot answer: unknown operation {op}")


@dataclasses.dataclass
class PredictReport:
    """What one :func:`predict_remote` run cost.

    Attributes:
        outputs: ``(n, outputs)`` decrypted answers.
        seconds_keygen, seconds_total: the client's key generation; the whole run.
        batches: encrypted batches sent.
        key_bytes, query_bytes, answer_bytes: bytes of keys, queries and answers on the wire.
        seconds_per_batch: round-trip time of each batch (encrypt, send, evaluate, decrypt).
    """

    outputs: np.ndarray
    seconds_keygen: float
    seconds_total: float
    batches: int
    key_bytes: int
    query_bytes: int
    answer_bytes: int
    seconds_per_batch: list[float]

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.pop("outputs")
        out["rows"] = int(self.outputs.shape[0])
        return out


def predict_remote(address: str, X: Any, *, tls_dir: str | None = None, allow_insecure: bool = False,
                   timeout: float = 600.0) -> PredictReport:
    """Encrypt ``X``, have the server at ``address`` evaluate it, decrypt here.

    Raises:
        KeyServiceError: the server is unreachable or not who it should be.
        DeployError: the server refused (its message), or the data do not fit the model.
    """
    start = time.perf_counter()
    with connect(address, tls_dir=tls_dir, timeout=min(timeout, 60.0), idle_seconds=timeout,
                 max_bytes=1 << 31) as conn:
        info = json.loads(_call(conn, HELLO, b""))
        t0 = time.perf_counter()
        client = InferenceClient(info)
        keygen = time.perf_counter() - t0
        if client.scheme.params.security_bits == 0 and not allow_insecure:
            raise DeployError(f"cannot predict: the server's {client.scheme.name} parameters give no security; pass "
                              "allow_insecure=True (--allow-insecure) for tests")
        keys = client.public_bytes()
        _call(conn, KEYS, keys)
        answers, rounds, sent, received = [], [], 0, 0
        queries = client.encrypt(X)
        for query in queries:
            t1 = time.perf_counter()
            payload = _COUNT.pack(query.count) + he_core.serialization.dumps(query.ciphertext)
            answers.append(_call(conn, QUERY, payload))
            rounds.append(time.perf_counter() - t1)
            sent, received = sent + len(payload), received + len(answers[-1])
        conn.send(BYE)
    # Decrypted only now, the session closed: whether an answer decrypts depends on the key, and the
    # server must not see the client react to it.
    outputs = [client.decrypt(he_core.serialization.loads(a, expect_kind="ciphertext", allow_insecure=allow_insecure),
                              q.rows) for a, q in zip(answers, queries)]
    return PredictReport(np.vstack(outputs), keygen, time.perf_counter() - start, len(rounds), len(keys), sent,
                         received, rounds)


def _call(conn: Connection, op: int, payload: bytes) -> bytes:
    conn.send(op, payload)
    frame = conn.recv()
    if frame is None:
        raise KeyServiceError("the server closed the connection")
    status, body = frame
    if status == ERROR:
        raise DeployError(f"the server refused: {body.decode(errors='replace')}")
    if status != OK:
        raise KeyServiceError(f"unexpected answer {status} from the server")
    return body
