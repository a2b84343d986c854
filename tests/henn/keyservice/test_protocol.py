"""henn.keyservice.protocol: request payloads (length-prefixed JSON header, then the body) and their refusals."""
import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from henn.keyservice.protocol import MAX_HEADER, OPS, new_request_id, pack, unpack
from henn.keyservice.transport import KeyServiceError

headers = st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=8), st.booleans()),
                          max_size=4)


@given(extra=headers, body=st.binary(max_size=64))
def test_a_packed_request_unpacks_unchanged(extra, body):
    header = {**extra, "request_id": new_request_id()}
    got, rest = unpack(pack(header, body))
    assert got == header and rest == body


def test_request_ids_are_fresh_32_hex_digits():
    ids = {new_request_id() for _ in range(200)}
    assert len(ids) == 200 and all(len(i) == 32 and int(i, 16) >= 0 and i == i.lower() for i in ids)


def raw(header_bytes: bytes, body: bytes = b"") -> bytes:
    return struct.pack(">I", len(header_bytes)) + header_bytes + body


@pytest.mark.parametrize("payload,match", [
    (b"\x00\x00", "truncated"),
    (struct.pack(">I", 100) + b"{}", "header in a"),
    (struct.pack(">I", MAX_HEADER + 1) + b"x" * (MAX_HEADER + 1), "header in a"),
    (raw(b"\xff\xfe"), "not JSON"),
    (raw(b"[" * 30000 + b"]" * 30000), "not JSON"),
    (raw(b"[1, 2]"), "not a JSON object"),
    (raw(b"{}"), "request_id"),
    (raw(json.dumps({"request_id": "ABCDEF" * 5 + "00"}).encode()), "request_id"),
    (raw(json.dumps({"request_id": "0" * 31}).encode()), "request_id"),
    (raw(json.dumps({"request_id": 12}).encode()), "request_id"),
], ids=["truncated", "short", "huge", "utf8", "deep", "list", "no-id", "upper", "short-id", "int-id"])
def test_malformed_requests_are_refused_by_name(payload, match):
    with pytest.raises(KeyServiceError, match=match):
        unpack(payload)


def test_every_operation_has_a_name():
    assert set(OPS.values()) == {"HELLO", "REENCRYPT", "BYE", "OK", "ERROR", "RELEASE"}
    assert len(OPS) == 6
