"""Owner signatures: Ed25519 keys, signed files of every kind, and every way a signature check fails."""
from __future__ import annotations

import hashlib
import os
import stat
import struct

import pytest
from cryptography.hazmat.primitives import serialization as pem
from cryptography.hazmat.primitives.asymmetric import ec

import he_core
from he_core import serialization as ser
from he_core.formats import container, signing
from he_core.formats.signing import SigningKey, VerifyKey

FormatError = he_core.FormatError
SCHEMES = [name for name in ("plain", "vhe") if name in he_core.available_schemes()]


@pytest.fixture(scope="module")
def owner() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def stranger() -> SigningKey:
    return SigningKey.generate()


def objects(name: str) -> dict:
    """One object of every kind (of scheme ``name``)."""
    scheme = he_core.get_scheme(name)
    pair = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(3))
    other = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(4))
    ct = scheme.encrypt([[1.0, -2.0, 0.5]], pair.secret, rng=he_core.SeededRandom(5))
    return {"ciphertext": ct, "secret_key": pair.secret, "public_keys": pair.public,
            "switch_key": scheme.make_switch_key(pair.secret, other.secret, rng=he_core.SeededRandom(6)),
            "key_requirements": he_core.KeyRequirements((1, 3)), "bundle": ser.Bundle({"w": ct}, {"a": 1}),
            "bundle+public": ser.Bundle({"w": ct}, {}, pair.public), "empty bundle": ser.Bundle({}, {"x": 1})}


def loads(blob, **kw):
    """``ser.loads`` opting in to insecure sets (plain and vhe are below 128 bits)."""
    return ser.loads(blob, **{"allow_insecure": True, **kw})


def reseal(blob: bytes) -> bytes:
    """Recompute the digest of a signed file after an edit (the trailer is kept as it was)."""
    body_end = len(blob) - container.TRAILER_SIZE - container.DIGEST_SIZE
    body = blob[:body_end]
    return body + hashlib.sha256(body).digest() + blob[body_end + container.DIGEST_SIZE:]


# --- keys -----------------------------------------------------------------------------------------
def test_fingerprint_is_a_sha256_prefix_of_the_raw_public_key(owner):
    raw = owner.verify_key.raw
    assert len(raw) == 32 and owner.fingerprint == hashlib.sha256(raw).hexdigest()[:32]
    assert owner.verify_key.fingerprint_bytes == bytes.fromhex(owner.fingerprint)
    assert owner.fingerprint not in repr(owner._key) and "SigningKey(fingerprint=" in repr(owner)


def test_pem_round_trips(owner):
    assert VerifyKey.from_pem(owner.verify_key.to_pem()) == owner.verify_key
    assert SigningKey.from_pem(owner.to_pem()).verify_key == owner.verify_key
    sealed = owner.to_pem(b"correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in sealed
    assert SigningKey.from_pem(sealed, b"correct horse").verify_key == owner.verify_key


def test_encrypted_signing_key_needs_the_right_passphrase(owner):
    sealed = owner.to_pem(b"correct horse")
    with pytest.raises(he_core.KeyMissingError, match="--passphrase-file"):
        SigningKey.from_pem(sealed)
    with pytest.raises(FormatError, match="wrong passphrase or damaged file"):
        SigningKey.from_pem(sealed, b"wrong horse")
    with pytest.warns(he_core.SecurityWarning, match="not encrypted"):
        SigningKey.from_pem(owner.to_pem(), b"unneeded")


def test_other_key_types_and_garbage_are_refused():
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(FormatError, match="not an Ed25519 key"):
        SigningKey.from_pem(other.private_bytes(pem.Encoding.PEM, pem.PrivateFormat.PKCS8, pem.NoEncryption()))
    with pytest.raises(FormatError, match="not an Ed25519 key"):
        VerifyKey.from_pem(other.public_key().public_bytes(pem.Encoding.PEM, pem.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(FormatError, match="not a PEM public key"):
        VerifyKey.from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(FormatError, match="wrong passphrase or damaged file"):
        SigningKey.from_pem(b"not a key")


def test_key_files_are_private_and_never_overwritten(tmp_path, owner):
    path = signing.save_signing_key(owner, tmp_path / "signing.key", b"pw")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(FileExistsError, match="already exists"):
        signing.save_signing_key(SigningKey.generate(), path)
    assert signing.load_signing_key(path, b"pw").verify_key == owner.verify_key  # the first key survived
    pub = signing.save_verify_key(owner.verify_key, tmp_path / "owner.pub")
    assert signing.load_verify_key(pub) == owner.verify_key
    os.chmod(path, 0o640)
    with pytest.warns(he_core.SecurityWarning, match="chmod 600"):
        signing.load_signing_key(path, b"pw")


def test_huge_key_files_are_not_read_whole(tmp_path):
    (tmp_path / "owner.pub").write_bytes(b"-" * (signing.MAX_PEM_BYTES + 10))
    with pytest.raises(FormatError, match="larger than any key file"):
        signing.load_verify_key(tmp_path / "owner.pub")


# --- signed files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SCHEMES)
def test_every_kind_round_trips_signed(name, owner):
    for kind, obj in objects(name).items():
        blob = ser.dumps(obj, signer=owner)
        flags = struct.unpack_from("<H", blob, 10)[0]
        assert flags == container.FLAG_SIGNED, kind
        back = loads(blob, owner_key=owner.verify_key)
        assert type(back) is type(obj), kind
        assert loads(blob).__class__ is type(obj)  # without owner_key the signature is not required
        assert ser.file_info(blob).signer == owner.fingerprint


def test_a_sealed_secret_key_can_be_signed_too(owner):
    pair = he_core.get_scheme("plain").keygen()
    blob = ser.dumps(pair.secret, signer=owner, passphrase=b"pw")
    assert loads(blob, owner_key=owner.verify_key, passphrase=b"pw").key_id == pair.secret.key_id


def test_signature_covers_the_whole_file(owner):
    # Every single byte before the signature is covered: change it (and recompute the
    # digest, as an attacker would) and the signature no longer verifies.
    blob = ser.dumps(objects("plain")["bundle+public"], signer=owner)
    head_len = struct.unpack_from("<I", blob, 20)[0]
    positions = {"header": 24 + head_len // 2, "payload": len(blob) - container.TRAILER_SIZE - 40}
    for pos in positions.values():
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        with pytest.raises(FormatError, match="digest mismatch"):
            loads(bytes(bad), owner_key=owner.verify_key)
        with pytest.raises(FormatError, match="bad signature"):
            loads(reseal(bytes(bad)), owner_key=owner.verify_key)


def test_signature_by_another_key_names_both_fingerprints(owner, stranger):
    blob = ser.dumps(objects("plain")["public_keys"], signer=stranger)
    with pytest.raises(FormatError, match=f"signed by key {stranger.fingerprint}, not by the owner key "
                                          f"{owner.fingerprint}"):
        loads(blob, owner_key=owner.verify_key)


def test_claiming_the_owners_fingerprint_does_not_help(owner, stranger):
    # The stranger signs, then writes the owner's fingerprint into the trailer.
    blob = bytearray(ser.dumps(objects("plain")["public_keys"], signer=stranger))
    start = len(blob) - container.TRAILER_SIZE
    blob[start:start + container.FINGERPRINT_SIZE] = owner.fingerprint_bytes
    with pytest.raises(FormatError, match="bad signature"):
        loads(bytes(blob), owner_key=owner.verify_key)


def test_unsigned_and_stripped_files_are_refused_when_a_signature_is_required(owner):
    obj = objects("plain")["bundle+public"]
    with pytest.raises(FormatError, match=f"not signed, and a signature by the owner key {owner.fingerprint}"):
        loads(ser.dumps(obj), owner_key=owner.verify_key)
    # Strip the trailer, clear the flag, fix length and digest: an unsigned file, refused the same way.
    signed = ser.dumps(obj, signer=owner)
    body = bytearray(signed[:-container.TRAILER_SIZE - container.DIGEST_SIZE])
    struct.pack_into("<HQ", body, 10, 0, len(body) + container.DIGEST_SIZE)
    stripped = bytes(body) + hashlib.sha256(body).digest()
    assert loads(stripped).meta == {}
    with pytest.raises(FormatError, match="not signed"):
        loads(stripped, owner_key=owner.verify_key)


def test_truncated_or_missing_trailer(owner):
    blob = ser.dumps(objects("plain")["ciphertext"], signer=owner)
    for cut in (1, 10, container.SIGNATURE_SIZE, container.TRAILER_SIZE, container.TRAILER_SIZE + 5):
        with pytest.raises(FormatError, match="truncated"):
            loads(blob[:-cut], owner_key=owner.verify_key)
    # A signed flag on a file too short to hold a trailer at all.
    tiny = bytearray(container.MAGIC + struct.pack("<HHQI", 2, container.FLAG_SIGNED, 60, 0) + b"\0" * 36)
    with pytest.raises(FormatError, match="cannot hold a signature"):
        loads(bytes(tiny), owner_key=owner.verify_key)


def test_a_version_1_file_loads_unsigned_but_not_when_a_signature_is_required(owner):
    blob = bytearray(ser.dumps(objects("plain")["ciphertext"])[:-container.DIGEST_SIZE])
    struct.pack_into("<H", blob, 8, 1)
    old = bytes(blob) + hashlib.sha256(blob).digest()
    assert loads(old).shape == (1, 3)
    with pytest.raises(FormatError, match="written before henn signed files .*henn migrate"):
        loads(old, owner_key=owner.verify_key)


def test_the_signature_is_checked_before_the_header_is_parsed(owner, stranger, monkeypatch):
    calls = []
    monkeypatch.setattr(container, "parse", lambda env: calls.append(env))
    with pytest.raises(FormatError, match="signed by key"):
        ser.loads(ser.dumps(he_core.KeyRequirements(), signer=stranger), owner_key=owner.verify_key)
    assert calls == []


def test_signer_must_be_a_signing_key():
    with pytest.raises(TypeError, match="SigningKey"):
        ser.dumps(he_core.KeyRequirements(), signer=object())
    with pytest.raises(TypeError, match="VerifyKey"):
        ser.loads(ser.dumps(he_core.KeyRequirements()), owner_key=b"\0" * 32)


def test_file_info_reads_without_building(owner):
    blob = ser.dumps(objects("plain")["bundle+public"])
    info = ser.file_info(blob)
    assert (info.version, info.kind, info.scheme, info.signer, info.sealed) == (2, "bundle", "plain", None, False)
    assert info.key_ids == [objects("plain")["public_keys"].key_id] and info.params_id.startswith("plain-")
