"""Every way a file can be wrong raises FormatError naming the problem."""
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
            ser.loads(blob[:cut])


def test_bad_magic(plain):
    blob = ser.dumps(plain[2])
    with pytest.raises(FormatError, match="bad magic"):
        ser.loads(b"PK\x03\x04" + blob[4:])
    with pytest.raises(FormatError, match="bad magic"):
        ser.loads(b"\x93NUMPY" + b"\0" * 100)


def test_unsupported_version(plain):
    body = bytearray(ser.dumps(plain[2])[:-32])
    struct.pack_into("<H", body, 8, 2)
    with pytest.raises(FormatError, match="unsupported format version 2"):
        ser.loads(reseal(body))


def test_every_single_byte_flip_is_detected(plain):
    blob = ser.dumps(plain[1].public)
    for pos in range(len(blob)):
        bad = bytearray(blob)
        bad[pos] ^= 0x40
        with pytest.raises(FormatError):
            ser.loads(bytes(bad))


def test_tampered_payload_is_a_digest_mismatch(plain):
    blob = bytearray(ser.dumps(plain[2]))
    blob[-40] ^= 1  # inside the array bytes
    with pytest.raises(FormatError, match="digest mismatch"):
        ser.loads(bytes(blob))


def test_trailing_bytes(plain):
    with pytest.raises(FormatError, match="trailing bytes"):
        ser.loads(ser.dumps(plain[2]) + b"\0")


def test_wrong_kind_scheme_and_key_are_named(plain):
    scheme, pair, ct = plain
    blob = ser.dumps(ct)
    with pytest.raises(FormatError, match="wrong kind: expected a secret_key, the file holds a ciphertext"):
        ser.loads(blob, expect_kind="secret_key")
    with pytest.raises(FormatError, match="wrong scheme: expected 'vhe'"):
        ser.loads(blob, expect_scheme="vhe")
    other = scheme.keygen().secret.key_id
    with pytest.raises(FormatError, match=f"wrong key: expected key id {other}.*{ct.key_id}"):
        ser.loads(blob, expect_key_id=other)


def test_wrong_key_on_a_bundle_and_on_a_mixed_bundle(plain):
    scheme, pair, ct = plain
    other = scheme.keygen()
    mixed = ser.dumps(ser.Bundle({"a": ct, "b": scheme.encrypt([1.0], other.secret)}))
    with pytest.raises(FormatError, match="wrong key"):
        ser.loads(mixed, expect_key_id=ct.key_id)
    assert set(ser.loads(mixed).key_ids) == {ct.key_id, other.secret.key_id}


def test_tampered_parameters_are_refused(plain):
    scheme = he_core.get_scheme("plain", precision_bits=20)
    header, rest = split(ser.dumps(scheme.keygen().public))
    header["params"]["precision_bits"] = 3
    with pytest.raises(FormatError, match="tampered parameters"):
        ser.loads(rebuild(header, rest))
    header["params"] = {"precision_bits": 99}
    with pytest.raises(FormatError, match="invalid plain parameters"):
        ser.loads(rebuild(header, rest))
    header["params"] = {"no_such_field": 1}
    with pytest.raises(FormatError, match="invalid plain parameters"):
        ser.loads(rebuild(header, rest))


def test_unknown_scheme(plain):
    header, rest = split(ser.dumps(plain[2]))
    header["scheme"] = "rot13"
    with pytest.raises(FormatError, match="unknown scheme 'rot13'"):
        ser.loads(rebuild(header, rest))


def test_key_id_list_must_agree_with_the_fields(plain):
    # Otherwise a forged list would pass expect_key_id while the object is under another key.
    header, rest = split(ser.dumps(plain[2]))
    header["key_id"] = "f" * 32
    with pytest.raises(FormatError, match="key id list disagrees"):
        ser.loads(rebuild(header, rest))


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
    key = ser.loads(_key_with_array(_array_record(b"x", 1, (2,), np.array([5, -6], "<i8").tobytes())))
    np.testing.assert_array_equal(key.data, [5, -6])


@pytest.mark.parametrize("code", [0, 8, 255])
def test_bad_dtype_code(code):
    with pytest.raises(FormatError, match=f"bad dtype code {code}"):
        ser.loads(_key_with_array(_array_record(b"x", code, (2,), b"\0" * 16)))


@pytest.mark.parametrize("dims,payload", [((3,), b"\0" * 16), ((2, 2), b"\0" * 16), ((2,), b"\0" * 8)])
def test_shape_and_byte_count_must_agree(dims, payload):
    with pytest.raises(FormatError):
        ser.loads(_key_with_array(_array_record(b"x", 1, dims, payload)))


def test_shape_and_byte_count_message():
    with pytest.raises(FormatError, match=r"array 'x' of shape \(3,\).*needs 24 bytes, 16 remain"):
        ser.loads(_key_with_array(_array_record(b"x", 1, (3,), b"\0" * 16)))


def test_huge_claimed_sizes_do_not_allocate():
    tracemalloc.start()
    try:
        for dims in [(2**40,), (2**32, 2**32), (2**64 - 1, 2**64 - 1)]:
            with pytest.raises(FormatError, match="truncated or inconsistent"):
                ser.loads(_key_with_array(_array_record(b"x", 3, dims, b"")))
        count_bomb = rebuild({"format": "henn", "kind": "bundle", "scheme": None}, struct.pack("<I", 2**32 - 1))
        with pytest.raises(FormatError, match="arrays announced"):
            ser.loads(count_bomb)
        tiny = container.MAGIC + struct.pack("<HHQI", 1, 0, 2**63, 2**32 - 1)  # 24 bytes claiming a lot
        with pytest.raises(FormatError, match="truncated"):
            ser.loads(tiny)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000


@pytest.mark.parametrize("dims", [(2**64 - 1, 0), (2**62, 0), (2**40, 2**30, 0)])
def test_empty_arrays_with_absurd_dims(dims):
    # Found by fuzz/run_loaders.py: zero bytes of data, but a shape numpy cannot make.
    with pytest.raises(FormatError, match="impossible shape"):
        ser.loads(_key_with_array(_array_record(b"x", 3, dims, b"")))


def test_bool_arrays_hold_only_zero_and_one():
    with pytest.raises(FormatError, match="bool array"):
        ser.loads(_key_with_array(_array_record(b"x", 6, (2,), b"\x01\x07")))


def test_stray_and_missing_and_reused_arrays():
    good = _array_record(b"x", 1, (1,), b"\0" * 8)
    with pytest.raises(FormatError, match="does not hold"):
        ser.loads(_key_with_array(good, name="y"))
    header, rest = split(_key_with_array(good))
    header["data"] = [{"$a": "x"}, {"$a": "x"}]
    with pytest.raises(FormatError, match="twice"):
        ser.loads(rebuild(header, rest))
    header["data"] = None
    with pytest.raises(FormatError, match="no field refers to"):
        ser.loads(rebuild(header, rest))


@pytest.mark.parametrize("node", [{"$x": 1}, {"$a": 5}, {"$d": [1]}, {"$t": {}}, {"$a": "x", "$t": []}])
def test_unknown_or_malformed_tags(node):
    header, rest = split(_key_with_array(_array_record(b"x", 1, (1,), b"\0" * 8)))
    header["data"] = [{"$a": "x"}, node]
    with pytest.raises(FormatError, match="malformed entry"):
        ser.loads(rebuild(header, rest))


@pytest.mark.parametrize("raw", [b"[1,2]", b"{not json", b"\xff\xfe", b'{"a":1,"a":2}', b"[" * 100000,
                                 b'{"n":' + b"9" * 5000 + b"}"])
def test_malformed_headers(raw):
    blob = reseal(container.MAGIC + struct.pack("<HHQI", 1, 0, 0, len(raw)) + raw + struct.pack("<I", 0))
    with pytest.raises(FormatError):
        ser.loads(blob)


@pytest.mark.parametrize("field,value", [("shape", [1]), ("shape", [-1, 2]), ("shape", [1, True]),
                                         ("scale", "big"), ("scale", float("nan")), ("scale", None),
                                         ("meta", [1]), ("key_id", ""), ("key_id", 5)])
def test_malformed_ciphertext_fields(plain, field, value):
    header, rest = split(ser.dumps(plain[2]))
    header[field] = value
    if field == "key_id" and isinstance(value, str):
        header["key_ids"] = [value]
    with pytest.raises(FormatError):
        ser.loads(rebuild(header, rest))


@pytest.mark.parametrize("req", [{"sizes": [0], "rotations": [], "multiply": True},
                                 {"sizes": [3, 1], "rotations": [], "multiply": True},
                                 {"sizes": [1], "rotations": [], "multiply": 1},
                                 {"sizes": "1", "rotations": [], "multiply": True}])
def test_malformed_key_requirements(req):
    header, rest = split(ser.dumps(he_core.KeyRequirements()))
    header["requirements"] = req
    with pytest.raises(FormatError, match="key requirements"):
        ser.loads(rebuild(header, rest))


def test_non_bytes_input_is_a_type_error():
    with pytest.raises(TypeError):
        ser.loads("a string")


def test_bundle_public_keys_under_another_key_are_refused(plain):
    scheme, pair, ct = plain
    header, rest = split(ser.dumps(ser.Bundle({"w": ct}, {}, pair.public)))
    header["public"]["key_id"] = "e" * 32
    with pytest.raises(FormatError):
        ser.loads(rebuild(header, rest))
    header["key_ids"] = sorted([ct.key_id, "e" * 32])
    with pytest.raises(FormatError, match="public keys are for key e+, its ciphertexts"):
        ser.loads(rebuild(header, rest))
