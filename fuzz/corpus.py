"""Valid henn files of every kind and ways to damage them, shared by the fuzz test and runner.

Mutations come in two flavours: plain ones (the digest then no longer matches, so
they test the envelope checks) and *resealed* ones, where the digest and length are
recomputed after the damage so the input reaches the header and array parsers (a
signed file keeps its old signature trailer: the parsers are reached when no signature
is required, the signature check when one is).

The corpus holds signed files (by :data:`OWNER`, a fixed key) and a secret key sealed
under :data:`PASSPHRASE`, so the signature check and the unsealing path see damage too.
"""
from __future__ import annotations

import hashlib
import io
import random
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import he_core
from he_core import serialization
from he_core.formats import container
from he_core.formats.signing import SigningKey

OWNER = SigningKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))  # fixed: reproducible corpus
PASSPHRASE = b"fuzz passphrase"


def usable_schemes() -> list[str]:
    """Schemes that can be created here; a scheme still under construction is skipped."""
    names = []
    for name in ("plain", "vhe", "ckks"):
        try:
            he_core.get_scheme(name)
        except Exception:  # noqa: BLE001 - not built yet, half-written, missing native part
            continue
        names.append(name)
    return names


def valid_files(scheme_names: list[str] | None = None, max_bytes: int | None = None) -> dict[str, bytes]:
    """One serialised object of every kind, for each scheme available here (seeded keys).

    Args:
        scheme_names: schemes to include (default: every usable one).
        max_bytes: leave out larger files (CKKS evaluation keys run to tens of MB,
            which would make each fuzz input cost milliseconds of hashing).
    """
    files = _valid_files(scheme_names)
    return {k: v for k, v in files.items() if max_bytes is None or len(v) <= max_bytes}


def _valid_files(scheme_names: list[str] | None) -> dict[str, bytes]:
    files: dict[str, bytes] = {"key_requirements": serialization.dumps(he_core.KeyRequirements((1, 4), (1,)))}
    files["bundle/empty"] = serialization.dumps(serialization.Bundle({}, {"note": "empty"}))
    for name in scheme_names or usable_schemes():
        scheme = he_core.get_scheme(name)
        pair = scheme.keygen(he_core.KeyRequirements(sizes=(1, 4)), rng=he_core.SeededRandom(1))
        ct = scheme.encrypt([[1.5, -2.0, 0.0, 3.25]], pair.secret, rng=he_core.SeededRandom(2))
        files[f"{name}/ciphertext"] = serialization.dumps(ct)
        files[f"{name}/secret_key"] = serialization.dumps(pair.secret)
        files[f"{name}/public_keys"] = serialization.dumps(pair.public)
        files[f"{name}/bundle"] = serialization.dumps(serialization.Bundle({"w": ct, "b": ct}, {"layers": [1, 2]}))
        files[f"{name}/bundle+public"] = serialization.dumps(serialization.Bundle({"w": ct}, {}, pair.public))
        files[f"{name}/public_keys+signed"] = serialization.dumps(pair.public, signer=OWNER)
        files[f"{name}/bundle+public+signed"] = serialization.dumps(serialization.Bundle({"w": ct}, {}, pair.public),
                                                                     signer=OWNER)
        files[f"{name}/secret_key+sealed"] = serialization.dumps(pair.secret, passphrase=PASSPHRASE)
        if scheme.supports(he_core.Capability.REKEY):
            other = scheme.keygen(he_core.KeyRequirements(sizes=(1, 4)), rng=he_core.SeededRandom(3))
            switch = scheme.make_switch_key(pair.secret, other.secret, rng=he_core.SeededRandom(4))
            files[f"{name}/switch_key"] = serialization.dumps(switch)
    files.update(_model_files())
    return files


def _model_files() -> dict[str, bytes]:
    """A plaintext .npz model and its encrypted form, when henn.lifecycle is importable."""
    try:
        from henn import lifecycle
    except ImportError:
        return {}
    model = lifecycle.PlainModel({"w": np.array([[0.5, -1.0], [2.0, 0.0]]), "b": np.array([0.25, -0.75])},
                                 {"arch": "toy"})
    scheme = he_core.get_scheme("plain")
    scheme.keygen(he_core.KeyRequirements(sizes=(2,)), rng=he_core.SeededRandom(5))
    with tempfile.TemporaryDirectory() as tmp:
        lifecycle.write_plain_model(Path(tmp) / "m.npz", model)
        plain = (Path(tmp) / "m.npz").read_bytes()
    return {"model/plain.npz": plain, "model/encrypted": serialization.dumps(lifecycle.encrypt_model(model, scheme))}


def reseal(data: bytes) -> bytes:
    """Fix the length field and digest of a (damaged) file so the parsers see the damage.

    A file whose flags say it is signed keeps its last 80 bytes as the (now stale) trailer.
    """
    signed = len(data) >= 12 and data[8:10] == struct.pack("<H", 2) and data[10] & container.FLAG_SIGNED
    trailer = container.TRAILER_SIZE if signed and len(data) > container.TRAILER_SIZE + 24 else 0
    tail = data[len(data) - trailer:] if trailer else b""
    data = data[:len(data) - trailer]
    body = bytearray(data[:-container.DIGEST_SIZE] if len(data) > container.DIGEST_SIZE else data)
    if len(body) >= 20:
        struct.pack_into("<Q", body, 12, len(body) + container.DIGEST_SIZE + len(tail))
    return bytes(body) + hashlib.sha256(body).digest() + tail


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random damage: flip, overwrite, insert, delete, truncate, splice or rewrite a number."""
    buf = bytearray(data)
    op = rng.randrange(7)
    pos = rng.randrange(len(buf)) if buf else 0
    if op == 0 and buf:
        buf[pos] ^= 1 << rng.randrange(8)
    elif op == 1 and buf:
        for i in range(pos, min(len(buf), pos + rng.randint(1, 8))):
            buf[i] = rng.randrange(256)
    elif op == 2:
        buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif op == 3 and buf:
        del buf[pos:pos + rng.randint(1, 16)]
    elif op == 4:
        del buf[rng.randrange(len(buf) + 1):]
    elif op == 5 and len(buf) >= 8:
        # A boundary value in a length-like slot: the classic way to ask for gigabytes.
        value = rng.choice([0, 1, 0xFF, 0xFFFF, 0xFFFFFFFF, 2**63 - 1, 2**64 - 1])
        width = rng.choice([1, 2, 4, 8])
        pos = min(pos, len(buf) - width)
        buf[pos:pos + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
    else:
        other = rng.randrange(len(buf) + 1)
        buf[pos:pos] = buf[other:other + rng.randint(1, 64)]
    return bytes(buf)


def json_mutate(data: bytes, rng: random.Random) -> bytes:
    """Damage inside the JSON header only (a string, a number, a bracket) and reseal."""
    head_len = struct.unpack_from("<I", data, 20)[0]
    start, end = 24, 24 + head_len
    head = bytearray(data[start:end])
    pos = rng.randrange(len(head))
    head[pos] = rng.choice(b'{}[]",:0123456789-eE.atfnulx$ \\')
    return reseal(data[:start] + bytes(head) + data[end:])


def npz_mutate(data: bytes, rng: random.Random) -> bytes:
    """Damage one member of an .npz and re-zip it, so the CRC is valid and the .npy parser sees it."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    index = rng.randrange(len(members))
    name, raw = members[index]
    if rng.random() < 0.5:
        # Aim at the text header (the first ~128 bytes), where the parser has the most to do.
        cut = min(len(raw), 128)
        raw = json_like_damage(raw[:cut], rng) + raw[cut:]
    else:
        raw = mutate(raw, rng)
    members[index] = (name, raw)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for member_name, member_raw in members:
            archive.writestr(member_name, member_raw)
    return out.getvalue()


def json_like_damage(text: bytes, rng: random.Random) -> bytes:
    """Replace one byte by a character that matters to a Python/JSON literal parser."""
    buf = bytearray(text)
    pos = rng.randrange(len(buf))
    buf[pos] = rng.choice(b"{}[]()'\",:0123456789-eE.atfnulxTFN$ \n\xff")
    return bytes(buf)


def random_input(rng: random.Random) -> bytes:
    """Random bytes, sometimes behind a valid magic and version so they get further."""
    size = rng.choice([0, 1, 7, 8, 20, 24, 56, 100, 1000])
    raw = bytes(rng.randrange(256) for _ in range(size))
    if rng.random() < 0.5:
        version, flags = rng.choice([(1, 0), (container.VERSION, 0), (container.VERSION, container.FLAG_SIGNED)])
        raw = container.MAGIC + struct.pack("<HH", version, flags) + raw
        if rng.random() < 0.5:
            raw = reseal(raw)
    return raw


def make_input(files: list[bytes], rng: random.Random) -> bytes:
    """One fuzz input: a mutated valid file (sometimes resealed), a JSON-level mutation or noise."""
    choice = rng.random()
    if choice < 0.1:
        return random_input(rng)
    zips = [f for f in files if f.startswith(b"PK")]
    # The .npz seed is one file among ~20: give the zip and .npy parsers a fair share of the
    # inputs, half of them re-zipped after the damage so the member CRCs still match.
    if zips and rng.random() < 0.2:
        base = rng.choice(zips)
        return npz_mutate(base, rng) if rng.random() < 0.5 else mutate(base, rng)
    base = rng.choice(files)
    if choice < 0.3:
        return json_mutate(base, rng)
    data = base
    for _ in range(rng.randint(1, 4)):
        data = mutate(data, rng)
    return reseal(data) if choice < 0.7 else data


def load_all_ways(data: bytes):
    """Call the in-memory loader on ``data`` with every set of expectations, then without.

    Every call opts in to insecure parameters (the corpus is mostly ``plain`` and ``vhe``)
    and passes the corpus passphrase, except two: one with the default
    ``allow_insecure=False``, and one without a passphrase, where a :class:`KeyMissingError`
    saying the key is sealed is the documented answer for a well-formed sealed key.

    Returns:
        The loaded object.

    Raises:
        FormatError: from the final, expectation-free call (the only exception allowed).
    """
    ways = [{"expect_kind": kind} for kind in serialization.KINDS]
    ways += [{"owner_key": OWNER.verify_key}, {"owner_key": OWNER.verify_key, "expect_kind": "public_keys"}]
    for kw in ways:
        try:
            serialization.loads(data, allow_insecure=True, passphrase=PASSPHRASE, **kw)
        except he_core.FormatError:
            pass
    try:
        serialization.loads(data, expect_scheme="plain", expect_key_id="0" * 32, passphrase=PASSPHRASE)
    except he_core.FormatError:
        pass
    try:
        serialization.loads(data, allow_insecure=True)
    except he_core.FormatError:
        pass
    except he_core.KeyMissingError as exc:
        if "sealed with a passphrase" not in str(exc):
            raise
    return serialization.loads(data, allow_insecure=True, passphrase=PASSPHRASE)
