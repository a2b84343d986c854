"""The trainer's side of the key service: :class:`RemoteKeyHolder`."""
from __future__ import annotations

import json
import time
from typing import Any

from he_core import Ciphertext, Scheme
from he_core import serialization as ser
from he_core.errors import FormatError

from ..keyholder import BudgetExhausted, MaskedRefresh, RefreshTerms, check_aggregate, check_scale
from ..tensor import EncTensor
from . import protocol
from .protocol import BYE, ERROR, HELLO, OK, REENCRYPT, RELEASE
from .transport import DEFAULT_MAX_BYTES, Connection, KeyServiceError, TransportError, connect

RETRIES = 3  # reconnect-and-resend attempts for one request (same request id, same bytes)


class RemoteKeyHolder(MaskedRefresh):
    """The trainer's handle on the owner's key service: masked refreshes and released aggregates.

    It cannot decrypt: no answer of the service ever holds a decryption. The job's
    terms (mask sizing, budgets) come from the service's greeting and must agree with
    the ones the owner signed into the model file, when given.

    Args:
        address: ``unix:PATH`` / a path, or ``tls://HOST:PORT``.
        scheme: the trainer's scheme object (the model's public keys installed).
        key_id: the key the model is under; the service must hold exactly that key.
        job: the job's public record as the model file carries it (checked against the
            service's), or ``None`` to take the service's.
        tls_dir: the trainer's TLS files (``ca.pem``, ``client.pem``, ``client.key``) for ``tls://``.
        timeout: seconds to connect and to wait for each answer.

    Raises:
        KeyServiceError: the service is unreachable, not a henn key service, or serves
            another key or job.
    """

    def __init__(self, address: str, scheme: Scheme, key_id: str, *, job: dict | None = None,
                 tls_dir: str | None = None, timeout: float = 120.0, max_bytes: int = DEFAULT_MAX_BYTES):
        self.address, self.key_id, self._tls_dir = str(address), key_id, tls_dir
        self._timeout, self.max_bytes = float(timeout), int(max_bytes)
        self.bytes_exchanged = 0
        self.seconds_waiting = 0.0
        self.retries = 0
        self._conn: Connection | None = None
        info = self._greet(scheme)
        served = info["job"]
        if job is not None and {k: job.get(k) for k in ("job_id", "key_id", "terms")} != \
                {k: served.get(k) for k in ("job_id", "key_id", "terms")}:
            self.close()
            raise KeyServiceError(f"cannot use the key service at {address}: it serves job {served.get('job_id')}, "
                                  f"the model file was made for job {job.get('job_id')}")
        super().__init__(scheme, RefreshTerms.from_dict(served["terms"]))
        self.job = served

    def _greet(self, scheme: Scheme) -> dict:
        try:
            info = json.loads(self._call(HELLO, b"").decode())
            if not isinstance(info, dict) or not isinstance(info.get("job"), dict):
                raise ValueError("not a henn job greeting")
        except (ValueError, UnicodeDecodeError) as exc:
            self.close()
            raise KeyServiceError(f"the service at {self.address} is not a henn key service: {exc}") from None
        except KeyServiceError:
            self.close()
            raise
        expected = {"scheme": scheme.name, "params_id": scheme.params_id, "key_id": self.key_id}
        got = {k: info.get(k) for k in expected}
        if got != expected:
            self.close()
            raise KeyServiceError(f"cannot use the key service at {self.address}: it holds {got}, the model needs "
                                  f"{expected}")
        return info

    # ------------------------------------------------------------------ transport
    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = connect(self.address, tls_dir=self._tls_dir, timeout=self._timeout,
                                     max_bytes=self.max_bytes, idle_seconds=self._timeout)
            except TransportError as exc:
                raise KeyServiceError(f"cannot reach the key service at {self.address}: {exc}") from None
        return self._conn

    def _call(self, op: int, payload: bytes) -> bytes:
        """Send one request and read its answer; a transport failure reconnects and resends it as it was."""
        for attempt in range(RETRIES + 1):
            start = time.perf_counter()
            try:
                conn = self._connection()
                self.bytes_exchanged += conn.send(op, payload)
                frame = conn.recv()
            except (TransportError, OSError, KeyServiceError) as exc:
                self._drop()
                if attempt == RETRIES:
                    raise KeyServiceError(f"key service at {self.address} failed: {exc}") from None
                self.retries += 1
                continue
            finally:
                self.seconds_waiting += time.perf_counter() - start
            if frame is None:
                self._drop()
                if attempt == RETRIES:
                    raise KeyServiceError(f"the key service at {self.address} closed the connection")
                self.retries += 1
                continue
            reply, body = frame
            self.bytes_exchanged += 13 + len(body)
            if reply == ERROR:
                message = body.decode(errors="replace")
                kind = BudgetExhausted if message.startswith("BudgetExhausted:") else KeyServiceError
                raise kind(f"the key service refused: {message}")
            if reply != OK:
                raise KeyServiceError(f"key service protocol error: unexpected reply {reply}")
            return body
        raise KeyServiceError("unreachable")  # pragma: no cover - the loop returns or raises

    def _drop(self) -> None:
        # A late answer to this request would be read as the answer to the next one.
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    # ------------------------------------------------------------------ the protocol
    def _request_id(self) -> str:
        """A new request's id (random; a subclass that replays a task derives them from the task's seed)."""
        return protocol.new_request_id()

    def reencrypt(self, masked: Ciphertext, layout: Any = None) -> Ciphertext:
        """Send a masked ciphertext (and the target), get its fresh re-encryption (checked)."""
        payload = protocol.pack({"request_id": self._request_id(), "target": layout}, ser.dumps(masked))
        body = self._call(REENCRYPT, payload)
        try:
            fresh = ser.loads(body, expect_kind="ciphertext", expect_scheme=self.scheme.name,
                              expect_key_id=self.key_id, allow_insecure=self.scheme.params.security_bits < 128)
            self.scheme.validate(fresh)
        except (FormatError, ValueError) as exc:
            raise KeyServiceError(f"the key service answered an unusable ciphertext: {exc}") from None
        expected = tuple(self.scheme.refresh_answer_shape(masked, layout))
        if tuple(fresh.shape) != expected:
            raise KeyServiceError(f"the key service answered shape {fresh.shape} for a {masked.shape} ciphertext "
                                  f"(expected {expected})")
        return fresh

    def release_aggregate(self, x: Any, count: int, *, value_bound: float | None = None,
                          scale: float = 1.0) -> None:
        """Send an encrypted aggregate over ``count`` samples to the owner's log; nothing comes back.

        The aggregate is re-encrypted through the service first (a masked refresh), so
        its noise is the service's own and the owner learns the value and not how it was
        computed; ``value_bound`` sizes that refresh's mask; ``scale`` is the public factor
        every summed term carries (see :meth:`henn.keyholder.KeyHolder.release_aggregate`).
        """
        scale = check_scale(scale)
        ct = check_aggregate(x.ct if isinstance(x, EncTensor) else x, count, self.terms)
        fresh = self.fresh_for_owner(ct, value_bound)
        header = {"request_id": self._request_id(), "count": int(count), "scale": scale}
        payload = protocol.pack(header, ser.dumps(fresh))
        self._call(RELEASE, payload)
        return None

    def counters(self) -> dict[str, Any]:
        return {"refresh_rounds": self.refresh_rounds, "bytes_exchanged": self.bytes_exchanged,
                "seconds_waiting": self.seconds_waiting, "retries": self.retries, "job_id": self.job["job_id"],
                "hiding": self.hiding()}

    def close(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.send(BYE)
        except (TransportError, OSError):
            pass
        self._drop()

    def __enter__(self) -> "RemoteKeyHolder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
