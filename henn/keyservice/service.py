"""The owner's side of the key service: one job's masked re-encryptions and released aggregates.

The service holds one job's secret key (:mod:`henn.jobs`) and answers exactly two
kinds of request, each within the job's terms:

* ``REENCRYPT``: a masked ciphertext and a target. The ciphertext is validated as any
  received object (format, key, structure, residues below their primes, a finite
  positive scale within the job's band), the target's public signature must be one
  the job allows, the masked entries it reads must stay within the job's per-refresh
  and total counts (they sized the masks), and the refresh budget must not be spent. The answer is
  :meth:`he_core.Scheme.reencrypt_masked`: a fresh encryption of the target's public
  map of the masked plaintext. Nothing depends on the values: no value-dependent
  refusal, no substitute answer.
* ``RELEASE``: an encrypted aggregate over at least ``min_aggregate`` samples, which the
  trainer refreshed through this service (so its noise is the service's own). It is
  decrypted with noise flooding sized for the job's release budget and written to the
  job's journal for the owner; the trainer gets an empty ``OK`` (a decryption handed
  back to the party that chose the ciphertext would be a decryption oracle).

Every answered request is journaled (id, payload digest) before its answer is sent;
a retried request id with the same payload gets the cached answer, with another
payload an error: no budget is spent twice and no second masked view is shown.
"""
from __future__ import annotations

import json
import math
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

from he_core import Ciphertext, HEError, Scheme, SecretKey
from he_core import serialization as ser

from .. import jobs, lifecycle
from ..keyholder import BudgetExhausted, check_scale
from . import protocol
from .protocol import BYE, ERROR, HELLO, OK, REENCRYPT, RELEASE
from .transport import Connection, KeyServiceError, TransportError, listen

CACHE_ANSWERS = 64  # answers kept for retries (each at most one ciphertext)
#: The one refusal a request gets once decryption has begun (never a message that depends on a value).
VALUE_BLIND = "the request could not be served (the budget was spent; the reason is not disclosed)"
SERVICE_VERSION = 2


class JobRefused(KeyServiceError):
    """A request outside the job's terms (budget, target, scale, request id)."""


class KeyService:
    """Serve one job under its secret key, one connection at a time.

    Args:
        scheme: the scheme, with the job's public keys installed.
        secret: the job's secret key (it never leaves this object's process).
        spec: the job (:class:`henn.jobs.JobSpec`); a closed job is refused.
        journal: the job's journal (counters replayed from it).

    Attributes:
        connections, errors: connections served and requests answered with ``ERROR``.
    """

    def __init__(self, scheme: Scheme, secret: SecretKey, spec: jobs.JobSpec, journal: jobs.Journal):
        if spec.state != "open":
            raise jobs.JobError(f"cannot serve job {spec.job_id}: it is {spec.state} (a key serves one job, once)")
        if (secret.key_id, scheme.name, scheme.params_id) != (spec.key_id, spec.scheme, spec.params_id):
            raise jobs.JobError(f"cannot serve job {spec.job_id}: the key directory's key {secret.key_id} is not "
                                f"the job's key {spec.key_id}")
        self.scheme, self._secret, self.spec, self.journal = scheme, secret, spec, journal
        self.connections = 0
        self.errors = 0
        self._answers: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        #: Answers kept for retries; a service whose trainers replay whole tasks keeps more.
        self.cache_answers = CACHE_ANSWERS
        self._stop = False

    @classmethod
    def from_job(cls, keys_dir: str | Path, *, passphrase: bytes | None = None,
                 allow_insecure: bool = False) -> "KeyService":
        """Load a job's key directory (owner only)."""
        spec = jobs.read_spec(keys_dir)
        if spec.state != "open":  # before looking for a key: a closed job's key is gone
            raise jobs.JobError(f"cannot serve job {spec.job_id}: it is {spec.state} (a key serves one job, once)")
        scheme, _public, secret = lifecycle.load_owner(keys_dir, passphrase, allow_insecure=allow_insecure)
        return cls(scheme, secret, spec, jobs.Journal(keys_dir))

    def hello(self) -> dict[str, Any]:
        return {"service": "henn-keys", "version": SERVICE_VERSION, "scheme": self.scheme.name,
                "params_id": self.scheme.params_id, "key_id": self._secret.key_id, "job": self.spec.public()}

    # ------------------------------------------------------------------ requests
    def handle(self, op: int, payload: bytes) -> tuple[int, bytes]:
        """Answer one request (the transport-free part, tested on its own)."""
        if op == HELLO:
            return OK, json.dumps(self.hello()).encode()
        if op not in (REENCRYPT, RELEASE):
            raise KeyServiceError(f"unknown key service request {op}")
        header, body = protocol.unpack(payload)
        rid, digest = header["request_id"], jobs.payload_digest(payload)
        if rid in self.journal.seen:
            return self._retry(rid, digest)
        ct = self._received(body)
        if op == REENCRYPT:
            answer = self._reencrypt(ct, header.get("target"), rid, digest)
        else:
            answer = self._release(ct, header.get("count"), header.get("scale", 1.0), rid, digest)
        self._answers[rid] = (digest, answer)
        while len(self._answers) > self.cache_answers:
            self._answers.popitem(last=False)
        return OK, answer

    def _retry(self, rid: str, digest: str) -> tuple[int, bytes]:
        cached = self._answers.get(rid)
        if self.journal.seen[rid] != digest:
            raise JobRefused(f"request id {rid} was used for another request: a retry must resend the same bytes")
        if cached is None:
            raise JobRefused(f"request {rid} was answered and its answer is no longer held; it will not be "
                             "decrypted again (send a new request)")
        return OK, cached[1]

    def _received(self, body: bytes) -> Ciphertext:
        """Parse and validate a received ciphertext: format, key, structure, residues, scale band."""
        # The job's own parameter set was accepted when the job was made; validate() below
        # refuses any other one.
        ct = ser.loads(body, expect_kind="ciphertext", expect_scheme=self.scheme.name,
                       expect_key_id=self._secret.key_id, allow_insecure=self.scheme.params.security_bits < 128)
        self.scheme.validate(ct)
        offset = math.log2(ct.scale) - self.spec.scale_log2
        if abs(offset) > jobs.SCALE_BAND_BITS:
            raise JobRefused(f"cannot serve a ciphertext at scale 2^{math.log2(ct.scale):.2f}: the job's scale is "
                             f"2^{self.spec.scale_log2:.2f} (within {jobs.SCALE_BAND_BITS:g} bits)")
        return ct

    def _reencrypt(self, ct: Ciphertext, target: Any, rid: str, digest: str) -> bytes:
        terms = self.spec.terms
        if self.journal.refreshes >= terms.refreshes:
            raise BudgetExhausted(f"the job's budget of {terms.refreshes} refreshes is spent")
        # Everything that depends on the request alone is decided before anything is decrypted.
        signature = self.scheme.refresh_target_signature(ct, target)
        if not self.spec.allows(signature):
            raise JobRefused(f"the job does not allow the refresh {signature}")
        entries = int(self.scheme.refresh_plan(ct, target).n_read)
        # The masks were sized for the job's entries: a request reading more (e.g. extra
        # ciphertexts under an identity map) would thin every mask's margin.
        if entries > terms.entries_per_refresh:
            raise JobRefused(f"the refresh reads {entries} masked entries; the job allows {terms.entries_per_refresh} "
                             "per refresh")
        if self.journal.entries + entries > terms.entries_budget:
            raise BudgetExhausted(f"the job's masks were sized for {terms.entries_budget} masked entries in all; "
                                  f"{self.journal.entries} are spent and this refresh reads {entries}")
        self.journal.record(rid, digest, "refresh", entries=entries)  # spent, whatever happens next
        try:
            return ser.dumps(self.scheme.reencrypt_masked(ct, target, self._secret))
        except Exception:  # noqa: BLE001 - the same answer whatever failed: no message may depend on a value
            raise JobRefused(VALUE_BLIND) from None

    def _release(self, ct: Ciphertext, count: Any, scale: Any, rid: str, digest: str) -> bytes:
        terms = self.spec.terms
        if isinstance(count, bool) or not isinstance(count, int) or count < terms.min_aggregate:
            raise JobRefused(f"an aggregate must cover at least {terms.min_aggregate} samples, got {count!r}")
        try:  # public metadata for the owner's log: how to read the value, nothing decrypted depends on it
            scale = check_scale(scale)
        except ValueError as exc:
            raise JobRefused(str(exc)) from None
        if tuple(ct.shape) != (1, 1):
            raise JobRefused(f"an aggregate is one value, not {ct.shape}")
        if self.journal.releases >= terms.releases:
            raise BudgetExhausted(f"the job's budget of {terms.releases} released aggregates is spent")
        try:
            # Flooded for the job's release budget like any decryption that is written down:
            # the journal is a file, and status prints it. The trainer re-encrypted the
            # aggregate through this service first, so its noise is this service's own.
            value = float(self.scheme.decrypt(ct, self._secret, flooding=terms.flooding)[0, 0])
        except Exception:  # noqa: BLE001 - as for re-encryptions: one answer whatever failed
            value = float("nan")
        self.journal.record(rid, digest, "release", count=count, value=value, scale=scale)
        return b""

    # ------------------------------------------------------------------ serving
    def serve(self, address: str, *, tls_dir: str | None = None, ready: Callable[[str], None] | None = None,
              **limits: Any) -> None:
        """Listen on ``address`` (Unix socket or ``tls://``) until :meth:`stop` (or a signal handler) ends it."""
        with listen(address, tls_dir=tls_dir, **limits) as listener:
            if ready is not None:
                ready(str(listener.address))
            while not self._stop:
                conn = listener.accept(timeout=0.5)
                if conn is None:
                    continue
                self.connections += 1
                self._dispatch(conn)

    def _dispatch(self, conn: Any) -> None:
        """Serve one accepted connection (here, before the next is accepted: one at a time)."""
        with conn:
            self._serve_connection(conn)

    def stop(self) -> None:
        self._stop = True

    def _serve_connection(self, conn: Connection) -> None:
        while not self._stop:
            try:
                frame = conn.recv()
            except (TransportError, OSError):
                self.errors += 1
                return  # a broken stream cannot be resynchronised: drop the connection
            if frame is None or frame[0] == BYE:
                return
            op, body = self._answer(*frame)
            try:
                conn.send(op, body)
            except (TransportError, OSError):
                return

    def _answer(self, op: int, payload: bytes) -> tuple[int, bytes]:
        try:
            return self.handle(op, payload)
        except (HEError, ValueError, TypeError) as exc:
            self.errors += 1
            return ERROR, f"{type(exc).__name__}: {exc}".encode()
        except Exception as exc:  # noqa: BLE001 - one bad request must not stop the service
            self.errors += 1
            print(f"henn serve-keys: request failed unexpectedly: {type(exc).__name__}: {exc}", file=sys.stderr)
            return ERROR, b"internal error (reported on the key service's side)"

    def counters(self) -> dict[str, Any]:
        return {"job_id": self.spec.job_id, "refresh_rounds": self.journal.refreshes,
                "releases": self.journal.releases, "masked_entries": self.journal.entries,
                "connections": self.connections, "errors": self.errors,
                "aggregates": self.journal.aggregates[-5:]}

