"""The key service's messages: operations, request headers, and what each answer holds.

Every frame (see :mod:`.transport`) carries one operation. Requests that spend the
job's budget carry a header: 4-byte big-endian length, UTF-8 JSON, then the body.

==========  ===============================================  =======================================
op          request                                          answer (``OK``)
==========  ===============================================  =======================================
HELLO       empty                                            JSON: service, job (public part), key
REENCRYPT   ``{"request_id", "target"}`` + masked ciphertext  the fresh ciphertext (file format)
RELEASE     ``{"request_id", "count"}`` + aggregate           empty: the value goes to the owner's log
BYE         empty                                            (none; the connection closes)
==========  ===============================================  =======================================

Any refusal is ``ERROR`` with a UTF-8 message. Refusals depend only on the request's
public parts (format, key, target, scale, budget, request id), never on a decrypted
value. A ``request_id`` is 32 hex digits chosen by the trainer; a retried request
reuses it (same bytes), and the service answers it from its cache instead of
decrypting again: a retry spends no budget and shows the owner no second masked view.
"""
from __future__ import annotations

import json
import re
import secrets
import struct
from typing import Any

from .transport import BYE, ERROR, HELLO, OK, REENCRYPT, KeyServiceError

RELEASE = 6
OPS = {HELLO: "HELLO", REENCRYPT: "REENCRYPT", BYE: "BYE", OK: "OK", ERROR: "ERROR", RELEASE: "RELEASE"}
MAX_HEADER = 1 << 16
_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")

__all__ = ["BYE", "ERROR", "HELLO", "OK", "REENCRYPT", "RELEASE", "new_request_id", "pack", "unpack"]


def new_request_id() -> str:
    return secrets.token_hex(16)


def pack(header: dict[str, Any], body: bytes) -> bytes:
    """A request payload: the header as length-prefixed JSON, then the body."""
    head = json.dumps(header, sort_keys=True).encode()
    return struct.pack(">I", len(head)) + head + body


def unpack(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """Inverse of :func:`pack`; the header must be a JSON object with a well-formed ``request_id``.

    Raises:
        KeyServiceError: truncated payload, a header that is not a JSON object, or a bad request id.
    """
    if len(payload) < 4:
        raise KeyServiceError("key service protocol error: truncated request")
    (size,) = struct.unpack(">I", payload[:4])
    if size > min(len(payload) - 4, MAX_HEADER):
        raise KeyServiceError(f"key service protocol error: a {size}-byte header in a {len(payload)}-byte request")
    try:
        header = json.loads(payload[4:4 + size].decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: 30,000 nested brackets
        raise KeyServiceError(f"key service protocol error: the header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise KeyServiceError("key service protocol error: the header is not a JSON object")
    rid = header.get("request_id")
    if not isinstance(rid, str) or not _REQUEST_ID.match(rid):
        raise KeyServiceError("key service protocol error: request_id must be 32 lowercase hex digits")
    return header, payload[4 + size:]
