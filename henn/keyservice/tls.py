"""Mutual TLS for the key service: a private PKI, and the contexts both sides load.

TCP is offered only as ``tls://HOST:PORT`` with *mutual* authentication: the trainer
checks that it talks to the owner's service (server certificate, host name), the
service checks that the trainer holds a certificate the owner issued. Everything is
the standard library's :mod:`ssl` (TLS 1.3 only) and certificates made with the
``cryptography`` package; nothing here is home-made cryptography. Pre-shared keys
are not used: Python 3.11's ssl has no PSK callbacks.

The certificates come from :func:`henn.keyservice.pki.make_pki` (also importable from
here), which documents who holds which file.
"""
from __future__ import annotations

import hashlib
import os
import socket
import ssl
import stat
import time
from collections.abc import Callable
from pathlib import Path

from .framing import AddressError, Connection, PeerRejected, TransportError

# make_pki, its file names and TLSSetupError live in .pki; importable from here as before.
from .pki import (  # noqa: F401
    CA_CERT,
    CA_KEY,
    CLIENT_CERT,
    CLIENT_KEY,
    DEFAULT_DAYS,
    PKI_FILES,
    SERVER_CERT,
    SERVER_KEY,
    TRAINER_FILES,
    TLSSetupError,
    make_pki,
)
from .endpoints import Address
from .listener import Listener


# ---------------------------------------------------------------------------- loading contexts
def server_context(tls_dir: str | os.PathLike) -> ssl.SSLContext:
    """The service's context: TLS 1.3 only, a client certificate from the PKI's CA required.

    Raises:
        TLSSetupError: a file is missing, unreadable, malformed, or a private key is
            readable by group or others.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.num_tickets = 0  # no session resumption: every connection shows its certificate again
    return _load(ctx, Path(tls_dir), SERVER_CERT, SERVER_KEY)


def client_context(tls_dir: str | os.PathLike) -> ssl.SSLContext:
    """The trainer's context: TLS 1.3 only, the server checked against the CA and the host name.

    Raises:
        TLSSetupError: as :func:`server_context`.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED by default
    return _load(ctx, Path(tls_dir), CLIENT_CERT, CLIENT_KEY)


def _load(ctx: ssl.SSLContext, root: Path, cert: str, key: str) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    for name in (CA_CERT, cert, key):
        _check_readable(root / name)
    _check_key_mode(root / key)
    try:
        ctx.load_verify_locations(cafile=str(root / CA_CERT))  # only this CA: no system trust store
    except (ssl.SSLError, ValueError) as exc:
        raise TLSSetupError(f"cannot load the key service's CA certificate {root / CA_CERT}: {exc}") from None
    try:
        ctx.load_cert_chain(str(root / cert), str(root / key))
    except (ssl.SSLError, ValueError) as exc:
        raise TLSSetupError(f"cannot load {root / cert} with {root / key}: {exc} (are they a pair, from the same "
                            "make_pki run?)") from None
    return ctx


def _check_readable(path: Path) -> None:
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise TLSSetupError(f"cannot set up TLS: {path} is missing (make the files with "
                            "henn.keyservice.tls.make_pki; the trainer needs ca.pem, client.pem, client.key)") from None
    except OSError as exc:
        raise TLSSetupError(f"cannot set up TLS: {path} cannot be read ({exc.strerror or exc})") from None


def _check_key_mode(path: Path) -> None:
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise TLSSetupError(f"cannot use the private key {path}: its mode {mode:04o} lets group or others read it; "
                            f"run `chmod 600 {path}` (and consider the key leaked if others could log in)")


# ---------------------------------------------------------------------------- sockets
def listen_tls(where: Address, tls_dir: str | os.PathLike | None, *, backlog: int, handshake_seconds: float,
               limits: dict, on_reject: Callable[[str], None] | None) -> Listener:
    """A TCP :class:`~henn.keyservice.transport.Listener` whose peers must complete a mutual TLS handshake.

    Called by :func:`~henn.keyservice.transport.listen` (which documents the arguments).

    Raises:
        AddressError: no ``tls_dir``.
        TLSSetupError: the owner's files cannot be used.
        TransportError: the port cannot be bound.
    """
    if tls_dir is None:
        raise AddressError(f"cannot listen on {where}: a tls:// address needs tls_dir, the owner's PKI directory "
                           "(henn.keyservice.tls.make_pki)")
    ctx = server_context(tls_dir)
    try:
        sock = socket.create_server((where.host, where.port), family=_family(where.host), backlog=backlog)
    except OSError as exc:
        raise TransportError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    bound = Address("tls", host=where.host, port=sock.getsockname()[1])

    def admit(raw: socket.socket) -> Connection:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls, peer = _server_handshake(raw, ctx, handshake_seconds)
        return Connection(tls, peer=peer, **limits)

    return Listener(sock, bound, admit=admit, on_reject=on_reject)


def connect_tls(where: Address, tls_dir: str | os.PathLike | None, *, timeout: float, limits: dict) -> Connection:
    """Connect to ``where`` and authenticate both ways; see :func:`~henn.keyservice.transport.connect`.

    Raises:
        AddressError: no ``tls_dir``, or port 0.
        TLSSetupError: the trainer's files cannot be used.
        PeerRejected: the server's certificate does not verify (another CA, another
            host name, expired).
        TransportError: unreachable, or another handshake failure.
    """
    if tls_dir is None:
        raise AddressError(f"cannot connect to {where}: a tls:// address needs tls_dir (ca.pem, client.pem, "
                           "client.key from the owner)")
    if where.port == 0:
        raise AddressError(f"cannot connect to {where}: port 0 is only for listening")
    ctx = client_context(tls_dir)  # before connecting: a setup error should not look like a network one
    deadline = time.monotonic() + timeout
    try:
        raw = socket.create_connection((where.host, where.port), timeout=timeout)
    except OSError as exc:
        raise TransportError(f"cannot reach the key service at {where}: {exc.strerror or exc} (is the owner "
                             "running henn serve-keys?)") from None
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw.settimeout(max(deadline - time.monotonic(), 1e-3))  # the handshake's total, not per read (Python >= 3.5)
    try:
        tls = ctx.wrap_socket(raw, server_hostname=where.host)
    except ssl.SSLCertVerificationError as exc:
        raw.close()
        raise PeerRejected(f"the server at {where} is not the owner's key service: its certificate does not verify "
                           f"({exc.verify_message}); check that ca.pem is the owner's and that {where.host} is one "
                           "of the server_names given to make_pki") from None
    except (OSError, ValueError) as exc:
        raw.close()
        raise TransportError(f"TLS handshake with the key service at {where} failed: {_reason(exc)}") from None
    return Connection(tls, peer=f"key service {where} ({describe_certificate(tls)})", **limits)


def _server_handshake(raw: socket.socket, ctx: ssl.SSLContext, seconds: float) -> tuple[ssl.SSLSocket, str]:
    """Complete the handshake within ``seconds`` in total; returns (socket, peer). Closes ``raw`` on failure.

    Raises:
        PeerRejected: no certificate, another CA, the wrong key usage or TLS
            version, too slow, or not TLS at all.
    """
    try:
        address = _address_text(raw.getpeername())
    except OSError:
        address = "an unknown address"
    raw.settimeout(seconds)  # for do_handshake the timeout is the total duration (Python >= 3.5)
    try:
        tls = ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
    except (OSError, ValueError) as exc:
        raw.close()
        raise PeerRejected(f"TLS handshake with {address} failed: {_reason(exc)}") from None
    try:
        tls.do_handshake()
    except (OSError, ValueError) as exc:
        tls.close()  # wrap_socket took over raw's descriptor: closing raw would leak it
        raise PeerRejected(f"TLS handshake with {address} failed: {_reason(exc)}") from None
    return tls, f"{describe_certificate(tls)} from {address}"


def describe_certificate(tls: ssl.SSLSocket) -> str:
    """``CN=henn trainer sha256:0123abcd...``: the verified peer's subject and fingerprint."""
    info = tls.getpeercert() or {}
    parts = [f"{_SHORT.get(k, k)}={v}" for rdn in info.get("subject", ()) for k, v in rdn]
    der = tls.getpeercert(binary_form=True) or b""
    return f"{', '.join(parts) or 'no subject'} sha256:{hashlib.sha256(der).hexdigest()[:16]}"


_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU"}


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _address_text(sockaddr) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "it did not complete in time"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"its certificate does not verify: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"{exc.reason.lower().replace('_', ' ')} ({exc.library or 'ssl'})"
    return str(exc) or type(exc).__name__
