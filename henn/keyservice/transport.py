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

import os
import socket
from collections.abc import Callable, Iterable

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
from .endpoints import Address, parse_endpoint
from .listener import Listener
from .tls import connect_tls, listen_tls
from .unix import HAS_PEERCRED, UnixBinding, check_peer_uid, private_dir


__all__ = ["BYE", "DEFAULT_BACKLOG", "DEFAULT_FRAME_SECONDS", "DEFAULT_HANDSHAKE_SECONDS", "DEFAULT_IDLE_SECONDS",
           "DEFAULT_LIFETIME_SECONDS", "DEFAULT_MAX_BYTES", "ERROR", "HEADER_SIZE", "HELLO", "MAGIC_V2", "OK",
           "REENCRYPT", "Address", "AddressError", "AddressInUse", "Connection", "ConnectionExpired", "FrameError",
           "FrameTimeout", "IdleTimeout", "KeyServiceError", "Listener", "PeerRejected", "TransportError", "connect",
           "listen", "parse_endpoint"]

# The protocol's op numbers (:mod:`.protocol` imports them from here and adds RELEASE).
HELLO, REENCRYPT, BYE, OK, ERROR = 1, 2, 3, 4, 5
DEFAULT_HANDSHAKE_SECONDS = 10.0  # before authentication: keep what an anonymous peer can hold short
DEFAULT_BACKLOG = 8


# ---------------------------------------------------------------------------- listening and connecting
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
