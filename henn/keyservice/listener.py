"""A listening socket that authenticates its peers concurrently before handing out connections.

Made by :func:`henn.keyservice.transport.listen` for either kind of address (the
``admit`` callback is the kind's authentication: a Unix peer's uid, a TLS handshake).
"""
from __future__ import annotations

import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from .endpoints import Address
from .framing import Connection, PeerRejected, TransportError, os_reason
from .unix import UnixBinding

if TYPE_CHECKING:
    from typing import Self  # annotations only: Python 3.10 has no typing.Self

log = logging.getLogger("henn.keyservice")
#: Peers authenticated at once (each for at most ``handshake_seconds``): silent peers then
#: delay nobody until this many of them hold a handshake open.
MAX_PENDING_ADMISSIONS = 32
_POLL_SECONDS = 0.05  # how often accept() looks at handshakes under way


class Listener:
    """A listening socket that hands out authenticated :class:`Connection` objects. Made by :func:`~henn.keyservice.transport.listen`.

    Args:
        sock: the bound, listening socket; owned from now on.
        address: where it listens.
        admit: authenticates a raw accepted socket and wraps it (raises PeerRejected
            or OSError to turn the peer away).
        unix: the Unix binding whose path :meth:`close` removes, if any.
        on_reject: called with the reason for each rejected peer (default: a log warning).

    Attributes:
        address: where it listens (for ``tls://HOST:0``, the port actually taken).
        rejected: peers turned away so far (wrong uid, failed TLS handshake).
        rejections: the latest reasons (at most 32), newest last.
    """

    def __init__(self, sock: socket.socket, address: Address, *, admit: Callable[[socket.socket], Connection],
                 unix: UnixBinding | None = None, on_reject: Callable[[str], None] | None = None):
        self._sock: socket.socket | None = sock
        self._admit, self._unix = admit, unix
        self._on_reject = on_reject or (lambda reason: log.warning("key service: %s", reason))
        self.address = address
        self.rejected = 0
        self.rejections: deque[str] = deque(maxlen=32)
        # Peers are authenticated in worker threads, so one that stays silent through its
        # handshake does not hold up the next; accept() hands out whichever finishes first.
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []

    def accept(self, timeout: float | None = None) -> Connection | None:
        """The next authenticated connection, or ``None`` if none came within ``timeout`` seconds.

        Peers are authenticated concurrently (at most :data:`MAX_PENDING_ADMISSIONS` at
        once; more are turned away at once). Rejected peers are closed, counted in
        :attr:`rejected`, reported to ``on_reject``, and waiting goes on: a stream of bad
        or silent peers cannot make the caller's loop fail or stall a good peer.

        Raises:
            TransportError: the listener is closed or the system refused to accept.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._sock is None:
                raise TransportError(f"cannot accept on {self.address}: the listener is closed")
            admitted = self._collect()
            if admitted is not None:
                return admitted
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            wait = _POLL_SECONDS if self._pending else left
            self._sock.settimeout(wait if left is None or wait is None else min(wait, left))
            try:
                raw, _ = self._sock.accept()
            except TimeoutError:
                continue
            except (ConnectionAbortedError, InterruptedError):
                continue  # the peer gave up while queued
            except OSError as exc:
                state = "the listener is closed" if self._sock is None else os_reason(exc)  # closed by another thread
                raise TransportError(f"cannot accept on {self.address}: {state}") from None
            if len(self._pending) >= MAX_PENDING_ADMISSIONS:
                raw.close()
                self._reject(f"turned a peer away: {MAX_PENDING_ADMISSIONS} handshakes are under way")
                continue
            if self._pool is None:
                self._pool = ThreadPoolExecutor(MAX_PENDING_ADMISSIONS, thread_name_prefix="henn-admit")
            self._pending.append(self._pool.submit(self._admit_or_close, raw))

    def _admit_or_close(self, raw: socket.socket) -> Connection:
        try:
            return self._admit(raw)
        except BaseException:
            raw.close()
            raise

    def _collect(self) -> Connection | None:
        """The first finished admission that succeeded (rejected ones are reported and dropped)."""
        for future in [f for f in self._pending if f.done()]:
            self._pending.remove(future)
            try:
                return future.result()
            except (PeerRejected, OSError) as exc:  # OSError: the peer vanished before it was checked
                self._reject(str(exc) if isinstance(exc, PeerRejected) else
                             f"a peer left before it was checked: {exc}")
        return None

    def _reject(self, reason: str) -> None:
        self.rejected += 1
        self.rejections.append(reason)
        self._on_reject(reason)

    def close(self) -> None:
        """Stop listening; a Unix socket path is removed only if it is still the one bound here."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        pending, self._pending = self._pending, []
        for future in pending:  # admitted but never handed out: close them (the rest finish by their deadline)
            future.add_done_callback(_close_result)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        try:
            if self._unix is not None:
                self._unix.release()
        finally:
            sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_result(future: Future) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()
