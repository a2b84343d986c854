"""The key service's transport: addresses, sockets and framing.

Wire format (both directions): ``b"HKS1"``, one op byte, an 8-byte big-endian payload
length, the payload. The length is checked against a limit before anything is read.
"""
from __future__ import annotations

import json
import socket
import struct
from typing import Any

from he_core import HEError

MAGIC = b"HKS1"
HELLO, REENCRYPT, BYE, OK, ERROR = 1, 2, 3, 4, 5
_HEADER = struct.Struct(">4sBQ")
DEFAULT_MAX_BYTES = 1 << 28  # a whole IMDB W01: ~2 MB on vhe, ~4 MB as a ckks table, ~17 MB slot-packed
DEFAULT_IDLE_SECONDS = 300.0  # a connection silent this long is dropped (one trainer is served at a time)


class KeyServiceError(HEError):
    """The key service refused a request, answered something malformed, or went away."""


# ---------------------------------------------------------------------------- addresses and framing
def parse_address(address: str) -> tuple[int, Any]:
    """``HOST:PORT`` (TCP, loopback only) or a filesystem path (Unix socket) -> (family, sockaddr).

    Raises:
        ValueError: a TCP host other than the loopback interface, or a bad port.
    """
    text = str(address)
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and "/" not in text:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"cannot use key service address {text!r}: TCP is only offered on the loopback "
                             "interface (127.0.0.1, ::1 or localhost); use a Unix socket path otherwise")
        if not 0 < int(port) < 65536:
            raise ValueError(f"cannot use key service address {text!r}: port must be 1 .. 65535")
        family = socket.AF_INET6 if host == "::1" else socket.AF_INET
        return family, (host, int(port))
    if not text:
        raise ValueError("cannot use an empty key service address")
    return socket.AF_UNIX, text


def send_frame(sock: socket.socket, op: int, payload: bytes = b"") -> int:
    """Write one frame; returns the bytes sent."""
    sock.sendall(_HEADER.pack(MAGIC, op, len(payload)) + payload)
    return _HEADER.size + len(payload)


def recv_frame(sock: socket.socket, max_bytes: int) -> tuple[int, bytes] | None:
    """Read one frame; ``None`` when the peer closed the connection cleanly before a frame.

    Raises:
        KeyServiceError: bad magic, oversized payload, or a connection cut inside a frame.
    """
    head = _recv_exact(sock, _HEADER.size, allow_eof=True)
    if head is None:
        return None
    magic, op, size = _HEADER.unpack(head)
    if magic != MAGIC:
        raise KeyServiceError(f"key service protocol error: bad magic {magic!r} (expected {MAGIC!r})")
    if size > max_bytes:
        raise KeyServiceError(f"key service protocol error: a {size}-byte payload exceeds the {max_bytes}-byte limit")
    return op, _recv_exact(sock, size, allow_eof=False) or b""


def _recv_exact(sock: socket.socket, size: int, *, allow_eof: bool) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            if allow_eof and left == size:
                return None
            raise KeyServiceError(f"key service connection closed inside a frame ({size - left} of {size} bytes)")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def pack_request(layout: Any, ciphertext: bytes) -> bytes:
    """A ``REENCRYPT`` payload: 4-byte length, the layout as UTF-8 JSON (``null``: default), the ciphertext."""
    head = json.dumps(layout).encode()
    return struct.pack(">I", len(head)) + head + ciphertext


def unpack_request(payload: bytes) -> tuple[Any, bytes]:
    """Inverse of :func:`pack_request`.

    Raises:
        KeyServiceError: truncated payload or a layout that is not JSON.
    """
    if len(payload) < 4:
        raise KeyServiceError("key service protocol error: truncated request")
    (size,) = struct.unpack(">I", payload[:4])
    if size > min(len(payload) - 4, 1 << 16):
        raise KeyServiceError(f"key service protocol error: a {size}-byte layout in a {len(payload)}-byte request")
    try:
        layout = json.loads(payload[4:4 + size].decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise KeyServiceError(f"key service protocol error: the layout is not JSON ({exc})") from None
    return layout, payload[4 + size:]


