"""The owner's key service: masked refreshes for a trainer in another process.

A trainer that holds only public material runs out of noise (``vhe``) or levels
(``ckks``) after a few dozen steps. The in-process :class:`~henn.keyholder.KeyHolder`
solves that with the masked refresh; this module carries the same protocol across
processes, so the secret key stays in the owner's process:

* owner: :class:`KeyService` (``henn serve-keys --keys DIR --listen ADDRESS``) loads
  the secret key of a key directory and answers on a Unix socket (a path) or a TCP
  port on the loopback interface (``HOST:PORT``);
* trainer: :class:`RemoteKeyHolder` connects, checks that the service holds the key
  its model is under, and sends *masked* ciphertexts; it gets fresh ciphertexts back.

The service only ever returns ciphertexts under its own key: it never decrypts for
anybody, so a trainer learns nothing it could not compute itself. What the owner sees
is each refreshed value plus the trainer's uniform mask (see ``SECURITY.md``), and how
many refreshes of which shapes were asked for.

Wire format (both directions): ``b"HKS1"``, one op byte, an 8-byte big-endian payload
length, the payload. Ops: ``HELLO`` (empty -> UTF-8 JSON with scheme, parameter id and
key id), ``REENCRYPT`` (the layout wanted as JSON, then a ciphertext as
:func:`he_core.serialization.dumps` writes it -> the fresh ciphertext), ``BYE``; any failure is answered with ``ERROR`` and a UTF-8
message, and the connection stays usable. Payloads are checked like files: magic,
version, SHA-256, kind, scheme and key id, with a size limit applied before reading.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any, Callable

from he_core import Ciphertext, EncodingError, HEError, HEOverflowError, Scheme, SecretKey
from he_core import serialization as ser
from he_core.errors import FormatError

from .keyholder import KeyHolder, MaskedRefresh

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


# ---------------------------------------------------------------------------- owner side
class KeyService:
    """Serve masked re-encryptions under one secret key, one connection at a time.

    Every well-formed request under the service's key is answered with a ciphertext.
    One whose *values* cannot be re-encrypted (they overflow the requested scale, or
    the decryption is not a valid encoding) gets a fresh encryption of zeros and is
    counted in :attr:`value_refusals`: an error would tell the client something about
    a plaintext (a comparison oracle it could query with shifted values), and a
    trainer following the protocol never sends such a request. Malformed requests
    (format, key, layout) get an ``ERROR`` naming the problem; those do not depend on
    any plaintext.

    Args:
        scheme: the scheme, with the key's public keys installed.
        secret: the secret key (it never leaves this object's process).
        max_bytes: largest request payload accepted.
        idle_seconds: drop a connection that sends nothing for this long.

    Attributes:
        keyholder: the in-process key holder doing the work (its counters count the traffic).
        connections: connections served so far.
        errors: requests answered with ``ERROR``.
        value_refusals: requests answered with zeros (see above).
    """

    def __init__(self, scheme: Scheme, secret: SecretKey, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 idle_seconds: float = DEFAULT_IDLE_SECONDS):
        if max_bytes < 1 or not idle_seconds > 0:
            raise ValueError(f"cannot serve keys: max_bytes and idle_seconds must be positive, got {max_bytes}, "
                             f"{idle_seconds}")
        self.keyholder = KeyHolder(scheme, secret)
        self.scheme = scheme
        self.max_bytes = int(max_bytes)
        self.idle_seconds = float(idle_seconds)
        self.connections = 0
        self.errors = 0
        self.value_refusals = 0
        self._stop = False

    @classmethod
    def from_keys(cls, keys_dir: str | os.PathLike, **kwargs: Any) -> "KeyService":
        """Load a key directory written by ``henn keygen`` (owner only)."""
        from . import lifecycle

        scheme, _public, secret = lifecycle.load_owner(keys_dir)
        return cls(scheme, secret, **kwargs)

    def hello(self) -> dict[str, Any]:
        return {"service": "henn-keys", "version": 1, "scheme": self.scheme.name,
                "params_id": self.scheme.params_id, "key_id": self.keyholder.key_id}

    def handle(self, op: int, payload: bytes) -> tuple[int, bytes]:
        """Answer one request (the transport-free part, tested on its own)."""
        if op == HELLO:
            return OK, json.dumps(self.hello()).encode()
        if op != REENCRYPT:
            raise KeyServiceError(f"unknown key service request {op}")
        layout, body = unpack_request(payload)
        masked = ser.loads(body, expect_kind="ciphertext", expect_scheme=self.scheme.name,
                           expect_key_id=self.keyholder.key_id)
        try:
            fresh = self.keyholder.reencrypt(masked, layout)
        except (EncodingError, HEOverflowError):
            # Zeros in the same layout: if the layout itself is bad this raises, and that
            # error depends on the request only, not on any plaintext.
            fresh = self.keyholder.encrypt_zeros(masked.shape, layout)
            self.value_refusals += 1
        return OK, ser.dumps(fresh)

    def serve(self, address: str, *, ready: Callable[[str], None] | None = None) -> None:
        """Listen on ``address`` until :meth:`stop` (or a signal handler raising) ends it.

        A Unix socket file is created with mode 0600 (only the owner's user can connect)
        and removed afterwards; an existing non-socket file at that path is refused.
        """
        family, sockaddr = parse_address(address)
        if family == socket.AF_UNIX:
            path = Path(sockaddr)
            if path.exists() and not path.is_socket():
                raise FileExistsError(f"cannot serve keys on {path}: a file that is not a socket is in the way")
            path.unlink(missing_ok=True)
        server = socket.socket(family, socket.SOCK_STREAM)
        try:
            old_umask = os.umask(0o177) if family == socket.AF_UNIX else None
            try:
                server.bind(sockaddr)
            finally:
                if old_umask is not None:
                    os.umask(old_umask)
            server.listen(4)
            server.settimeout(0.5)
            if ready is not None:
                ready(str(address))
            while not self._stop:
                try:
                    conn, _ = server.accept()
                except socket.timeout:
                    continue
                with conn:
                    self.connections += 1
                    self._serve_connection(conn)
        finally:
            server.close()
            if family == socket.AF_UNIX:
                Path(sockaddr).unlink(missing_ok=True)

    def stop(self) -> None:
        self._stop = True

    def _serve_connection(self, conn: socket.socket) -> None:
        conn.settimeout(self.idle_seconds)
        while True:
            try:
                frame = recv_frame(conn, self.max_bytes)
            except (KeyServiceError, OSError):
                self.errors += 1
                return  # a broken stream cannot be resynchronised: drop the connection
            if frame is None or frame[0] == BYE:
                return
            try:
                op, body = self.handle(*frame)
            except (HEError, ValueError, TypeError) as exc:
                self.errors += 1
                op, body = ERROR, f"{type(exc).__name__}: {exc}".encode()
            except Exception as exc:  # noqa: BLE001 - one bad request must not stop the service
                self.errors += 1
                print(f"henn serve-keys: request failed unexpectedly: {type(exc).__name__}: {exc}", file=sys.stderr)
                op, body = ERROR, b"internal error (reported on the key service's side)"
            try:
                send_frame(conn, op, body)
            except OSError:
                return

    def counters(self) -> dict[str, int]:
        return {**self.keyholder.counters(), "connections": self.connections, "errors": self.errors,
                "value_refusals": self.value_refusals}


# ---------------------------------------------------------------------------- trainer side
class RemoteKeyHolder(MaskedRefresh):
    """The trainer's handle on a :class:`KeyService`: masked refresh, nothing else.

    It cannot decrypt: there is no such request. Use it wherever a
    :class:`~henn.keyholder.KeyHolder` is only asked to ``refresh`` / ``reencrypt``.

    Args:
        address: the service's ``HOST:PORT`` or Unix socket path.
        scheme: the trainer's scheme object (public keys of the model installed).
        key_id: the key the model is under; the service must hold exactly that key.
        mask_bound: half-width of the trainer's uniform masks (the trainer chooses:
            the mask protects the trainer's values from the owner).
        timeout: seconds to wait for the service to accept and for each answer.
        max_bytes: largest answer accepted.

    Raises:
        KeyServiceError: the service is unreachable, or holds another scheme or key.
    """

    def __init__(self, address: str, scheme: Scheme, key_id: str, *, mask_bound: float = 16.0,
                 timeout: float = 60.0, max_bytes: int = DEFAULT_MAX_BYTES):
        if not mask_bound > 0:
            raise ValueError(f"cannot use the key service: mask_bound must be positive, got {mask_bound}")
        self.scheme, self.key_id, self.mask_bound = scheme, key_id, float(mask_bound)
        self.address, self.max_bytes = str(address), int(max_bytes)
        self.refresh_rounds = 0
        self.bytes_exchanged = 0
        self.seconds_waiting = 0.0
        self._sock: socket.socket | None = self._connect(timeout)
        try:
            info = json.loads(self._call(HELLO, b"").decode())
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            self.close()
            raise KeyServiceError(f"the service at {address} is not a henn key service: {exc}") from None
        except KeyServiceError:
            self.close()
            raise
        expected = {"scheme": scheme.name, "params_id": scheme.params_id, "key_id": key_id}
        got = {k: info.get(k) for k in expected}
        if got != expected:
            self.close()
            raise KeyServiceError(f"cannot use the key service at {address}: it holds {got}, the model needs "
                                  f"{expected}")

    def _connect(self, timeout: float) -> socket.socket:
        family, sockaddr = parse_address(self.address)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            raise KeyServiceError(f"cannot reach the key service at {self.address}: {exc.strerror or exc} "
                                  "(is the owner running henn serve-keys?)") from None
        return sock

    def _call(self, op: int, payload: bytes) -> bytes:
        if self._sock is None:
            raise KeyServiceError(f"the connection to the key service at {self.address} is closed (after an "
                                  "earlier failure); connect again")
        start = time.perf_counter()
        try:
            self.bytes_exchanged += send_frame(self._sock, op, payload)
            frame = recv_frame(self._sock, self.max_bytes)
        except (OSError, KeyServiceError) as exc:
            # A late answer to this request would be read as the answer to the next one.
            self.close()
            raise KeyServiceError(f"key service at {self.address} failed: {exc}") from None
        finally:
            self.seconds_waiting += time.perf_counter() - start
        if frame is None:
            self.close()
            raise KeyServiceError(f"the key service at {self.address} closed the connection")
        reply, body = frame
        self.bytes_exchanged += _HEADER.size + len(body)
        if reply == ERROR:
            raise KeyServiceError(f"the key service refused: {body.decode(errors='replace')}")
        if reply != OK:
            raise KeyServiceError(f"key service protocol error: unexpected reply {reply}")
        return body

    def reencrypt(self, masked: Ciphertext, layout: Any = None) -> Ciphertext:
        """Send a masked ciphertext (and the layout wanted), get its fresh re-encryption (checked)."""
        body = self._call(REENCRYPT, pack_request(layout, ser.dumps(masked)))
        try:
            fresh = ser.loads(body, expect_kind="ciphertext", expect_scheme=self.scheme.name,
                              expect_key_id=self.key_id)
        except FormatError as exc:
            raise KeyServiceError(f"the key service answered an unusable ciphertext: {exc}") from None
        if fresh.shape != masked.shape:
            raise KeyServiceError(f"the key service answered shape {fresh.shape} for a {masked.shape} ciphertext")
        self.refresh_rounds += 1
        return fresh

    def counters(self) -> dict[str, Any]:
        return {"refresh_rounds": self.refresh_rounds, "bytes_exchanged": self.bytes_exchanged,
                "seconds_waiting": self.seconds_waiting}

    def close(self) -> None:
        if self._sock is None:
            return
        try:
            self._sock.settimeout(1.0)
            send_frame(self._sock, BYE)
        except OSError:
            pass
        self._sock.close()
        self._sock = None

    def __enter__(self) -> "RemoteKeyHolder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
