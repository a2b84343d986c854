"""The owner's side of the key service: masked re-encryptions under one secret key."""
from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any, Callable

from he_core import EncodingError, HEError, HEOverflowError, Scheme, SecretKey
from he_core import serialization as ser

from ..keyholder import KeyHolder
from .transport import (BYE, DEFAULT_IDLE_SECONDS, DEFAULT_MAX_BYTES, ERROR, HELLO, OK, REENCRYPT, KeyServiceError,
                        parse_address, recv_frame, send_frame, unpack_request)


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
        from .. import lifecycle

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


