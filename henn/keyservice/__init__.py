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

from .client import RemoteKeyHolder
from .service import KeyService
from .transport import (BYE, DEFAULT_IDLE_SECONDS, DEFAULT_MAX_BYTES, ERROR, HELLO, MAGIC, OK, REENCRYPT,
                        KeyServiceError, pack_request, parse_address, recv_frame, send_frame, unpack_request)

__all__ = ["KeyService", "RemoteKeyHolder", "KeyServiceError", "parse_address", "send_frame", "recv_frame",
           "pack_request", "unpack_request", "MAGIC", "HELLO", "REENCRYPT", "BYE", "OK", "ERROR",
           "DEFAULT_MAX_BYTES", "DEFAULT_IDLE_SECONDS"]




