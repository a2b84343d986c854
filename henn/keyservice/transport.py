"""The key service's transport: addresses, listening and connecting with an authenticated peer.

Two kinds of address, and nothing else (:func:`parse_endpoint`):

* ``unix:PATH`` or a bare path: a Unix socket in a private (0700) directory, whose
  peers' uids are read from the kernel (:mod:`.unix`);
* ``tls://HOST:PORT``: TCP with mutual TLS 1.3 (:mod:`.tls`). Plain TCP is refused:
  anyone on the host (or the network) could talk to the secret key's owner.

:func:`listen` and :func:`connect` hand out :class:`~.framing.Connection` objects only
after the peer is authenticated; the connection carries HKS2 frames with deadlines and
a size limit (:mod:`.framing`). What an attacker who can connect gets, and the bound on
it: a rejected peer costs one ``accept`` (Unix) or one handshake of at most
``handshake_seconds`` (TLS); an accepted one is bounded by the connection's limits.

The error hierarchy is defined in :mod:`.framing` (the bottom of the package) and
re-exported here, with everything the rest of the package imports from this module.
"""
from __future__ import annotations

import logging
import os
import re
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .framing import (
    DEFAULT_FRAME_SECONDS,
    DEFAULT_IDLE_SECONDS,
    DEFAULT_LIFETIME_SECONDS,
    DEFAULT_MAX_BYTES,
    HEADER_SIZE,
    MAGIC_V2,
    AddressError,
    AddressInUse,
    Connection,
    ConnectionExpired,
    FrameError,
    FrameTimeout,
    IdleTimeout,
    KeyServiceError,
    PeerRejected,
    TransportError,
    check_limits,
    os_reason,
)
from .unix import HAS_PEERCRED, UnixBinding, check_peer_uid, private_dir

if TYPE_CHECKING:
    from typing import Self  # annotations only: Python 3.10 has no typing.Self

__all__ = ["BYE", "DEFAULT_BACKLOG", "DEFAULT_FRAME_SECONDS", "DEFAULT_HANDSHAKE_SECONDS", "DEFAULT_IDLE_SECONDS",
           "DEFAULT_LIFETIME_SECONDS", "DEFAULT_MAX_BYTES", "ERROR", "HEADER_SIZE", "HELLO", "MAGIC_V2", "OK",
           "REENCRYPT", "Address", "AddressError", "AddressInUse", "Connection", "ConnectionExpired", "FrameError",
           "FrameTimeout", "IdleTimeout", "KeyServiceError", "Listener", "PeerRejected", "TransportError", "connect",
           "listen", "parse_endpoint"]

# The protocol's op numbers (:mod:`.protocol` imports them from here and adds RELEASE).
HELLO, REENCRYPT, BYE, OK, ERROR = 1, 2, 3, 4, 5
DEFAULT_HANDSHAKE_SECONDS = 10.0  # before authentication: keep what an anonymous peer can hold short
DEFAULT_BACKLOG = 8
#: Peers authenticated at once (each for at most ``handshake_seconds``): silent peers then
#: delay nobody until this many of them hold a handshake open.
MAX_PENDING_ADMISSIONS = 32
_POLL_SECONDS = 0.05  # how often accept() looks at handshakes under way
_SUN_PATH_MAX = 107 if sys.platform.startswith("linux") else 103
_FORMS = ("use tls://HOST:PORT (TCP with mutual TLS; see henn.keyservice.tls.make_pki) or a Unix socket: "
          "unix:/run/user/UID/henn/keys.sock or a bare path")
log = logging.getLogger("henn.keyservice")


# ---------------------------------------------------------------------------- addresses
@dataclass(frozen=True)
class Address:
    """A parsed key service address: ``kind`` ``"unix"`` (``path``) or ``"tls"`` (``host``, ``port``)."""

    kind: str
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        return f"tls://[{self.host}]:{self.port}" if ":" in self.host else f"tls://{self.host}:{self.port}"


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)
_HOST_PORT = re.compile(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^\[\]:/@\s]+):(\d{1,5})")


def parse_endpoint(address: str | os.PathLike | Address) -> Address:
    """``unix:PATH``, a bare path, or ``tls://HOST:PORT`` (``[v6]:PORT``) -> :class:`Address`.

    Port 0 is accepted here (a listener then takes a free port); :func:`connect` refuses it.

    Raises:
        AddressError: empty, a NUL byte, a path too long for a socket, or anything
            that looks like plain TCP (``HOST:PORT``, ``tcp://``, another scheme).
    """
    if isinstance(address, Address):
        return address
    text = os.fsdecode(address) if isinstance(address, os.PathLike) else str(address)
    if text.startswith("unix:"):
        return _unix_address(text[5:], text)
    scheme = _SCHEME.fullmatch(text)
    if scheme and scheme.group(1).lower() == "tls":
        return _tls_address(scheme.group(2), text)
    if scheme or ("/" not in text and ":" in text):
        raise AddressError(f"cannot use key service address {text!r}: TCP is offered only with mutual TLS; {_FORMS} "
                           "(a socket file whose name has a colon: write unix:NAME)")
    return _unix_address(text, text)


def _unix_address(path: str, text: str) -> Address:
    if not path:
        raise AddressError(f"cannot use an empty key service address {text!r}; {_FORMS}")
    if "\0" in path:  # also Linux's abstract namespace, which has no permissions at all
        raise AddressError(f"cannot use key service address {text!r}: a NUL byte in a socket path")
    size = len(os.fsencode(path))
    if size > _SUN_PATH_MAX:
        raise AddressError(f"cannot use key service address {text!r}: a socket path may have at most "
                           f"{_SUN_PATH_MAX} bytes, this one has {size}; use a shorter directory")
    return Address("unix", path=path)


def _tls_address(rest: str, text: str) -> Address:
    m = _HOST_PORT.fullmatch(rest)
    if not m:
        raise AddressError(f"cannot use key service address {text!r}: expected tls://HOST:PORT or tls://[IPv6]:PORT")
    host, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if int(port) > 65535:
        raise AddressError(f"cannot use key service address {text!r}: port must be 0 .. 65535")
    return Address("tls", host=host, port=int(port))


# ---------------------------------------------------------------------------- listening
class Listener:
    """A listening socket that hands out authenticated :class:`Connection` objects. Made by :func:`listen`.

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


def listen(address: str | os.PathLike | Address, *, tls_dir: str | os.PathLike | None = None,
           allowed_uids: Iterable[int] | None = None, backlog: int = DEFAULT_BACKLOG,
           max_bytes: int = DEFAULT_MAX_BYTES, frame_seconds: float = DEFAULT_FRAME_SECONDS,
           idle_seconds: float = DEFAULT_IDLE_SECONDS, lifetime_seconds: float = DEFAULT_LIFETIME_SECONDS,
           handshake_seconds: float = DEFAULT_HANDSHAKE_SECONDS,
           on_reject: Callable[[str], None] | None = None) -> Listener:
    """Listen on a Unix socket (peer uid checked) or ``tls://`` (client certificate checked).

    Args:
        address: see :func:`parse_endpoint`.
        tls_dir: the owner's PKI directory (:func:`~henn.keyservice.tls.make_pki`);
            required for ``tls://``, refused otherwise.
        allowed_uids: Unix only: uids allowed to connect (default: this process's
            effective uid only). Another user can only reach the socket through the
            0700 directory if it is root; for a trainer under another account use TLS.
        backlog: connections queued while one is served.
        max_bytes, frame_seconds, idle_seconds, lifetime_seconds: the limits every
            accepted :class:`Connection` gets.
        handshake_seconds: TLS only: total time a peer gets to authenticate.
        on_reject: called with the reason for each rejected peer (default: a log warning).

    Raises:
        AddressError: a refused address, or options that do not fit it.
        AddressInUse: a live service or a non-socket file is at the path.
        TransportError: an unsafe directory, or the bind failed.
        TLSSetupError: the TLS files cannot be used.
    """
    where = parse_endpoint(address)
    check_limits(max_bytes, frame_seconds, idle_seconds, lifetime_seconds, handshake_seconds)
    limits = {"max_bytes": max_bytes, "frame_seconds": frame_seconds, "idle_seconds": idle_seconds,
              "lifetime_seconds": lifetime_seconds}
    if where.kind == "tls":
        if allowed_uids is not None:
            raise AddressError(f"cannot listen on {where}: allowed_uids applies to Unix sockets; over TLS the client "
                               "certificate is the identity")
        from .tls import listen_tls

        return listen_tls(where, tls_dir, backlog=backlog, handshake_seconds=handshake_seconds, limits=limits,
                          on_reject=on_reject)
    if tls_dir is not None:
        raise AddressError(f"cannot listen on {where}: tls_dir is for tls:// addresses (a Unix socket is "
                           "protected by its directory and the peer's uid)")
    return _listen_unix(where, allowed_uids, backlog=backlog, limits=limits, on_reject=on_reject)


def _listen_unix(where: Address, allowed_uids: Iterable[int] | None, *, backlog: int, limits: dict,
                 on_reject: Callable[[str], None] | None) -> Listener:
    """The Unix half of :func:`listen`: bind in the private directory, admit allowed uids only."""
    uids = _uid_set(allowed_uids)
    if allowed_uids is not None and not HAS_PEERCRED:
        raise TransportError(f"cannot listen on {where}: this platform has no SO_PEERCRED, so allowed_uids cannot "
                             "be enforced; leave it unset (the 0700 directory then admits only this user and root)")
    binding = UnixBinding.bind(where.path, backlog)

    def admit(raw: socket.socket) -> Connection:
        return Connection(raw, peer=check_peer_uid(raw, uids, "connecting peer"), **limits)

    return Listener(binding.sock, where, admit=admit, unix=binding, on_reject=on_reject)


# ---------------------------------------------------------------------------- connecting
def connect(address: str | os.PathLike | Address, *, tls_dir: str | os.PathLike | None = None,
            timeout: float = 30.0, allowed_uids: Iterable[int] | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
            frame_seconds: float = DEFAULT_FRAME_SECONDS, idle_seconds: float = DEFAULT_IDLE_SECONDS,
            lifetime_seconds: float = DEFAULT_LIFETIME_SECONDS) -> Connection:
    """Connect to a key service and authenticate *it*: its uid (Unix) or its certificate (TLS).

    Args:
        address: see :func:`parse_endpoint` (port 0 is refused).
        tls_dir: the trainer's directory with ``ca.pem``, ``client.pem``, ``client.key``;
            required for ``tls://``.
        timeout: seconds for connecting and the TLS handshake together.
        allowed_uids: Unix only: uids the service may run as (default: ours), so a
            socket planted by another user is not mistaken for the service.
        max_bytes, frame_seconds, idle_seconds, lifetime_seconds: the connection's
            limits (``idle_seconds`` is also how long an answer may take to start).

    Raises:
        AddressError: a refused address or options that do not fit it.
        PeerRejected: the service is not who it should be.
        TransportError: unreachable, or the handshake failed.
        TLSSetupError: the TLS files cannot be used.
    """
    where = parse_endpoint(address)
    check_limits(max_bytes, frame_seconds, idle_seconds, lifetime_seconds, timeout)
    limits = {"max_bytes": max_bytes, "frame_seconds": frame_seconds, "idle_seconds": idle_seconds,
              "lifetime_seconds": lifetime_seconds}
    if where.kind == "tls":
        if allowed_uids is not None:
            raise AddressError(f"cannot connect to {where}: allowed_uids applies to Unix sockets")
        from .tls import connect_tls

        return connect_tls(where, tls_dir, timeout=timeout, limits=limits)
    if tls_dir is not None:
        raise AddressError(f"cannot connect to {where}: tls_dir is for tls:// addresses")
    return _connect_unix(where, allowed_uids, timeout=timeout, limits=limits)


def _connect_unix(where: Address, allowed_uids: Iterable[int] | None, *, timeout: float,
                  limits: dict) -> Connection:
    """The Unix half of :func:`connect`: reach the socket, then check who listens there."""
    if not hasattr(socket, "AF_UNIX"):
        raise AddressError(f"cannot connect to {where}: Unix sockets are not available here; use tls://HOST:PORT")
    uids = _uid_set(allowed_uids)
    if not HAS_PEERCRED:
        os.close(private_dir(where.path, create=False))  # the fallback: the directory is ours and private
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(where.path)
    except OSError as exc:
        sock.close()
        raise TransportError(f"cannot reach the key service at {where}: {os_reason(exc)} (is the owner running "
                             "henn serve-keys?)") from None
    peer = check_peer_uid(sock, uids, f"the process listening at {where.path}")
    return Connection(sock, peer=f"key service ({peer})", **limits)


def _uid_set(allowed_uids: Iterable[int] | None) -> frozenset[int]:
    """The uids a Unix peer may have: the given ones, or only this process's effective uid."""
    return frozenset({os.geteuid()} if allowed_uids is None else (int(u) for u in allowed_uids))
