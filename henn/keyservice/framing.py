"""The key service's wire: HKS2 frames on one authenticated socket, with deadlines and a size limit.

Every message, in both directions, is one frame: ``b"HKS2"``, one op byte, an 8-byte
big-endian payload length, the payload. The length is checked against the receiver's
limit before a byte of the payload is read (or a buffer allocated for it).

What a peer that got through authentication can make the other side do, and the
bound on it: wait ``idle_seconds`` for a frame to start, ``frame_seconds`` for one
frame to complete (measured from its first byte against a monotonic clock, so
dripping one byte at a time does not extend it), read frames for
``lifetime_seconds`` in all, and buffer at most ``max_bytes`` per frame.

The transport's error hierarchy lives here, at the bottom of the package, so that
:mod:`.unix`, :mod:`.tls` and :mod:`.transport` share it without importing each
other; :mod:`.transport` re-exports it.
"""
from __future__ import annotations

import socket
import ssl
import struct
import time
from typing import TYPE_CHECKING

from he_core import HEError

if TYPE_CHECKING:
    from typing import Self  # annotations only: Python 3.10 has no typing.Self

__all__ = ["DEFAULT_FRAME_SECONDS", "DEFAULT_IDLE_SECONDS", "DEFAULT_LIFETIME_SECONDS", "DEFAULT_MAX_BYTES",
           "HEADER_SIZE", "MAGIC_V2", "AddressError", "AddressInUse", "Connection", "ConnectionExpired", "FrameError",
           "FrameTimeout", "IdleTimeout", "KeyServiceError", "PeerRejected", "TransportError"]

MAGIC_V2 = b"HKS2"
_LEGACY_MAGIC = b"HKS1"  # the retired framing: recognised only to tell an old peer what is wrong
_HEADER = struct.Struct(">4sBQ")
HEADER_SIZE = _HEADER.size
DEFAULT_MAX_BYTES = 1 << 28  # a whole IMDB W01: ~2 MB on vhe, ~4 MB as a ckks table, ~17 MB slot-packed
DEFAULT_IDLE_SECONDS = 300.0  # a connection silent this long is dropped (one trainer is served at a time)
DEFAULT_FRAME_SECONDS = 30.0  # 256 MiB at ~9 MB/s; real frames (a few MB) need well under a second
DEFAULT_LIFETIME_SECONDS = 24 * 3600.0  # a training run reconnects daily; bounds a hijacked session
_SMALL_FRAME = 1 << 16  # sent in one write (and one TLS record)
_CHUNK = 1 << 20  # the most sent per call, so the deadline is rechecked between chunks


# ---------------------------------------------------------------------------- errors
class KeyServiceError(HEError):
    """The key service refused a request, answered something malformed, or went away."""


class TransportError(KeyServiceError):
    """The connection could not be made, broke, or was closed by a limit."""


class AddressError(TransportError, ValueError):
    """The address is malformed or of a refused kind (plain TCP)."""


class AddressInUse(TransportError, FileExistsError):
    """A live socket or a file that is not a socket occupies the Unix socket path."""


class PeerRejected(TransportError):
    """The peer failed authentication (uid, certificate) and was disconnected."""


class FrameError(TransportError):
    """A frame with a bad magic, an oversized length, or cut short: the stream cannot be trusted."""


class FrameTimeout(TransportError):
    """A frame did not arrive (or could not be sent) completely within the frame deadline."""


class IdleTimeout(TransportError):
    """The peer sent nothing for ``idle_seconds``."""


class ConnectionExpired(TransportError):
    """The connection outlived ``lifetime_seconds``."""


# ---------------------------------------------------------------------------- framed connections
class Connection:
    """One authenticated, framed connection; not thread-safe. Made by ``connect`` and ``Listener.accept``.

    Any transport failure closes the connection before raising: after a timeout or a
    malformed frame the stream position is unknown, and guessing it would let a peer
    smuggle one frame inside another.

    Args:
        sock: a connected, already authenticated socket (plain or TLS); owned from now on.
        peer: who is at the other end, for messages and logs.
        max_bytes: default payload limit for :meth:`recv`.
        frame_seconds: a whole frame must arrive (or be sent) within this, from its first byte.
        idle_seconds: longest wait for the first byte of the next frame.
        lifetime_seconds: no frame is read after this, counted from construction.

    Attributes:
        peer: ``"uid 1000 pid 123"`` (Unix) or ``"CN=... sha256:... from HOST:PORT"`` (TLS).
        bytes_sent, bytes_received: frame bytes so far, headers included.

    Raises:
        ValueError: a limit that is not positive.
    """

    def __init__(self, sock: socket.socket, *, peer: str, max_bytes: int = DEFAULT_MAX_BYTES,
                 frame_seconds: float = DEFAULT_FRAME_SECONDS, idle_seconds: float = DEFAULT_IDLE_SECONDS,
                 lifetime_seconds: float = DEFAULT_LIFETIME_SECONDS):
        check_limits(max_bytes, frame_seconds, idle_seconds, lifetime_seconds)
        self._sock: socket.socket | None = sock
        self.peer = peer
        self.max_bytes, self.frame_seconds = int(max_bytes), float(frame_seconds)
        self.idle_seconds, self.lifetime_seconds = float(idle_seconds), float(lifetime_seconds)
        self.expires_at = time.monotonic() + self.lifetime_seconds
        self.bytes_sent = self.bytes_received = 0

    @property
    def closed(self) -> bool:
        return self._sock is None

    def send(self, op: int, payload: bytes = b"") -> int:
        """Send one frame within ``frame_seconds``.

        Returns:
            The bytes sent, header included.

        Raises:
            ValueError: ``op`` is not a byte.
            FrameTimeout: the peer did not take the frame in time (it is not reading).
            TransportError: the connection is closed or broke.
        """
        if not 0 <= int(op) <= 255:
            raise ValueError(f"cannot send a key service frame: op must be 0 .. 255, got {op}")
        sock = self._live("send")
        body = memoryview(payload).cast("B")
        head = _HEADER.pack(MAGIC_V2, int(op), body.nbytes)
        deadline = time.monotonic() + self.frame_seconds
        try:
            if body.nbytes <= _SMALL_FRAME:
                self._send_all(sock, head + body.tobytes(), deadline)
            else:
                self._send_all(sock, head, deadline)
                self._send_all(sock, body, deadline)
        except KeyServiceError:
            self.close()
            raise
        except ssl.SSLError as exc:
            self.close()
            raise _tls_failure(exc, self.peer) from None
        except OSError as exc:
            self.close()
            raise TransportError(f"cannot send to {self.peer}: {os_reason(exc)}; the connection is closed") from None
        self.bytes_sent += HEADER_SIZE + body.nbytes
        return HEADER_SIZE + body.nbytes

    def recv(self, max_bytes: int | None = None) -> tuple[int, bytes] | None:
        """Read one frame.

        Args:
            max_bytes: payload limit for this frame (default: the connection's).

        Returns:
            ``(op, payload)``, or ``None`` when the peer closed cleanly before a frame.

        Raises:
            IdleTimeout: no frame started within ``idle_seconds``.
            ConnectionExpired: the connection is older than ``lifetime_seconds``.
            FrameTimeout: a frame started but was not complete within ``frame_seconds``.
            FrameError: bad magic, a length over the limit, or the stream cut inside a frame.
            TransportError: the connection is closed or broke (TLS alerts included).
        """
        limit = self.max_bytes if max_bytes is None else int(max_bytes)
        sock = self._live("receive")
        try:
            frame = self._recv_frame(sock, limit)
        except KeyServiceError:
            self.close()
            raise
        except ssl.SSLError as exc:
            self.close()
            raise _tls_failure(exc, self.peer) from None
        except OSError as exc:
            self.close()
            raise TransportError(f"cannot receive from {self.peer}: {os_reason(exc)}; the connection is "
                                 "closed") from None
        if frame is None:
            self.close()
        return frame

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Connection({self.peer!r}{', closed' if self.closed else ''})"

    # -- internals
    def _live(self, what: str) -> socket.socket:
        if self._sock is None:
            raise TransportError(f"cannot {what}: the connection to {self.peer} is closed; connect again")
        return self._sock

    def _recv_frame(self, sock: socket.socket, limit: int) -> tuple[int, bytes] | None:
        left = self.expires_at - time.monotonic()
        if left <= 0:
            raise ConnectionExpired(self._expired())
        sock.settimeout(max(min(self.idle_seconds, left), 1e-3))
        head = bytearray(HEADER_SIZE)
        try:
            got = sock.recv_into(head)
        except TimeoutError:
            if self.idle_seconds >= left:
                raise ConnectionExpired(self._expired()) from None
            raise IdleTimeout(f"{self.peer} sent nothing for {self.idle_seconds:g} s; the connection is closed "
                              "(reconnect when there is work)") from None
        if got == 0:
            return None
        deadline = time.monotonic() + self.frame_seconds  # from the frame's first byte
        self._fill(sock, memoryview(head)[got:], deadline)
        magic, op, size = _HEADER.unpack(head)
        if magic != MAGIC_V2:
            hint = " (an older henn speaking HKS1: upgrade both sides)" if magic == _LEGACY_MAGIC else ""
            raise FrameError(f"protocol error from {self.peer}: bad magic {bytes(magic)!r}, expected "
                             f"{MAGIC_V2!r}{hint}; the connection is closed")
        if size > limit:
            raise FrameError(f"protocol error from {self.peer}: a {size}-byte payload exceeds the {limit}-byte "
                             "limit; nothing of it was read and the connection is closed (raise max_bytes if "
                             "the request is legitimate)")
        payload = bytearray(size)
        self._fill(sock, memoryview(payload), deadline)
        self.bytes_received += HEADER_SIZE + size
        return op, bytes(payload)

    def _fill(self, sock: socket.socket, view: memoryview, deadline: float) -> None:
        total = view.nbytes
        while view.nbytes:
            # Recomputed before every read: a per-read timeout alone would let a peer
            # that sends one byte per (timeout - epsilon) hold the connection forever.
            sock.settimeout(self._remaining(deadline, "receive a frame from", total - view.nbytes, total))
            try:
                n = sock.recv_into(view)
            except TimeoutError:
                continue  # the next _remaining() raises FrameTimeout (or waits out a rounding sliver)
            if n == 0:
                raise FrameError(f"{self.peer} closed the connection inside a frame ({total - view.nbytes} of "
                                 f"{total} bytes)")
            view = view[n:]

    def _send_all(self, sock: socket.socket, data: bytes | memoryview, deadline: float) -> None:
        view = memoryview(data).cast("B")
        total = view.nbytes
        while view.nbytes:
            sock.settimeout(self._remaining(deadline, "send a frame to", total - view.nbytes, total))
            try:
                n = sock.send(view[:_CHUNK])
            except TimeoutError:
                continue  # nothing was taken; TLS retries the same bytes, as OpenSSL requires
            view = view[n:]

    def _remaining(self, deadline: float, what: str, done: int, total: int) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FrameTimeout(f"cannot {what} {self.peer} within {self.frame_seconds:g} s ({done} of {total} "
                               "bytes moved); the connection is closed (a slow or stalling peer)")
        return max(left, 1e-3)  # never 0: a zero timeout would make the socket non-blocking

    def _expired(self) -> str:
        return (f"the connection to {self.peer} reached its {self.lifetime_seconds:g} s lifetime and is closed; "
                "connect again")


# ---------------------------------------------------------------------------- helpers
def check_limits(max_bytes: int, *seconds: float) -> None:
    """Refuse a payload limit or a duration that is not positive.

    Raises:
        ValueError: ``max_bytes < 1`` or any of ``seconds`` not ``> 0`` (NaN included).
    """
    if int(max_bytes) < 1 or not all(s > 0 for s in seconds):
        raise ValueError(f"cannot use the key service transport: limits must be positive, got max_bytes={max_bytes} "
                         f"and seconds {seconds}")


def os_reason(exc: OSError) -> str:
    """The human part of an OS error, for messages."""
    return exc.strerror or str(exc) or type(exc).__name__


def _tls_failure(exc: ssl.SSLError, peer: str) -> TransportError:
    reason = (exc.reason or str(exc)).lower().replace("_", " ")
    if "alert" in reason and ("certificate" in reason or "unknown ca" in reason):
        return PeerRejected(f"{peer} refused our TLS certificate ({reason}): use the client.pem / client.key made "
                            "with the owner's ca.pem")
    return TransportError(f"TLS failure with {peer}: {reason}; the connection is closed")
