"""Fuzz the job-bound key service (``henn serve-keys``) through :meth:`henn.keyservice.KeyService.handle`.

Usage::

    python fuzz/run_keyservice.py --count 3000 [--seed 0] [--scheme ckks|vhe]

A job is made as ``henn job create`` would (a key pair, small budgets, the refresh
targets its training needs, the scale its ciphertexts arrive at) and served by a
:class:`~henn.keyservice.KeyService` whose journal lives in a temporary directory.
The corpus is what a real trainer sends: masked ciphertexts made by the protocol's
own steps (``refresh_plan``, ``MaskedRefresh.draw_mask``, ``apply_mask``) packed with
:func:`henn.keyservice.protocol.pack`, sanitised aggregates over enough samples, and
greetings. Each request is then, or not, damaged: bytes flipped, inserted or deleted
anywhere; the request header edited (request id, target fields, count, its length);
a request id reused with another payload or a payload resent as it was; ciphertexts
forged with residues at or above their prime, scales out of the job's band, zero,
negative or not finite, other shapes, layouts and metadata, and oversized claims.
Every 150 requests the service restarts on its journal (losing its answer cache), and
every 400 a fresh job starts; each job's budgets run out well before.

Checked on every request (a failure is printed and the exit status is 1):

* ``handle`` returns ``(OK, bytes)`` or raises a henn / he_core error (``HEError``),
  which the service answers with ``ERROR``; anything else is a crash;
* the journal never counts more refreshes or releases than the job's budgets;
* no ``OK`` for a ``REENCRYPT`` whose target signature the job does not allow or whose
  scale is outside the band, nor for a ``RELEASE`` below ``min_aggregate`` samples;
* at most one decryption per request id and job (``reencrypt_masked`` and ``decrypt``
  are instrumented), every decryption journaled, and a retried id answered with the
  very bytes of its first answer.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import json
import math
import random
import struct
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import corpus
import numpy as np

import he_core
from he_core import serialization as ser
from he_core.formats import container
from henn import jobs
from henn.keyholder import MaskedRefresh, RefreshTerms
from henn.keyservice import (
    BYE,
    ERROR,
    HELLO,
    OK,
    REENCRYPT,
    RELEASE,
    KeyService,
    protocol,
)

TERMS = RefreshTerms(refreshes=40, entries_per_refresh=2048, releases=4, min_aggregate=10)
EPOCH = 400  # requests per job: its budgets run out within it, then a fresh job starts
RESTART = 150  # the service restarts on its journal this often (its answer cache is lost)
SHOW = 5  # crashes and violations printed in full
BAND_BITS = jobs.SCALE_BAND_BITS  # copied: the invariants must not follow a damaged service


# ---------------------------------------------------------------------------- the world
@dataclasses.dataclass
class Source:
    """A kind of ciphertext a trainer refreshes, and the target it asks for."""

    name: str
    make: Any  # (seed) -> Ciphertext
    target: Any


@dataclasses.dataclass
class World:
    """A scheme with its key, the job's terms, and what a trainer sends under it.

    ``targets`` and ``scale_log2`` are the fuzzer's own copies: the invariants are checked
    against them, not against the service's (possibly damaged) state.
    """

    scheme: Any
    secret: Any
    targets: list[dict]
    scale_log2: float
    sources: list[Source]


def ckks_world(seed: int) -> World:
    """CKKS on a small insecure ring; a job for gathered table rows and slot vectors, as in training."""
    from he_core.schemes.ckks import CkksParams

    params = CkksParams(poly_degree=2048, levels=3, first_bits=60, scale_bits=45, special_bits=60, allow_insecure=True)
    scheme = he_core.get_scheme("ckks", params)
    secret = scheme.keygen(he_core.KeyRequirements(sizes=(1, 8)), rng=he_core.SeededRandom(seed)).secret
    rows = params.poly_degree // 8
    table = scheme.encrypt(np.zeros((rows, 8)), layout="table", rng=he_core.SeededRandom(seed + 1))
    row_target = scheme.layout_of(scheme.encrypt(np.zeros((1, 8)), layout="table"))

    def row(level: int):
        def make(seed: int):
            gen = np.random.default_rng(seed)
            tab = scheme.add(table, scheme.encrypt(gen.normal(0, 0.5, (rows, 8)), layout="table",
                                                   rng=he_core.SeededRandom(seed)))
            return scheme.level_drop(scheme.row_sum(tab, list(gen.integers(0, rows, 3))), level)
        return make

    def slots(level: int, shape=(1, 8)):
        return lambda seed: scheme.level_drop(_encrypt_normal(scheme, shape, seed), level)

    allowed = [scheme.refresh_target_signature(row(1)(0), row_target),
               scheme.refresh_target_signature(slots(1)(0), None)]
    sources = [Source("row@2", row(2), row_target), Source("row@1", row(1), row_target),
               Source("slots@2", slots(2), None),
               Source("slots@1", slots(1), None), Source("slots(2x8)", slots(2, (2, 8)), None),
               Source("row->slots", row(2), None)]
    return World(scheme, secret, allowed, math.log2(table.scale), sources)


def vhe_world(seed: int) -> World:
    """vhe (insecure by design): a job for (2, 3) and (1, 3) tensors; its one layout, named or not."""
    scheme = he_core.get_scheme("vhe")
    secret, _public = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(seed))

    def values(shape):
        return lambda seed: _encrypt_normal(scheme, shape, seed)

    allowed = [scheme.refresh_target_signature(values(shape)(0), None) for shape in ((2, 3), (1, 3))]
    sources = [Source("2x3", values((2, 3)), None), Source("2x3/table", values((2, 3)), "table"),
               Source("1x3", values((1, 3)), None), Source("4x3", values((4, 3)), None),
               Source("1x1", values((1, 1)), None)]
    return World(scheme, secret, allowed, math.log2(scheme.encrypt(np.zeros((1, 3))).scale), sources)


WORLDS = {"ckks": ckks_world, "vhe": vhe_world}


def _encrypt_normal(scheme: Any, shape: tuple[int, int], seed: int) -> Any:
    """Standard normal values, encrypted; both drawn from ``seed``, so a run replays."""
    return scheme.encrypt(np.random.default_rng(seed).normal(0, 1, shape), rng=he_core.SeededRandom(seed))


def new_service(world: World, directory: Path) -> KeyService:
    """A fresh job on the world's key, journaled in ``directory``."""
    spec = jobs.JobSpec(job_id=jobs.new_job_id(), key_id=world.secret.key_id, scheme=world.scheme.name,
                        params_id=world.scheme.params_id, terms=TERMS,
                        targets=[dict(t) for t in world.targets], scale_log2=world.scale_log2,
                        model={"task": "fuzz"})
    directory.mkdir(mode=0o700)
    jobs.write_spec(directory, spec)
    return KeyService(world.scheme, world.secret, spec, jobs.Journal(directory))


# ---------------------------------------------------------------------------- the honest trainer
def reencrypt_request(world: World, rng: random.Random) -> tuple[dict, bytes]:
    """A masked ciphertext and its target, made as :meth:`MaskedRefresh.refresh` makes them."""
    seeded = he_core.SeededRandom(rng.getrandbits(62))
    for _ in range(8):
        source = rng.choice(world.sources)
        ct = source.make(rng.getrandbits(62))
        trainer = MaskedRefresh(world.scheme, TERMS, rng=seeded)
        try:
            plan = world.scheme.refresh_plan(ct, source.target)
            masked = world.scheme.apply_mask(ct, trainer.draw_mask(plan), rng=seeded)
        except he_core.HEError:
            continue  # no room for a mask (level 0) or a target this source cannot take
        return {"request_id": request_id(rng), "target": source.target}, ser.dumps(masked)
    raise RuntimeError("cannot build a refresh request from any source")  # a broken world, not a finding


def release_request(world: World, rng: random.Random) -> tuple[dict, bytes]:
    """A sanitised encrypted aggregate over enough samples, as :meth:`RemoteKeyHolder.release_aggregate` sends."""
    seeded = he_core.SeededRandom(rng.getrandbits(62))
    value = world.scheme.encrypt(np.array([[rng.uniform(-4, 4)]]), rng=seeded)
    clean = world.scheme.sanitize(value, rng=seeded)
    count = rng.choice([TERMS.min_aggregate, TERMS.min_aggregate + 1, 500])
    return {"request_id": request_id(rng), "count": count}, ser.dumps(clean)


# ---------------------------------------------------------------------------- damage
KINDS = {"valid": 16, "release": 6, "hello": 2, "retry": 6, "reuse-id": 6, "bytes": 10, "body-bytes": 8,
         "header": 8, "target": 8, "scale": 7, "residue": 5, "shape": 6, "meta": 6, "oversized": 4, "op": 3}
ODD = [None, True, False, 0, -1, 1, 2, 3, 8, 2**62, 2**80, 1.5, -0.0, math.nan, math.inf, "8", "coeff", [], {}]
_PREAMBLE = struct.Struct("<8sHHQI")  # the container's (he_core.formats.container)
_RAW = "\x00raw\x00"  # a placeholder json.dumps writes as a string, replaced by a raw JSON token


def request_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def pick_kind(rng: random.Random) -> str:
    return rng.choices(list(KINDS), weights=list(KINDS.values()))[0]


def damage(kind: str, op: int, header: dict, body: bytes, world: World, rids: list[str],
           rng: random.Random) -> tuple[int, bytes]:
    """Damage one honest request in the way ``kind`` names; returns (op, payload)."""
    if kind == "bytes":
        payload = protocol.pack(header, body)
        for _ in range(rng.randint(1, 4)):
            payload = corpus.mutate(payload, rng)
        return op, payload
    if kind == "header":
        return op, _damage_header(header, body, rng)
    if kind == "oversized" and rng.random() < 0.4:
        return op, _oversized_header(header, body, rng)
    if kind == "op":
        return rng.choice([RELEASE if op == REENCRYPT else REENCRYPT, 0, BYE, OK, ERROR, 7, 255]), \
            protocol.pack(header, body)
    if kind == "reuse-id" and rids:
        header["request_id"] = rng.choice(rids)
    elif kind == "target":
        header["target"] = _odd_target(header.get("target"), world, rng)
    elif kind in _BODY_DAMAGE:
        body = _BODY_DAMAGE[kind](body, world, rng)
    return op, protocol.pack(header, body)


def _damage_header(header: dict, body: bytes, rng: random.Random) -> bytes:
    """The request header: its id, its fields, its JSON, its length prefix."""
    choice = rng.randrange(5)
    if choice == 0:
        header["request_id"] = rng.choice(["", "A" * 32, "g" * 32, "0" * 31, "0" * 33, 7, None, ["0" * 32],
                                           header["request_id"] + "\n"])
    elif choice == 1:
        header[rng.choice(["count", "target", "extra", "request_id"])] = rng.choice(ODD)
    elif choice == 2:
        header.pop(rng.choice(sorted(header)))
    elif choice == 3:  # not an object, a duplicated key, or not JSON at all
        text = rng.choice([b"[]", b'"x"', b"1", b"null", b"{", b"\xff\xfe",
                           b'{"request_id": "%s", "request_id": "%s"}' % (b"0" * 32, b"1" * 32)])
        return struct.pack(">I", len(text)) + text + body
    else:
        payload = bytearray(protocol.pack(header, body))
        (size,) = struct.unpack_from(">I", payload)
        struct.pack_into(">I", payload, 0, rng.choice([0, 1, size - 1, size + 1, len(payload), 2**32 - 1]))
        return bytes(payload)
    return protocol.pack(header, body)


def _oversized_header(header: dict, body: bytes, rng: random.Random) -> bytes:
    """Claims the service must not trust: huge counts, a header over the 64 KiB limit, deep nesting."""
    choice = rng.randrange(4)
    if choice == 0:
        header["count"] = rng.choice([2**63, 2**80, 10**400])
    elif choice == 1:
        header["pad"] = "x" * rng.choice([protocol.MAX_HEADER - 60, protocol.MAX_HEADER + 1, 1 << 20])
    elif choice == 2:
        header["target"] = {str(i): i for i in range(20000)}
    else:  # nesting that json.dumps would refuse to write: sent as text, within the header limit
        depth = rng.choice([500, 5000, 30000])
        text = b'{"request_id": "%s", "target": %s}' % (header["request_id"].encode(), b"[" * depth + b"]" * depth)
        return struct.pack(">I", len(text)) + text + body
    return protocol.pack(header, body)


def _odd_target(target: Any, world: World, rng: random.Random) -> Any:
    """A target field replaced by a wrong value, or another target altogether."""
    if isinstance(target, dict) and rng.random() < 0.6:
        bad = dict(target)
        bad[rng.choice([*bad, "extra"])] = rng.choice(ODD + [2**20, -8, 16, 4])
        return bad
    scheme = world.scheme
    levels = getattr(scheme.params, "levels", 0)
    others = [None, "table", "slots", 7, [], "x" * 50, {"layout": "table"}, {"layout": "coeff"}]
    if scheme.name == "ckks":
        others += [{"layout": kind, "level": lv, "scale": scheme._scale_at(lv), "stride": 8, "rev": rev}
                   for kind in ("slots", "constant", "coeff") for lv in range(levels + 1) for rev in (False, True)]
    return rng.choice(others)


# -- the ciphertext file, rewritten (and resealed: the digest matches, so the damage reaches the checks)
def _edit_header(blob: bytes, edit: Any, raw: bytes | None = None) -> bytes:
    """Apply ``edit`` to the file's JSON header; a ``_RAW`` string becomes ``raw``, unquoted."""
    magic, version, flags, _total, head_len = _PREAMBLE.unpack_from(blob)
    head = json.loads(blob[_PREAMBLE.size:_PREAMBLE.size + head_len])
    edit(head)
    text = json.dumps(head, separators=(",", ":")).encode()
    if raw is not None:
        text = text.replace(json.dumps(_RAW).encode(), raw)
    arrays = blob[_PREAMBLE.size + head_len:len(blob) - container.DIGEST_SIZE]
    core = _PREAMBLE.pack(magic, version, flags, _PREAMBLE.size + len(text) + len(arrays) + container.DIGEST_SIZE,
                          len(text)) + text + arrays
    return core + hashlib.sha256(core).digest()


def _edit_arrays(blob: bytes, edit: Any) -> bytes:
    header, arrays = container.unpack(blob)
    name = next(k for k in arrays if k.endswith("/data"))
    arrays[name] = edit(arrays[name])
    return container.pack(header, list(arrays.items()))


def _scale(body: bytes, world: World, rng: random.Random) -> bytes:
    """Out of the band, zero, negative, tiny, not finite, not a number, or too large for a float."""
    job = 2.0 ** world.scale_log2
    value = rng.choice([job * 2 ** (BAND_BITS + 0.5), job / 2 ** (BAND_BITS + 0.5), job * 2**9.5, 0.0, -job, 5e-324,
                        math.nan, math.inf, -math.inf, _RAW, _RAW, "45", True, None, 1.0])
    raw = rng.choice([b"1e999", b"-1e999", b"1" + b"0" * 400, b"NaN"]) if value == _RAW else None
    return _edit_header(body, lambda h: h.__setitem__("scale", value), raw)


def _residue(body: bytes, world: World, rng: random.Random) -> bytes:
    """One entry at or above its prime (CKKS), or at the edge of int64 (vhe)."""
    def edit(data: np.ndarray) -> np.ndarray:
        index = tuple(rng.randrange(d) for d in data.shape)
        if world.scheme.name == "ckks":
            q = world.scheme.ring.q[index[2]]
            data[index] = rng.choice([q, q + 1, q + 3, 2 * q, 2**64 - 1])
        else:
            data[index] = rng.choice([2**63 - 1, -(2**63), 2**62, -(2**62)])
        return data
    return _edit_arrays(body, edit)


def _shape(body: bytes, world: World, rng: random.Random) -> bytes:
    """The recorded shape, or the data array's (a limb, a component, coefficients dropped or added)."""
    if rng.random() < 0.5:
        shape = rng.choice([[2, 8], [1, 9], [0, 8], [1, 0], [8, 1], [2, 3], [1, 3], [1, 1], [2**40, 8], [1],
                            [1, 8, 1], [-1, 8], [True, 8], "1x8"])
        return _edit_header(body, lambda h: h.__setitem__("shape", shape))

    def edit(data: np.ndarray) -> np.ndarray:
        axis = rng.randrange(data.ndim)
        choice = rng.randrange(5)
        if choice == 0:
            return np.take(data, range(max(data.shape[axis] - 1, 0)), axis=axis)
        if choice == 1:
            return np.concatenate([data, np.take(data, [0], axis=axis)], axis=axis)
        if choice == 2:
            return data.reshape(-1)
        if choice == 3:
            return data.astype(rng.choice([np.int64, np.float64, np.uint8]))
        return np.take(data, range(data.shape[axis] // 2), axis=axis)
    return _edit_arrays(body, edit)


def _meta(body: bytes, world: World, rng: random.Random) -> bytes:
    """One layout or noise field of the ciphertext's metadata, or the whole of it."""
    def edit(head: dict) -> None:
        meta = head.get("meta", {}).get("$d")
        if not isinstance(meta, dict) or rng.random() < 0.1:
            head["meta"] = rng.choice([{}, [], None, {"$d": {}}])
            return
        meta[rng.choice([*meta, "coeff", "rev", "extra"])] = rng.choice(ODD + [-1e300, 1e300, 2**20, 16, 4])
    return _edit_header(body, edit)


def _oversized_body(body: bytes, world: World, rng: random.Random) -> bytes:
    """The data array's first dimension claims far more than the file holds (reseal keeps the digest right)."""
    magic_len = _PREAMBLE.size + _PREAMBLE.unpack_from(body)[4] + 4
    (name_len,) = struct.unpack_from("<H", body, magic_len)
    dims = magic_len + 2 + name_len + 2
    data = bytearray(body)
    struct.pack_into("<Q", data, dims, rng.choice([2**31, 2**40, 2**63 - 1, 2**64 - 1]))
    return corpus.reseal(bytes(data))


def _body_bytes(body: bytes, world: World, rng: random.Random) -> bytes:
    for _ in range(rng.randint(1, 3)):
        body = corpus.mutate(body, rng)
    return corpus.reseal(body) if rng.random() < 0.7 else body


_BODY_DAMAGE = {"scale": _scale, "residue": _residue, "shape": _shape, "meta": _meta, "oversized": _oversized_body,
                "body-bytes": _body_bytes}


# ---------------------------------------------------------------------------- the invariants
class Monitor:
    """Counts the service's decryptions per request id and checks every answer against the job's terms."""

    def __init__(self, world: World):
        self.world = world
        self.decrypted: set[str] = set()  # ids decrypted under the current job
        self.unjournaled: set[str] = set()  # ... and not journaled after their latest decryption
        self.answers: dict[str, bytes] = {}  # first OK answer per id, for retries
        self._calls: list[str | None] = []
        self.rid: str | None = None
        scheme = world.scheme
        real_reencrypt, real_decrypt = scheme.reencrypt_masked, scheme.decrypt

        def reencrypt_masked(*args, **kwargs):
            self._calls.append(self.rid)
            return real_reencrypt(*args, **kwargs)

        def decrypt(*args, **kwargs):
            self._calls.append(self.rid)
            return real_decrypt(*args, **kwargs)

        scheme.reencrypt_masked, scheme.decrypt = reencrypt_masked, decrypt

    def new_job(self) -> None:
        self.decrypted.clear()
        self.unjournaled.clear()
        self.answers.clear()

    def begin(self, payload: bytes) -> None:
        self._calls = []
        try:
            self.rid = protocol.unpack(payload)[0]["request_id"]
        except Exception:  # noqa: BLE001 - whatever the service makes of it, no decryption may follow
            self.rid = None

    def check(self, service: KeyService, op: int, payload: bytes, reply: tuple[int, bytes] | None) -> list[str]:
        """Everything wrong with how the service handled this request (empty if nothing)."""
        bad = self._decryptions(service)
        journal = service.journal
        if journal.refreshes > TERMS.refreshes or journal.releases > TERMS.releases:
            bad.append(f"budget overrun: {journal.refreshes} refreshes, {journal.releases} releases journaled")
        if reply is not None:
            bad += self._answer(op, payload, reply[1])
        return bad

    def _decryptions(self, service: KeyService) -> list[str]:
        bad = [f"several decryptions for one request: {len(self._calls)}"] if len(self._calls) > 1 else []
        for rid in self._calls:
            if rid is None:
                bad.append("decryption without a well-formed request id")
                continue
            if rid in self.decrypted:  # a journaled id must come from the cache; an unjournaled one is a known leak
                when = "never journaled" if rid in self.unjournaled else "journaled"
                bad.append(f"second decryption of a {when} request id: {rid}")
            if rid in service.journal.seen:
                self.unjournaled.discard(rid)
            else:
                self.unjournaled.add(rid)
                bad.append(f"decrypted but not journaled: request id {rid} (no budget spent; a retry decrypts again)")
            self.decrypted.add(rid)
        return bad

    def _answer(self, op: int, payload: bytes, body: bytes) -> list[str]:
        if op == HELLO:
            return []
        if op not in (REENCRYPT, RELEASE):
            return [f"OK for an op that is not a request: {op}"]
        header, blob = protocol.unpack(payload)
        rid = header["request_id"]
        first = self.answers.setdefault(rid, body)
        bad = [f"retry answered with other bytes: request id {rid}"] if first != body else []
        try:
            ct = ser.loads(blob, expect_kind="ciphertext", allow_insecure=True)
        except he_core.HEError as exc:
            return [*bad, f"OK for a body that does not load: {exc}"]
        scale = ct.scale
        if not (math.isfinite(scale) and scale > 0
                and abs(math.log2(scale) - self.world.scale_log2) <= BAND_BITS):
            return [*bad, f"answered outside the scale band: {scale!r} (the job's: 2^{self.world.scale_log2:.2f})"]
        if op == RELEASE:
            return bad + self._release_terms(header, ct, body)
        return bad + self._refresh_terms(header, ct, body)

    def _release_terms(self, header: dict, ct: Any, body: bytes) -> list[str]:
        count = header.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < TERMS.min_aggregate:
            return [f"release answered below min_aggregate: count {count!r}"]
        if tuple(ct.shape) != (1, 1) or body:
            return [f"release answered for a non-scalar or with a value: shape {ct.shape}, {len(body)} bytes"]
        return []

    def _refresh_terms(self, header: dict, ct: Any, body: bytes) -> list[str]:
        try:
            sig = self.world.scheme.refresh_target_signature(ct, header.get("target"))
        except he_core.HEError as exc:
            return [f"refresh answered for a target with no signature: {exc}"]
        if not any(_covers(allowed, sig) for allowed in self.world.targets):
            return [f"refresh answered for a signature the job does not allow: {sig}"]
        fresh = ser.loads(body, expect_kind="ciphertext", allow_insecure=True)
        return [] if tuple(fresh.shape) == tuple(ct.shape) else [f"answer of another shape: {fresh.shape} for {ct.shape}"]


def _covers(allowed: dict, sig: dict) -> bool:
    """The job's rule, written out again: equal but for the source level, which may be higher."""
    rest = {k: v for k, v in allowed.items() if k != "level_in"}
    return rest == {k: v for k, v in sig.items() if k != "level_in"} and \
        sig.get("level_in", 0) >= allowed.get("level_in", 0)


# ---------------------------------------------------------------------------- the run
@dataclasses.dataclass
class Report:
    """What a run saw. ``crash_sites`` counts (exception type, innermost henn / he_core frame)."""

    scheme: str
    requests: int = 0
    seconds: float = 0.0  # wall clock, building the requests included
    handle_seconds: float = 0.0  # inside KeyService.handle only
    crashes: int = 0
    crash_sites: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    violations: list[str] = dataclasses.field(default_factory=list)
    outcomes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    jobs: int = 0
    restarts: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


class Session:
    """The service under test, its job history (for retries and reused ids) and the monitor."""

    def __init__(self, world: World, root: Path, rng: random.Random):
        self.world, self.root, self.rng = world, root, rng
        self.monitor = Monitor(world)
        self.history: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=200)
        self.rids: list[str] = []  # well-formed request ids sent under the current job
        self.service: KeyService | None = None
        self.job_dir: Path | None = None
        self.jobs = 0

    def start_job(self) -> None:
        if self.service is not None:
            self.service.journal.close()
        self.jobs += 1
        self.job_dir = self.root / f"job{self.jobs}"
        self.service = new_service(self.world, self.job_dir)
        self.monitor.new_job()
        self.history.clear()
        self.rids.clear()

    def restart(self) -> None:
        """A new service process on the same job: the journal survives, the answer cache does not."""
        self.service.journal.close()
        self.service = KeyService(self.world.scheme, self.world.secret, self.service.spec, jobs.Journal(self.job_dir))

    def request(self) -> tuple[str, int, bytes]:
        """The next request: (how it was made, op, payload)."""
        kind = pick_kind(self.rng)
        if kind == "hello":
            return kind, HELLO, b""
        if kind == "retry" and self.history:
            return (kind, *self.rng.choice(self.history))
        if kind == "release" or self.rng.random() < 0.15:  # damage reaches releases too
            op, (header, body) = RELEASE, release_request(self.world, self.rng)
        else:
            op, (header, body) = REENCRYPT, reencrypt_request(self.world, self.rng)
        if kind in ("valid", "release", "retry"):
            return kind, op, protocol.pack(header, body)
        op, payload = damage(kind, op, header, body, self.world, self.rids, self.rng)
        return kind, op, payload


def run(scheme: str, count: int, seed: int = 0, *, show: int = SHOW) -> Report:
    """Send ``count`` requests to fresh jobs' services.

    Args:
        scheme: ``"ckks"`` or ``"vhe"``.
        count: requests to send.
        seed: drives every choice and every ciphertext the fuzzer makes (the service's
            own randomness is the OS's), so a run replays.
        show: crashes and violations printed in full (to stderr).

    Returns:
        The :class:`Report`.
    """
    rng = random.Random(seed)
    report = Report(scheme)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="henn-fuzz-keys-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        session = Session(WORLDS[scheme](seed), Path(tmp), rng)
        for i in range(count):
            if i % EPOCH == 0:
                session.start_job()
                report.jobs += 1
            elif i % RESTART == 0:
                session.restart()
                report.restarts += 1
            kind, op, payload = session.request()
            _one(session, report, kind, op, payload, show)
        session.service.journal.close()
    report.seconds = time.perf_counter() - started
    return report


def _one(session: Session, report: Report, kind: str, op: int, payload: bytes, show: int) -> None:
    """Send one request, classify its outcome and check the invariants."""
    session.monitor.begin(payload)
    reply, started = None, time.perf_counter()
    try:
        reply = session.service.handle(op, payload)
        outcome = "OK" if reply[0] == OK else f"reply {reply[0]}"
    except he_core.HEError as exc:
        outcome = type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - what we are hunting
        outcome = f"CRASH {type(exc).__name__}"
        report.crashes += 1
        report.crash_sites[type(exc).__name__, _site(exc)] += 1
        if report.crashes <= show:
            print(f"crash on a {kind!r} request, op {op}, payload {_describe(payload)}:", file=sys.stderr)
            traceback.print_exc()
    report.handle_seconds += time.perf_counter() - started
    report.requests += 1
    report.outcomes[kind, outcome] += 1
    session.history.append((op, payload))
    if session.monitor.rid is not None:
        session.rids.append(session.monitor.rid)
    for problem in session.monitor.check(session.service, op, payload, reply):
        report.violations.append(f"{problem} [a {kind!r} request, op {op}]")
        if len(report.violations) <= show:
            print(f"violation on a {kind!r} request: {problem}; payload {_describe(payload)}", file=sys.stderr)


def _site(exc: BaseException) -> str:
    """``path:function`` of the innermost frame in the library (henn / he_core), where the fix belongs."""
    root = Path(__file__).resolve().parents[1]
    site = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(root) and path.parts[len(root.parts)] in ("henn", "he_core"):
            site = f"{path.relative_to(root)}:{frame.name}"
    return site


def _describe(payload: bytes) -> str:
    try:
        header, body = protocol.unpack(payload)
    except Exception:  # noqa: BLE001 - a payload that crashes the parser is described by its bytes
        return f"{len(payload)} bytes, starting {payload[:48]!r}"
    return f"header {header!r} + {len(body)}-byte body"


def print_report(report: Report) -> None:
    print(f"{report.scheme}: {report.requests} requests in {report.seconds:.1f} s ({report.rate:.0f} requests/s; "
          f"{report.handle_seconds:.1f} s inside handle), {report.jobs} jobs, {report.restarts} restarts")
    for kind in sorted({k for k, _ in report.outcomes}):
        rows = sorted(((n, o) for (k, o), n in report.outcomes.items() if k == kind), reverse=True)
        print(f"  {kind:10s} " + ", ".join(f"{o} {n}" for n, o in rows[:6]))
    print(f"crashes (exceptions other than HEError): {report.crashes}")
    for (name, site), n in report.crash_sites.most_common():
        print(f"  {n:5d}  {name} in {site}")
    print(f"invariant violations: {len(report.violations)}")
    for problem, n in collections.Counter(v.split(":")[0] for v in report.violations).most_common():
        print(f"  {n:5d}  {problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scheme", choices=sorted(WORLDS), default="ckks")
    args = parser.parse_args(argv)
    report = run(args.scheme, args.count, args.seed)
    print_report(report)
    return 1 if report.crashes or report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
