"""he_core.formats.container: the binary envelope, written and read back, and every way a read refuses.

Forgeries that should get past the digest (a forger recomputes it; only a signature
stops that) are built with :func:`redigest`, so each check behind the digest is reached.
"""
import hashlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from he_core.errors import FormatError
from he_core.formats import container as c

DTYPES = [np.dtype(d) for d in c.ALLOWED_DTYPES]


def redigest(blob: bytes, *, total: int | None = None) -> bytes:
    """An unsigned file with its length field set (default: its size) and its digest recomputed."""
    body = bytearray(blob[:-c.DIGEST_SIZE])
    struct.pack_into("<Q", body, 12, len(body) + c.DIGEST_SIZE if total is None else total)
    return bytes(body) + hashlib.sha256(body).digest()


class Signer:
    fingerprint_bytes = bytes(range(16))

    def sign(self, message):
        return hashlib.sha512(bytes(message)).digest()  # 64 bytes: the size of an Ed25519 signature


arrays_st = st.lists(st.sampled_from(DTYPES).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))), max_size=4)
headers = st.dictionaries(st.text(max_size=8), st.one_of(st.integers(-2**100, 2**100), st.text(max_size=8),
                                                        st.booleans(), st.none(), st.floats(allow_nan=False)),
                          max_size=5)


@given(header=headers, arrays=arrays_st, signed=st.booleans())
@settings(max_examples=60, deadline=None)
def test_what_is_packed_unpacks_unchanged(header, arrays, signed):
    named = [(f"a{i}", a) for i, a in enumerate(arrays)]
    blob = c.pack(header, named, Signer() if signed else None)
    env = c.envelope(blob)
    assert env.version == c.VERSION
    assert (env.signer, env.signature is not None) == ((Signer.fingerprint_bytes, True) if signed else (None, False))
    back_header, back = c.parse(env)
    assert back_header == header and list(back) == [n for n, _ in named]
    for name, a in named:
        assert back[name].dtype == a.dtype and back[name].shape == a.shape
        np.testing.assert_array_equal(back[name], a)
        assert back[name].flags.writeable
    if signed:
        assert bytes(env.signed_message) == blob[:-c.SIGNATURE_SIZE]


def test_layout_of_the_preamble():
    blob = c.pack({"k": 1}, [])
    magic, version, flags, total, head_len = struct.unpack("<8sHHQI", blob[:24])
    assert (magic, version, flags, total, head_len) == (c.MAGIC, 2, 0, len(blob), len(b'{"k":1}'))
    assert blob[-32:] == hashlib.sha256(blob[:-32]).digest()


def test_arrays_are_written_in_c_order_and_little_endian():
    a = np.arange(12, dtype=">i8").reshape(3, 4).T  # big-endian, Fortran-ordered view
    _, back = c.unpack(c.pack({}, [("a", a)]))
    np.testing.assert_array_equal(back["a"], a)
    assert back["a"].dtype == np.dtype("<i8")


@pytest.mark.parametrize("bad", [np.zeros(2, np.float32), np.zeros(2, np.complex128), np.array(["x"]),
                                 np.array([object()])])
def test_dtypes_off_the_allow_list_are_refused_when_writing(bad):
    with pytest.raises(TypeError, match="not allowed"):
        c.pack({}, [("a", bad)])


def test_writing_refuses_long_names_many_dimensions_and_bad_signers():
    with pytest.raises(ValueError, match="name longer"):
        c.pack({}, [("n" * (c.MAX_NAME + 1), np.zeros(1))])
    with pytest.raises(ValueError, match="dimensions"):
        c.pack({}, [("a", np.zeros((1,) * 33))])

    class Short(Signer):
        fingerprint_bytes = b"x"

    class Long(Signer):
        def sign(self, message):
            return b"y" * 65

    for signer in (Short(), Long()):
        with pytest.raises(ValueError, match="cannot sign"):
            c.pack({}, [], signer)
    with pytest.raises(TypeError):
        c.pack({"x": object()}, [])


def test_every_flipped_byte_is_refused():
    blob = c.pack({"k": [1, 2]}, [("a", np.arange(5))])
    for i in range(len(blob)):
        forged = bytearray(blob)
        forged[i] ^= 0x01
        with pytest.raises(FormatError):
            c.unpack(bytes(forged))


@pytest.mark.parametrize("cut", [0, 5, 23, 40, -1, -33])
def test_truncated_files_are_refused(cut):
    blob = c.pack({"k": 1}, [("a", np.arange(3))])
    with pytest.raises(FormatError, match="truncated|digest"):
        c.unpack(blob[:cut])


def test_preamble_checks():
    blob = c.pack({}, [])
    with pytest.raises(FormatError, match="not a henn file"):
        c.unpack(b"\x00" * 8 + blob[8:])
    with pytest.raises(FormatError, match="trailing bytes"):
        c.unpack(blob + b"\x00")
    version = bytearray(blob)
    struct.pack_into("<H", version, 8, 9)
    with pytest.raises(FormatError, match="unsupported format version 9"):
        c.unpack(redigest(bytes(version)))
    flags = bytearray(blob)
    struct.pack_into("<H", flags, 10, 0x8)
    with pytest.raises(FormatError, match="unknown format flags"):
        c.unpack(redigest(bytes(flags)))
    with pytest.raises(TypeError):
        c.unpack("not bytes")


def test_version_1_files_are_still_read():
    blob = bytearray(c.pack({"old": True}, [("a", np.arange(2))]))
    struct.pack_into("<H", blob, 8, 1)
    header, arrays = c.unpack(redigest(bytes(blob)))
    assert header == {"old": True} and list(arrays["a"]) == [0, 1]


def forged_body(header_json: bytes, arrays_bytes: bytes) -> bytes:
    body = header_json + arrays_bytes
    pre = struct.pack("<8sHHQI", c.MAGIC, 2, 0, 24 + len(body) + 32, len(header_json))
    return redigest(pre + body + b"\x00" * 32)


def array_record(name: bytes, code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack("<H", len(name)) + name + struct.pack("<BB", code, len(dims)) + \
        struct.pack(f"<{len(dims)}Q", *dims) + payload


@pytest.mark.parametrize("header,arrays,match", [
    (b"[1]", struct.pack("<I", 0), "not a JSON object"),
    (b"{bad", struct.pack("<I", 0), "malformed JSON"),
    (b'{"a":1,"a":2}', struct.pack("<I", 0), "malformed JSON"),
    (b"[" * 300 + b"]" * 300, struct.pack("<I", 0), "nested deeper"),
    (b"{}", struct.pack("<I", 5), "5 arrays announced|truncated"),
    (b"{}", struct.pack("<I", 1) + array_record(b"a", 99, (1,), b"\x00" * 8), "dtype"),
    (b"{}", struct.pack("<I", 1) + array_record(b"a", 1, (2**40,), b"\x00" * 8), "truncated|inconsistent"),
    (b"{}", struct.pack("<I", 2) + array_record(b"a", 1, (1,), b"\x00" * 8) * 2, "appears twice"),
    (b"{}", struct.pack("<I", 1) + array_record(b"\xff", 1, (1,), b"\x00" * 8), "UTF-8"),
    (b"{}", struct.pack("<I", 0) + b"extra", "unexpected bytes"),
], ids=["not-object", "bad-json", "duplicate-key", "deep-json", "missing-arrays", "bad-dtype", "huge-dims",
        "duplicate-name", "bad-name", "extra-bytes"])
def test_malformed_headers_and_arrays_are_refused_behind_a_valid_digest(header, arrays, match):
    with pytest.raises(FormatError, match=match):
        c.unpack(forged_body(header, arrays))


def test_a_signed_file_cannot_pass_for_an_unsigned_one():
    blob = c.pack({"k": 1}, [], Signer())
    stripped = bytearray(blob[:-c.TRAILER_SIZE])
    with pytest.raises(FormatError):
        c.unpack(bytes(stripped))  # length and flags say signed: truncated / digest mismatch
    struct.pack_into("<H", stripped, 10, 0)
    forged = redigest(bytes(stripped))
    assert c.envelope(forged).signer is None  # only a caller that requires a signature refuses it


@pytest.mark.parametrize("raw", [b"{}", b'{"a": [1, [2]]}', b"[" * 150 + b"]" * 150 + b"[[]]" * 100,
                                 b"[" * 201 + b"]" * 201, b'{"s": "]]]]"}' + b"[" * 199,
                                 b"{" + b'"x": [[[]]], ' * 80 + b'"y": 1}'])
def test_header_depth_is_the_running_bracket_depth_or_an_upper_bound_within_the_limit(raw):
    depth = best = 0
    for ch in raw:  # the byte-by-byte definition
        depth += ch in b"[{"
        depth -= ch in b"]}"
        best = max(best, depth)
    got = c._max_nesting(raw)
    assert got >= best  # never under the depth (the limit is never loosened)
    assert (got > c.MAX_JSON_DEPTH) == (best > c.MAX_JSON_DEPTH)  # and it refuses exactly the deep ones
