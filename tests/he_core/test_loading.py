"""he_core.loading (through ``serialization.loads``): every way a file can be wrong raises FormatError
naming the problem."""
from __future__ import annotations

import hashlib
import json
import struct
import tracemalloc

import numpy as np
import pytest

import he_core
from he_core import serialization as ser
from he_core.formats import container

FormatError = he_core.FormatError
PREAMBLE = 24


def loads(blob, **kw):
    """``ser.loads`` opting in to insecure sets: these files are all of the (cleartext) plain scheme."""
    return ser.loads(blob, **{"allow_insecure": True, **kw})


@pytest.fixture(scope="module")
def plain():
    scheme = he_core.get_scheme("plain")
    pair = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)))
    ct = scheme.encrypt([[1.0, -2.0, 3.0]], pair.secret)
    return scheme, pair, ct


def reseal(body: bytes) -> bytes:
    """Fix length and digest of a damaged file body (everything before the digest)."""
    body = bytearray(body)
    struct.pack_into("<Q", body, 12, len(body) + 32)
    return bytes(body) + hashlib.sha256(body).digest()


def split(blob: bytes) -> tuple[dict, bytes]:
    head_len = struct.unpack_from("<I", blob, 20)[0]
    return json.loads(blob[PREAMBLE:PREAMBLE + head_len]), blob[PREAMBLE + head_len:-32]


def rebuild(header: dict, rest: bytes) -> bytes:
    head = json.dumps(header).encode()
    return reseal(container.MAGIC + struct.pack("<HHQI", 1, 0, 0, len(head)) + head + rest)


def test_truncated_at_every_length_is_refused(plain):
    blob = ser.dumps(plain[2])
    for cut in range(len(blob)):
        with pytest.raises(FormatError, match="truncated"):
            loads(blob[:cut])


def test_bad_magic(plain):
    blob = ser.dumps(plain[2])
    with pytest.raises(FormatError, match="bad magic"):
        loads(b"PK\x03\x04" + blob[4:])
    with pytest.raises(FormatError, match="bad magic"):
        loads(b"\x93NUMPY" + b"\0" * 100)


def test_unsupported_version(plain):
    body = bytearray(ser.dumps(plain[2])[:-32])
    for version in (0, 3, 0xFFFF):
        struct.pack_into("<H", body, 8, version)
        with pytest.raises(FormatError, match=f"unsupported format version {version}"):
            loads(reseal(body))


def test_version_1_files_have_no_flags(plain):
    body = bytearray(ser.dumps(plain[2])[:-32])
    struct.pack_into("<HH", body, 8, 1, 0)
    assert loads(reseal(body)).key_id == plain[2].key_id  # a version-1 file (before signatures) still loads
    struct.pack_into("<HH", body, 8, 1, container.FLAG_SIGNED)
    with pytest.raises(FormatError, match="unknown format flags 0x1 for version 1"):
        loads(reseal(body))
    struct.pack_into("<HH", body, 8, 2, 0x8)
    with pytest.raises(FormatError, match="unknown format flags 0x8"):
        loads(reseal(body))
    struct.pack_into("<HH", body, 8, 2, container.FLAG_SEEDED)  # flagged seeded, holds no seeded ciphertext
    with pytest.raises(FormatError, match="seeded flag and its ciphertexts' wire forms disagree"):
        loads(reseal(body))


def test_every_single_byte_flip_is_detected(plain):
    blob = ser.dumps(plain[1].public)
    for pos in range(len(blob)):
        bad = bytearray(blob)
        bad[pos] ^= 0x40
        with pytest.raises(FormatError):
            loads(bytes(bad))


def test_tampered_payload_is_a_digest_mismatch(plain):
    blob = bytearray(ser.dumps(plain[2]))
    blob[-40] ^= 1  # inside the array bytes
    with pytest.raises(FormatError, match="digest mismatch"):
        loads(bytes(blob))


def test_trailing_bytes(plain):
    with pytest.raises(FormatError, match="trailing bytes"):
        loads(ser.dumps(plain[2]) + b"\0")


def test_wrong_kind_scheme_and_key_are_named(plain):
    scheme, pair, ct = plain
    blob = ser.dumps(ct)
    with pytest.raises(FormatError, match="wrong kind: expected a secret_key, the file holds a ciphertext"):
        loads(blob, expect_kind="secret_key")
    with pytest.raises(FormatError, match="wrong scheme: expected 'vhe'"):
        loads(blob, expect_scheme="vhe")
    other = scheme.keygen().secret.key_id
    with pytest.raises(FormatError, match=f"wrong key: expected key id {other}.*{ct.key_id}"):
        loads(blob, expect_key_id=other)


def test_wrong_key_on_a_bundle_and_on_a_mixed_bundle(plain):
    scheme, pair, ct = plain
    other = scheme.keygen()
    mixed = ser.dumps(ser.Bundle({"a": ct, "b": scheme.encrypt([1.0], other.secret)}))
    with pytest.raises(FormatError, match="wrong key"):
        loads(mixed, expect_key_id=ct.key_id)
    assert set(loads(mixed).key_ids) == {ct.key_id, other.secret.key_id}


def test_tampered_parameters_are_refused(plain):
    scheme = he_core.get_scheme("plain", precision_bits=20)
    header, rest = split(ser.dumps(scheme.keygen().public))
    header["params"]["precision_bits"] = 3
    with pytest.raises(FormatError, match="tampered parameters"):
        loads(rebuild(header, rest))
    header["params"] = {"precision_bits": 99}
    with pytest.raises(FormatError, match="invalid plain parameters"):
        loads(rebuild(header, rest))
    header["params"] = {"no_such_field": 1}
    with pytest.raises(FormatError, match="invalid plain parameters"):
        loads(rebuild(header, rest))


def test_unknown_scheme(plain):
    header, rest = split(ser.dumps(plain[2]))
    header["scheme"] = "rot13"
    with pytest.raises(FormatError, match="unknown scheme 'rot13'"):
        loads(rebuild(header, rest))


def test_key_id_list_must_agree_with_the_fields(plain):
    # Otherwise a forged list would pass expect_key_id while the object is under another key.
    header, rest = split(ser.dumps(plain[2]))
    header["key_id"] = "f" * 32
    with pytest.raises(FormatError, match="key id list disagrees"):
        loads(rebuild(header, rest))


def _array_record(name: bytes, code: int, dims: tuple, payload: bytes) -> bytes:
    return (struct.pack("<H", len(name)) + name + struct.pack("<BB", code, len(dims))
            + struct.pack(f"<{len(dims)}Q", *dims) + payload)


def _key_with_array(record: bytes, name: str = "x") -> bytes:
    header = {"format": "henn", "kind": "public_keys", "scheme": "plain", "key_ids": ["k"], "key_id": "k",
              "params": {"precision_bits": None}, "params_id": he_core.get_scheme("plain").params_id,
              "data": {"$a": name}, "requirements": {"sizes": [1], "rotations": [], "multiply": True}}
    return rebuild(header, struct.pack("<I", 1) + record)


def test_crafted_file_with_a_good_array_loads():
    # The control for the crafted-file tests below: the same builder with sane values works.
    blob = _key_with_array(_array_record(b"x", 1, (2,), np.array([5, -6], "<i8").tobytes()))
    key = loads(blob, verify_key_id=False)  # key id "k" is not derived from [5, -6]: not a real key
    np.testing.assert_array_equal(key.data, [5, -6])


@pytest.mark.parametrize("code", [0, 8, 255])
def test_bad_dtype_code(code):
    with pytest.raises(FormatError, match=f"bad dtype code {code}"):
        loads(_key_with_array(_array_record(b"x", code, (2,), b"\0" * 16)))


@pytest.mark.parametrize("dims,payload", [((3,), b"\0" * 16), ((2, 2), b"\0" * 16), ((2,), b"\0" * 8)])
def test_shape_and_byte_count_must_agree(dims, payload):
    with pytest.raises(FormatError):
        loads(_key_with_array(_array_record(b"x", 1, dims, payload)))


def test_shape_and_byte_count_message():
    with pytest.raises(FormatError, match=r"array 'x' of shape \(3,\).*needs 24 bytes, 16 remain"):
        loads(_key_with_array(_array_record(b"x", 1, (3,), b"\0" * 16)))


def test_huge_claimed_sizes_do_not_allocate():
    tracemalloc.start()
    try:
        for dims in [(2**40,), (2**32, 2**32), (2**64 - 1, 2**64 - 1)]:
            with pytest.raises(FormatError, match="truncated or inconsistent"):
                loads(_key_with_array(_array_record(b"x", 3, dims, b"")))
        count_bomb = rebuild({"format": "henn", "kind": "bundle", "scheme": None}, struct.pack("<I", 2**32 - 1))
        with pytest.raises(FormatError, match="arrays announced"):
            loads(count_bomb)
        tiny = container.MAGIC + struct.pack("<HHQI", 1, 0, 2**63, 2**32 - 1)  # 24 bytes claiming a lot
        with pytest.raises(FormatError, match="truncated"):
            loads(tiny)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000


@pytest.mark.parametrize("dims", [(2**64 - 1, 0), (2**62, 0), (2**40, 2**30, 0)])
def test_empty_arrays_with_absurd_dims(dims):
    # Found by fuzz/run_loaders.py: zero bytes of data, but a shape numpy cannot make.
    with pytest.raises(FormatError, match="impossible shape"):
        loads(_key_with_array(_array_record(b"x", 3, dims, b"")))


def test_bool_arrays_hold_only_zero_and_one():
    with pytest.raises(FormatError, match="bool array"):
        loads(_key_with_array(_array_record(b"x", 6, (2,), b"\x01\x07")))


def test_stray_and_missing_and_reused_arrays():
    good = _array_record(b"x", 1, (1,), b"\0" * 8)
    with pytest.raises(FormatError, match="does not hold"):
        loads(_key_with_array(good, name="y"))
    header, rest = split(_key_with_array(good))
    header["data"] = [{"$a": "x"}, {"$a": "x"}]
    with pytest.raises(FormatError, match="twice"):
        loads(rebuild(header, rest))
    header["data"] = None
    with pytest.raises(FormatError, match="no field refers to"):
        loads(rebuild(header, rest))


@pytest.mark.parametrize("node", [{"$x": 1}, {"$a": 5}, {"$d": [1]}, {"$t": {}}, {"$a": "x", "$t": []}])
def test_unknown_or_malformed_tags(node):
    header, rest = split(_key_with_array(_array_record(b"x", 1, (1,), b"\0" * 8)))
    header["data"] = [{"$a": "x"}, node]
    with pytest.raises(FormatError, match="malformed entry"):
        loads(rebuild(header, rest))


@pytest.mark.parametrize("raw", [b"[1,2]", b"{not json", b"\xff\xfe", b'{"a":1,"a":2}', b"[" * 100000,
                                 b'{"n":' + b"9" * 5000 + b"}"])
def test_malformed_headers(raw):
    blob = reseal(container.MAGIC + struct.pack("<HHQI", 1, 0, 0, len(raw)) + raw + struct.pack("<I", 0))
    with pytest.raises(FormatError):
        loads(blob)


@pytest.mark.parametrize("field,value", [("shape", [1]), ("shape", [-1, 2]), ("shape", [1, True]),
                                         ("scale", "big"), ("scale", float("nan")), ("scale", None),
                                         ("meta", [1]), ("key_id", ""), ("key_id", 5)])
def test_malformed_ciphertext_fields(plain, field, value):
    header, rest = split(ser.dumps(plain[2]))
    header[field] = value
    if field == "key_id" and isinstance(value, str):
        header["key_ids"] = [value]
    with pytest.raises(FormatError):
        loads(rebuild(header, rest))


@pytest.mark.parametrize("req", [{"sizes": [0], "rotations": [], "multiply": True},
                                 {"sizes": [3, 1], "rotations": [], "multiply": True},
                                 {"sizes": [1], "rotations": [], "multiply": 1},
                                 {"sizes": "1", "rotations": [], "multiply": True}])
def test_malformed_key_requirements(req):
    header, rest = split(ser.dumps(he_core.KeyRequirements()))
    header["requirements"] = req
    with pytest.raises(FormatError, match="key requirements"):
        loads(rebuild(header, rest))


def test_non_bytes_input_is_a_type_error():
    with pytest.raises(TypeError):
        loads("a string")


def test_bundle_public_keys_under_another_key_are_refused(plain):
    scheme, pair, ct = plain
    header, rest = split(ser.dumps(ser.Bundle({"w": ct}, {}, pair.public)))
    header["public"]["key_id"] = "e" * 32
    with pytest.raises(FormatError):
        loads(rebuild(header, rest))
    header["key_ids"] = sorted([ct.key_id, "e" * 32])
    with pytest.raises(FormatError, match="public keys are for key e+, its ciphertexts"):
        loads(rebuild(header, rest))


# --- key ids must be derived from the public key material -------------------------------------------
def _as_version_1(blob: bytes) -> bytes:
    body = bytearray(blob[:-32])
    struct.pack_into("<H", body, 8, 1)
    return reseal(body)


@pytest.mark.parametrize("attached", [False, True])
def test_edited_public_key_material_is_caught_by_the_key_id(plain, attached):
    # The attacker edits the key material and recomputes the digest: only the id check is left.
    _, pair, ct = plain
    obj = ser.Bundle({"w": ct}, {}, pair.public) if attached else pair.public
    blob = bytearray(ser.dumps(obj))
    blob[-33] ^= 0x01  # the last byte of the last array: the public key's nonce (plain's key material)
    forged = reseal(bytes(blob[:-32]))
    with pytest.raises(FormatError, match="the key id does not match the public key material: a substituted or "
                                          "edited key file") as info:
        loads(forged)
    assert "henn migrate" not in str(info.value)  # a current file: no excuse of age
    assert loads(forged, verify_key_id=False) is not None  # the control: nothing else is wrong with it


@pytest.mark.skipif("vhe" not in he_core.available_schemes(), reason="vhe not built")
def test_vhe_key_material_is_bound_to_its_id():
    pair = he_core.get_scheme("vhe").keygen(he_core.KeyRequirements(sizes=(1, 2)), rng=he_core.SeededRandom(4))
    blob = bytearray(ser.dumps(pair.public))
    blob[-40] ^= 0x01
    with pytest.raises(FormatError, match="key id does not match"):
        loads(reseal(bytes(blob[:-32])))


def test_a_public_key_posing_under_another_id_is_refused(plain):
    scheme, pair, _ = plain
    other = scheme.keygen(rng=he_core.SeededRandom(99)).public
    posing = he_core.PublicKeys(other.scheme, other.params_id, pair.public.key_id, other.data, other.requirements)
    with pytest.raises(FormatError, match=f"the file says {pair.public.key_id}, the material gives {other.key_id}"):
        loads(ser.dumps(posing), expect_key_id=pair.public.key_id)


def test_version_1_files_with_random_ids_name_the_migration(plain):
    _, pair, ct = plain
    legacy = he_core.PublicKeys("plain", pair.public.params_id, he_core.keys.new_key_id(), pair.public.data,
                                pair.public.requirements)
    old = _as_version_1(ser.dumps(legacy))
    with pytest.raises(FormatError, match=r"written before key ids were derived .*format version 1.*"
                                          r"henn migrate --keys KEY_DIR"):
        loads(old)
    assert loads(old, verify_key_id=False).key_id == legacy.key_id  # what migration reads
    # Files that are not public keys still load: their ids are only labels.
    assert loads(_as_version_1(ser.dumps(ct.replace(key_id=legacy.key_id)))).key_id == legacy.key_id


def test_malformed_key_material_is_a_format_error(plain, monkeypatch):
    # A scheme that picks its material out of a dict (as ckks does: data["pk"]) meets a list.
    monkeypatch.setattr(type(plain[0]), "key_id_material", classmethod(lambda cls, data: [data["nonce"]]))
    header, rest = split(ser.dumps(plain[1].public))
    assert loads(rebuild(header, rest)).key_id == plain[1].public.key_id  # the control
    header["data"] = [{"$a": header["data"]["$d"]["nonce"]["$a"]}]
    with pytest.raises(FormatError, match="public key material is malformed"):
        loads(rebuild(header, rest))


# --- seeded ciphertexts (a fresh CKKS secret-key encryption: c0 and one seed per ciphertext) ---------
def _rebuild_seeded(header: dict, rest: bytes) -> bytes:
    head = json.dumps(header).encode()
    return reseal(container.MAGIC + struct.pack("<HHQI", 2, container.FLAG_SEEDED, 0, len(head)) + head + rest)


def test_a_seeded_ciphertext_with_an_unknown_wire_form_or_no_seeds_is_refused():
    s = he_core.get_scheme("ckks")
    secret, _ = s.keygen(he_core.KeyRequirements(sizes=(1, 4)), rng=he_core.SeededRandom(2))
    ct = s.encrypt(np.ones((1, 4)), secret)
    blob = ser.dumps(ct)
    assert struct.unpack_from("<H", blob, 10)[0] & container.FLAG_SEEDED  # a build that cannot expand refuses it
    header, rest = split(blob)
    assert header["wire"] == "seeded"
    assert np.array_equal(loads(_rebuild_seeded(header, rest)).data, ct.data)  # the control
    with pytest.raises(FormatError, match="seeded flag and its ciphertexts' wire forms disagree"):
        loads(rebuild(header, rest))  # the flag cleared: read as a whole ciphertext it would be half of one
    header["wire"] = "zipped"
    with pytest.raises(FormatError, match="unknown wire form 'zipped'"):
        loads(_rebuild_seeded(header, rest))
    del header["wire"]  # c0 alone as a whole ciphertext, unflagged: its shape is refused where it is used
    half = loads(rebuild(header, rest))
    with pytest.raises(he_core.MismatchError, match="malformed"):
        s.decrypt_exact_local(half, secret)
    header["wire"] = "seeded"
    del header["meta"]["$d"]["a_seed"]
    with pytest.raises(FormatError, match="one seed per ciphertext"):
        loads(_rebuild_seeded(header, rest))


def test_a_parameter_set_seen_before_is_reused_only_for_the_same_values(plain):
    """The loader keeps sets it re-created by id; a file naming that id with other values is checked afresh."""
    scheme = he_core.get_scheme("plain", precision_bits=20)
    blob = ser.dumps(scheme.keygen().public)
    first, again = loads(blob), loads(blob)
    assert again.params is first.params  # the second load reused the re-created set
    header, rest = split(blob)
    header["params"]["precision_bits"] = 3  # same id, another value
    with pytest.raises(FormatError, match="tampered parameters"):
        loads(rebuild(header, rest))
    header["params"]["precision_bits"] = 20.0  # equal in Python, another JSON value: re-created, and it hashes
    try:                                        # as what it is (or is refused), never as the cached set
        got = loads(rebuild(header, rest))
    except FormatError:
        pass
    else:
        assert got.params is not first.params
    assert loads(blob).params is first.params
