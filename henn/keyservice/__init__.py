"""The owner's key service and the trainer's handle on it.

A trainer that holds only public material runs out of noise (``vhe``) or levels
(``ckks``), and a packing scheme asks for re-encryptions into other layouts; only the
secret key can help. The owner serves one *job* (:mod:`henn.jobs`: a fresh key pair,
budgets, allowed refresh targets) from its own process:

* owner: :class:`KeyService` (``henn serve-keys --keys JOB_DIR --listen ADDRESS``);
* trainer: :class:`RemoteKeyHolder` connects, checks that the service holds the key and
  job its model is under, and sends *masked* ciphertexts (and, every ``min_aggregate``
  samples, an encrypted aggregate for the owner's log).

Modules: :mod:`.transport` (addresses, authenticated sockets, framing with
deadlines), :mod:`.tls` (mutual TLS certificates), :mod:`.protocol` (messages),
:mod:`.service`, :mod:`.client`. What each side learns is in ``SECURITY.md``.
"""
from __future__ import annotations

from .client import RemoteKeyHolder
from .protocol import BYE, ERROR, HELLO, OK, REENCRYPT, RELEASE
from .service import JobRefused, KeyService
from .transport import (DEFAULT_IDLE_SECONDS, DEFAULT_MAX_BYTES, KeyServiceError, TransportError, connect,
                        listen, parse_endpoint)

__all__ = ["KeyService", "RemoteKeyHolder", "KeyServiceError", "JobRefused", "TransportError", "connect", "listen",
           "parse_endpoint", "HELLO", "REENCRYPT", "RELEASE", "BYE", "OK", "ERROR", "DEFAULT_MAX_BYTES",
           "DEFAULT_IDLE_SECONDS"]
