"""Jobs: one trainer engagement, one fresh key pair, one budget, and the owner's journal of it.

A job is what the owner's key service serves. ``henn job create`` makes it in a key
directory that must not hold a key yet: a fresh key pair (never reused: a second job
on a key is refused, and nothing the owner needs is deleted to make room), the terms
(:class:`~henn.keyholder.RefreshTerms`: refresh and release budgets, lambda), the
refresh targets the model's training may ask for (learnt from a dry run of its
training step, so anything else is refused), and the scale its ciphertexts arrive at.
``henn job close`` releases the returned model (noise-flooded) if asked and destroys
the secret key; a closed job is never served again.

Files in the job directory (0700): ``public.henn`` / ``secret.henn`` (the key pair,
see :mod:`henn.lifecycle`), ``job.json`` (terms, targets, state), and ``journal.jsonl``:
one line per request served (its id, a digest of its payload, what it was), appended
before the answer is sent, so a restarted service cannot be talked into spending its
budget twice. Released aggregates are written there too: the journal is the owner's
monitoring log.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any, Iterable

from he_core.errors import FormatError, HEError

from .keyholder import RefreshTerms

JOB_FILE = "job.json"
JOURNAL_FILE = "journal.jsonl"
JOB_FORMAT = "henn-job-1"
#: A request's scale may differ from the job's by at most this many bits (plaintext factors
#: folded into the recorded scale); anything further is refused.
SCALE_BAND_BITS = 10.0


class JobError(HEError, ValueError):
    """A job cannot be created, served or closed as asked (named in the message)."""


@dataclasses.dataclass
class JobSpec:
    """What a job fixes, as stored in ``job.json``.

    Attributes:
        job_id: random identifier (hex).
        key_id, scheme, params_id: the job's key pair.
        terms: budgets and statistical security.
        targets: the refresh signatures allowed (see :meth:`he_core.Scheme.refresh_target_signature`).
        scale_log2: the job's scale; requests within ``SCALE_BAND_BITS`` of it are accepted.
        model: what the job was created for (task, the encrypted model's file digest).
        state: ``"open"`` or ``"closed"``.
    """

    job_id: str
    key_id: str
    scheme: str
    params_id: str
    terms: RefreshTerms
    targets: list[dict]
    scale_log2: float
    model: dict
    state: str = "open"
    created: float = dataclasses.field(default_factory=time.time)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["terms"] = self.terms.to_dict()
        out["format"] = JOB_FORMAT
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "JobSpec":
        if not isinstance(data, dict) or data.get("format") != JOB_FORMAT:
            raise FormatError(f"cannot read the job: not a {JOB_FORMAT} record")
        try:
            fields = {k: data[k] for k in ("job_id", "key_id", "scheme", "params_id", "targets", "scale_log2",
                                           "model", "state", "created")}
            return cls(terms=RefreshTerms.from_dict(data["terms"]), **fields)
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"cannot read the job: malformed record ({exc})") from None

    def public(self) -> dict:
        """What the trainer may know of the job (sent in the service's greeting and the model file)."""
        return {"job_id": self.job_id, "key_id": self.key_id, "terms": self.terms.to_dict(),
                "targets": self.targets, "scale_log2": self.scale_log2}

    def allows(self, signature: dict) -> bool:
        """Whether a refresh with this signature is one the job allows (its source level may be any at or above)."""
        for allowed in self.targets:
            if {k: v for k, v in allowed.items() if k != "level_in"} == \
                    {k: v for k, v in signature.items() if k != "level_in"} \
                    and signature.get("level_in", 0) >= allowed.get("level_in", 0):
                return True
        return False


def new_job_id() -> str:
    return secrets.token_hex(8)


def unique_signatures(signatures: Iterable[dict]) -> list[dict]:
    """The distinct signatures, each with the lowest source level seen (the job allows that level and above)."""
    best: dict[str, dict] = {}
    for sig in signatures:
        key = json.dumps({k: v for k, v in sig.items() if k != "level_in"}, sort_keys=True)
        if key not in best or sig.get("level_in", 0) < best[key].get("level_in", 0):
            best[key] = dict(sig)
    return [best[k] for k in sorted(best)]


# ---------------------------------------------------------------------------- files
def job_path(keys_dir: str | os.PathLike) -> Path:
    return Path(keys_dir) / JOB_FILE


def write_spec(keys_dir: str | os.PathLike, spec: JobSpec) -> Path:
    """Write ``job.json`` atomically, owner-only."""
    path = job_path(keys_dir)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(spec.to_dict(), handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def read_spec(keys_dir: str | os.PathLike) -> JobSpec:
    """The job of a key directory.

    Raises:
        JobError: the directory holds no job (a bare key directory is not served).
        FormatError: a damaged record.
    """
    path = job_path(keys_dir)
    if not path.exists():
        raise JobError(f"cannot use {keys_dir}: it holds no job; the key service serves jobs only "
                       "(create one with henn job create --keys DIR --model FILE ...)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FormatError(f"cannot read the job {path}: {exc}") from None
    return JobSpec.from_dict(data)


class Journal:
    """The append-only record of every request a job served (and the aggregates released to the owner).

    Counters are recomputed from it when a service starts, so restarting the service
    neither resets the budget nor forgets which request ids were answered.
    """

    def __init__(self, keys_dir: str | os.PathLike):
        self.path = Path(keys_dir) / JOURNAL_FILE
        self.refreshes = 0
        self.releases = 0
        self.entries = 0
        self.seen: dict[str, str] = {}  # request id -> payload digest
        self.aggregates: list[dict] = []
        if self.path.exists():
            self._replay()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._handle = os.fdopen(fd, "a", encoding="utf-8")

    def _replay(self) -> None:
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                entry = json.loads(line)
                self._count(entry)
            except (ValueError, KeyError, TypeError):
                raise FormatError(f"cannot replay the job journal {self.path}: line {number} is damaged") from None

    def _count(self, entry: dict) -> None:
        self.seen[entry["id"]] = entry["digest"]
        if entry["kind"] == "refresh":
            self.refreshes += 1
            self.entries += int(entry.get("entries", 0))
        elif entry["kind"] == "release":
            self.releases += 1
            if "value" in entry:
                self.aggregates.append({k: entry[k] for k in ("time", "count", "value", "scale") if k in entry})

    def record(self, request_id: str, digest: str, kind: str, **extra: Any) -> None:
        """Append one served request (before its answer leaves the service)."""
        entry = {"time": time.time(), "id": request_id, "digest": digest, "kind": kind, **extra}
        self._handle.write(json.dumps(entry, sort_keys=True) + "\n")
        self._handle.flush()
        self._count(entry)

    def close(self) -> None:
        self._handle.close()


def payload_digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()
