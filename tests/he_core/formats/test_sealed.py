"""Secret keys at rest: sealing under a passphrase, passphrase files, destroying a key file."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import warnings

import numpy as np
import pytest

import he_core
from he_core import serialization as ser
from he_core.formats import container, sealed

FormatError = he_core.FormatError
SCHEMES = [name for name in ("plain", "vhe") if name in he_core.available_schemes()]
PASS = b"correct horse battery staple"


@pytest.fixture(scope="module")
def vhe_pair():
    return he_core.get_scheme("vhe").keygen(he_core.KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(2))


def loads(blob, **kw):
    """``ser.loads`` opting in to insecure sets (plain and vhe are below 128 bits)."""
    return ser.loads(blob, **{"allow_insecure": True, **kw})


def split(blob: bytes) -> tuple[dict, bytes]:
    head_len = struct.unpack_from("<I", blob, 20)[0]
    return json.loads(blob[24:24 + head_len]), blob[24 + head_len:-32]


def rebuild(header: dict, rest: bytes) -> bytes:
    """An unsigned file from a header and the bytes after it, with a correct length and digest."""
    head = json.dumps(header).encode()
    body = container.MAGIC + struct.pack("<HHQI", 2, 0, 24 + len(head) + len(rest) + 32, len(head)) + head + rest
    return body + hashlib.sha256(body).digest()


@pytest.mark.parametrize("name", SCHEMES)
def test_round_trip(name, tmp_path):
    pair = he_core.get_scheme(name).keygen(he_core.KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(1))
    path = ser.save(pair.secret, tmp_path / "secret.henn", passphrase=PASS)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    info = ser.file_info(path.read_bytes())
    assert info.sealed and info.kind == "secret_key" and info.key_ids == [pair.secret.key_id]
    back = ser.load(path, passphrase=PASS, allow_insecure=True, expect_key_id=pair.secret.key_id)
    assert (back.scheme, back.params_id, back.key_id, back.requirements) == \
        (pair.secret.scheme, pair.secret.params_id, pair.secret.key_id, pair.secret.requirements)
    assert ser.dumps(back) == ser.dumps(pair.secret)


def test_the_key_material_is_not_in_the_file(vhe_pair):
    blob = ser.dumps(vhe_pair.secret, passphrase=PASS)
    raws = [np.ascontiguousarray(t).tobytes() for t in vhe_pair.secret.data["T"].values()]
    raws = [raw for raw in raws if len(raw) >= 24]  # long enough not to occur by chance
    assert raws
    for raw in raws:
        assert raw not in blob
        assert raw in ser.dumps(vhe_pair.secret)  # the control: an unsealed file holds it in the clear


def test_each_sealing_is_fresh(vhe_pair):
    a, b = (split(ser.dumps(vhe_pair.secret, passphrase=PASS))[0]["sealed"] for _ in range(2))
    assert a["salt"] != b["salt"] and a["nonce"] != b["nonce"]
    assert (a["kdf"], a["n"], a["r"], a["p"], a["cipher"]) == ("scrypt", 2**15, 8, 1, "aes-256-gcm")


def test_wrong_and_missing_passphrase(vhe_pair):
    blob = ser.dumps(vhe_pair.secret, passphrase=PASS)
    with pytest.raises(FormatError, match="wrong passphrase or damaged file"):
        loads(blob, passphrase=b"correct horse battery stapler")
    with pytest.raises(he_core.KeyMissingError, match="sealed with a passphrase.*--passphrase-file"):
        loads(blob)
    # Expectations are checked from the clear header before any passphrase is asked for.
    with pytest.raises(FormatError, match="wrong kind"):
        loads(blob, expect_kind="public_keys")


def test_tampered_ciphertext_is_refused(vhe_pair):
    header, rest = split(ser.dumps(vhe_pair.secret, passphrase=PASS))
    bad = bytearray(rest)
    bad[-5] ^= 0x01  # inside the sealed bytes (the last array), digest recomputed below
    with pytest.raises(FormatError, match="wrong passphrase or damaged file"):
        loads(rebuild(header, bytes(bad)), passphrase=PASS)
    assert loads(rebuild(header, rest), passphrase=PASS).key_id == vhe_pair.secret.key_id  # the control


@pytest.mark.parametrize("edit", [
    lambda h: h.update(key_id="0" * 32, key_ids=["0" * 32]),                 # pose as another key
    lambda h: h["sealed"].update(n=2**16),                                  # an accepted but different cost
    lambda h: h["sealed"].update(salt="00" * 16),
    lambda h: h["sealed"].update(nonce="00" * 12),
    lambda h: h.update(note="added"),                                       # any new field
])
def test_the_clear_header_is_authenticated(vhe_pair, edit):
    header, rest = split(ser.dumps(vhe_pair.secret, passphrase=PASS))
    edit(header)
    with pytest.raises(FormatError, match="wrong passphrase or damaged file"):
        loads(rebuild(header, rest), passphrase=PASS)


@pytest.mark.parametrize("field,value,match", [
    ("n", 2**10, "unsupported scrypt parameters"), ("n", 2**40, "unsupported scrypt parameters"),
    ("r", 1, "unsupported scrypt parameters"), ("n", 2.0**15, "unsupported scrypt parameters"),
    ("kdf", "pbkdf2", "this build reads scrypt"), ("salt", "zz", "salt must be 16 bytes"),
    ("nonce", "00", "nonce must be 12 bytes"),
])
def test_weak_or_hostile_sealing_parameters_are_refused_before_deriving(vhe_pair, field, value, match):
    header, rest = split(ser.dumps(vhe_pair.secret, passphrase=PASS))
    header["sealed"][field] = value
    with pytest.raises(FormatError, match=match):
        loads(rebuild(header, rest), passphrase=PASS)


def test_sealed_file_with_other_arrays_is_refused(vhe_pair):
    header, rest = split(ser.dumps(vhe_pair.secret, passphrase=PASS))
    (count,) = struct.unpack_from("<I", rest)
    name = b"sealed"
    extra = struct.pack("<H", 1) + b"x" + struct.pack("<BB", 5, 1) + struct.pack("<Q", 1) + b"\0"
    with pytest.raises(FormatError, match="exactly one uint8 array"):
        loads(rebuild(header, struct.pack("<I", count + 1) + rest[4:] + extra), passphrase=PASS)
    assert name in rest


def test_sealing_is_for_secret_keys_with_a_real_passphrase(vhe_pair):
    with pytest.raises(TypeError, match="only secret keys"):
        ser.dumps(he_core.KeyRequirements(), passphrase=PASS)
    with pytest.raises(ValueError, match="empty passphrase"):
        ser.dumps(vhe_pair.secret, passphrase=b"")
    with pytest.raises(TypeError, match="must be bytes"):
        ser.dumps(vhe_pair.secret, passphrase="text")


def test_a_passphrase_for_an_unsealed_key_warns(vhe_pair):
    with pytest.warns(he_core.SecurityWarning, match="not sealed"):
        assert loads(ser.dumps(vhe_pair.secret), passphrase=PASS).key_id == vhe_pair.secret.key_id


def test_insecure_parameters_are_checked_on_the_clear_header(vhe_pair):
    blob = ser.dumps(vhe_pair.secret, passphrase=PASS)
    with pytest.raises(FormatError, match="insecure parameters"):
        ser.loads(blob, passphrase=PASS)


# --- passphrase files -----------------------------------------------------------------------------
@pytest.mark.parametrize("content,expected", [(b"pw\n", b"pw"), (b"pw\r\n", b"pw"), (b"pw", b"pw"),
                                              (b"two words \nsecond line\n", b"two words ")])
def test_passphrase_file_first_line(tmp_path, content, expected):
    path = tmp_path / "pass"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sealed.read_passphrase_file(path) == expected


@pytest.mark.parametrize("content,match", [(b"", "empty"), (b"\n", "empty"), (b"\r\nx", "empty"),
                                           (b"x" * 2000, "longer than")])
def test_bad_passphrase_files(tmp_path, content, match):
    (tmp_path / "pass").write_bytes(content)
    with pytest.raises(ValueError, match=match):
        sealed.read_passphrase_file(tmp_path / "pass")


def test_readable_passphrase_file_warns(tmp_path):
    (tmp_path / "pass").write_bytes(b"pw\n")
    os.chmod(tmp_path / "pass", 0o644)
    with pytest.warns(he_core.SecurityWarning, match="readable by other users"):
        sealed.read_passphrase_file(tmp_path / "pass")


# --- destroying a file ----------------------------------------------------------------------------
def test_destroy_overwrites_every_link_then_removes(tmp_path, vhe_pair):
    path = ser.save(vhe_pair.secret, tmp_path / "secret.henn")
    before = path.read_bytes()
    os.link(path, tmp_path / "second-link")
    assert sealed.destroy_file(path) == path
    assert not path.exists()
    after = (tmp_path / "second-link").read_bytes()  # the same inode, seen through the other name
    assert len(after) == len(before) and after != before
    assert sum(a == b for a, b in zip(after, before)) < len(before) // 64  # random, not a pattern of the key
    assert b"henn" not in after.lower()


def test_destroy_refuses_symlinks_and_missing_files(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep me")
    os.symlink(target, tmp_path / "link")
    with pytest.raises(OSError):
        sealed.destroy_file(tmp_path / "link")
    assert target.read_bytes() == b"keep me" and (tmp_path / "link").is_symlink()
    with pytest.raises(FileNotFoundError):
        sealed.destroy_file(tmp_path / "nothing")
