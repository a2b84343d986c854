"""The trainer's side of the key service: :class:`RemoteKeyHolder`."""
from __future__ import annotations

import json
import socket
import time
from typing import Any

from he_core import Ciphertext, Scheme
from he_core import serialization as ser
from he_core.errors import FormatError

from ..keyholder import MaskedRefresh
from .transport import (_HEADER, BYE, DEFAULT_MAX_BYTES, ERROR, HELLO, OK, REENCRYPT, KeyServiceError,
                        pack_request, parse_address, recv_frame, send_frame)


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
