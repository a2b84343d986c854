"""The binary envelope shared by every henn file: parse everything by hand, trust nothing.

Layout (all integers little-endian)::

    preamble   magic (8 bytes) | version u16 | flags u16 | total length u64 | header length u32
    header     UTF-8 JSON object (header length bytes)
    arrays     count u32, then per array:
                 name length u16 | name (UTF-8) | dtype code u8 | ndim u8 | dims u64 * ndim | raw bytes
    digest     SHA-256 of every byte before it (32 bytes)
    trailer    only when flags has SIGNED (version 2):
                 signer fingerprint (16 bytes) | Ed25519 signature (64 bytes) of every byte before it

Version 2 is written; version 1 (no flags, no trailer: files from before signatures)
is still read. Flag ``SEEDED`` marks a file holding ciphertexts in a smaller wire form
(a seed in place of a uniform half): a build that cannot expand them refuses the file by
its unknown flag instead of reading half a ciphertext. The total length counts the trailer, and the flags are covered by the
digest and by the signature, so a signed file cannot pass for an unsigned one
without a new digest, which a caller that requires a signature refuses anyway.

Loading never executes code and never allocates more than the input holds: every
length field is checked against the bytes that remain before anything is sliced.
Loading happens in two steps: :func:`envelope` checks the preamble, lengths, digest
and trailer (so a signature can be checked before any JSON or array is parsed), and
:func:`parse` reads the header and the arrays.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from typing import Any, Protocol

import numpy as np

from ..errors import FormatError

MAGIC = b"\x89HENN\r\n\x1a"
VERSION = 2                  # the version written
READABLE_VERSIONS = (1, 2)   # 1: before signatures (no flags, no trailer)
FLAG_SIGNED = 0x1
FLAG_SEEDED = 0x2  # ciphertexts whose uniform halves travel as seeds (he_core/schemes/ckks/seeded.py)
# Switching keys whose uniform halves travel as seeds (he_core/schemes/ckks/seeded_keys.py). A bit of its own:
# builds that knew seeded ciphertexts only would read a seeded key's b halves as a whole key.
FLAG_SEEDED_KEYS = 0x4
DIGEST_SIZE = 32
FINGERPRINT_SIZE = 16
SIGNATURE_SIZE = 64
TRAILER_SIZE = FINGERPRINT_SIZE + SIGNATURE_SIZE
_PREAMBLE = struct.Struct("<8sHHQI")
_U32 = struct.Struct("<I")
_ARRAY_HEAD = struct.Struct("<H")
_DTYPE_HEAD = struct.Struct("<BB")
MAX_NDIM = 32
MAX_NAME = 1024
MAX_JSON_DEPTH = 200

# The only dtypes a file may hold, all stored little-endian. Codes are part of the format.
DTYPE_CODES: dict[int, np.dtype] = {
    1: np.dtype("<i8"),
    2: np.dtype("<u8"),
    3: np.dtype("<f8"),
    4: np.dtype("<i4"),
    5: np.dtype("u1"),
    6: np.dtype("?"),
    7: np.dtype("i1"),  # small secrets (ternary / binary keys)
}
ALLOWED_DTYPES = ("int64", "uint64", "float64", "int32", "uint8", "bool", "int8")


def dtype_code(dtype: np.dtype) -> int:
    """The format's code for an allowed dtype.

    Raises:
        TypeError: the dtype is not on the allow-list.
    """
    dtype = np.dtype(dtype)
    code = _CODE_OF.get(dtype)
    if code is None:
        raise TypeError(f"cannot serialise: arrays of dtype {dtype} are not allowed "
                        f"(allowed: {', '.join(ALLOWED_DTYPES)})")
    return code


# By dtype, every byte order alike (as ``dtype.name`` matched them; the writer converts to
# little-endian): one dict lookup instead of a name per call.
_CODE_OF = {dt.newbyteorder(order): code for code, dt in DTYPE_CODES.items() for order in "=<>"}


class Signer(Protocol):
    """What :func:`pack` needs to sign (``he_core.formats.signing.SigningKey`` is one)."""

    fingerprint_bytes: bytes

    def sign(self, message: bytes | memoryview) -> bytes: ...


def pack(header: dict[str, Any], arrays: list[tuple[str, np.ndarray]], signer: Signer | None = None, *,
         seeded: bool = False, seeded_keys: bool = False) -> bytes:
    """Write one container.

    Args:
        header: JSON-serialisable dict (ints of any size, finite or non-finite floats).
        arrays: ``(name, array)`` pairs; dtypes must be on the allow-list.
        signer: sign the file (flag ``SIGNED`` and the trailer); ``None`` for an unsigned file.
        seeded: the header holds ciphertexts in their seeded wire form (flag ``SEEDED``).
        seeded_keys: the header holds switching keys in their seeded wire form (flag ``SEEDED_KEYS``).

    Returns:
        The container bytes, digest (and trailer) included.

    Raises:
        TypeError: a disallowed dtype or a header that JSON cannot represent.
        ValueError: an over-long array name, too many dimensions, or a signer whose
            fingerprint or signature has the wrong size.
    """
    # No sort_keys: dict order is part of the data (model layers, payload trees).
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    body: list[Any] = [head, _U32.pack(len(arrays))]
    for name, array in arrays:
        body += _array_chunks(name, array)
    trailer = TRAILER_SIZE if signer is not None else 0
    # Array payloads stay memoryviews until the single join: key material can be tens of MB.
    total = _PREAMBLE.size + sum(len(chunk) for chunk in body) + DIGEST_SIZE + trailer
    flags = ((FLAG_SIGNED if signer is not None else 0) | (FLAG_SEEDED if seeded else 0)
             | (FLAG_SEEDED_KEYS if seeded_keys else 0))
    chunks = [_PREAMBLE.pack(MAGIC, VERSION, flags, total, len(head))] + body
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    if signer is None:
        return b"".join(chunks + [digest.digest()])
    fingerprint = bytes(signer.fingerprint_bytes)
    if len(fingerprint) != FINGERPRINT_SIZE:
        raise ValueError(f"cannot sign: a signer fingerprint has {FINGERPRINT_SIZE} bytes, got {len(fingerprint)}")
    unsigned = b"".join(chunks + [digest.digest(), fingerprint])
    signature = bytes(signer.sign(unsigned))
    if len(signature) != SIGNATURE_SIZE:
        raise ValueError(f"cannot sign: an Ed25519 signature has {SIGNATURE_SIZE} bytes, got {len(signature)}")
    return unsigned + signature


def _array_chunks(name: str, array: np.ndarray) -> list[Any]:
    code = dtype_code(array.dtype)
    raw_name = name.encode("utf-8")
    if len(raw_name) > MAX_NAME:
        raise ValueError(f"cannot serialise: array name longer than {MAX_NAME} bytes")
    if array.ndim > MAX_NDIM:
        raise ValueError(f"cannot serialise: array {name!r} has {array.ndim} dimensions (max {MAX_NDIM})")
    # Always C order and little-endian, whatever the in-memory layout was.
    data = np.ascontiguousarray(array, dtype=DTYPE_CODES[code])
    dims = struct.pack(f"<{array.ndim}Q", *array.shape)
    head = _ARRAY_HEAD.pack(len(raw_name)) + raw_name + _DTYPE_HEAD.pack(code, array.ndim) + dims
    return [head, memoryview(data.reshape(-1).view(np.uint8))]


class _Reader:
    """A cursor over a bytes object that refuses to read past ``end``."""

    def __init__(self, data: memoryview, start: int, end: int):
        self.data = data
        self.pos = start
        self.end = end

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or n > self.end - self.pos:
            raise FormatError(f"cannot load: truncated or inconsistent file: {what} needs {n} bytes, "
                              f"{self.end - self.pos} remain")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: struct.Struct, what: str) -> tuple:
        return fmt.unpack(self.take(fmt.size, what))


@dataclasses.dataclass(frozen=True)
class Envelope:
    """A container whose preamble, lengths, digest and trailer have been checked.

    Attributes:
        data: the whole file.
        version: the format version (1 or 2).
        head_len: length of the JSON header.
        body_end: offset of the digest (the header and arrays end there).
        signer: the 16-byte fingerprint of the key that signed it, or ``None`` if unsigned.
        signature: the 64-byte signature, or ``None``.
        flags: the preamble's flags (``SIGNED``, ``SEEDED``).
    """

    data: memoryview
    version: int
    head_len: int
    body_end: int
    signer: bytes | None
    signature: bytes | None
    flags: int = 0

    @property
    def signed_message(self) -> memoryview:
        """The bytes the signature covers: everything before it."""
        return self.data[:len(self.data) - SIGNATURE_SIZE]


def unpack(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify one container (signatures are not checked here; see :func:`envelope`).

    Args:
        data: the file's bytes.

    Returns:
        ``(header, arrays)``; the arrays are fresh, writable, native-endian copies.

    Raises:
        FormatError: truncated, bad magic, unsupported version, digest mismatch, bad
            dtype, size inconsistencies or malformed header.
    """
    return parse(envelope(data))


def envelope(data: bytes) -> Envelope:
    """Check everything but the header and arrays: preamble, length, digest, trailer.

    Raises:
        TypeError: ``data`` is not bytes.
        FormatError: truncated, bad magic, unsupported version or flags, trailing bytes,
            digest mismatch.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"cannot load: expected bytes, got {type(data).__name__}")
    view = memoryview(data).cast("B")
    version, flags = _check_preamble(view)
    head_len = _PREAMBLE.unpack(view[:_PREAMBLE.size])[4]
    trailer = TRAILER_SIZE if flags & FLAG_SIGNED else 0
    body_end = len(view) - trailer - DIGEST_SIZE
    if hashlib.sha256(view[:body_end]).digest() != bytes(view[body_end:body_end + DIGEST_SIZE]):
        raise FormatError("cannot load: digest mismatch: the file was modified (tampered with or corrupted)")
    signer = signature = None
    if trailer:
        start = body_end + DIGEST_SIZE
        signer = bytes(view[start:start + FINGERPRINT_SIZE])
        signature = bytes(view[start + FINGERPRINT_SIZE:])
    return Envelope(view, version, head_len, body_end, signer, signature, flags)


def parse(env: Envelope) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and arrays of a checked envelope.

    Raises:
        FormatError: bad dtype, size inconsistencies, malformed header.
    """
    reader = _Reader(env.data, _PREAMBLE.size, env.body_end)
    header = _parse_header(reader.take(env.head_len, "the JSON header"))
    arrays = _read_arrays(reader)
    if reader.pos != env.body_end:
        raise FormatError(f"cannot load: {env.body_end - reader.pos} unexpected bytes after the last array")
    return header, arrays


def _check_preamble(view: memoryview) -> tuple[int, int]:
    if len(view) < len(MAGIC) or bytes(view[:len(MAGIC)]) != MAGIC:
        if len(view) < len(MAGIC) and MAGIC.startswith(bytes(view)):
            raise FormatError(f"cannot load: truncated file ({len(view)} bytes)")
        raise FormatError("cannot load: bad magic bytes: this is not a henn file")
    if len(view) < _PREAMBLE.size + DIGEST_SIZE:
        raise FormatError(f"cannot load: truncated file ({len(view)} bytes)")
    _, version, flags, total, _ = _PREAMBLE.unpack(view[:_PREAMBLE.size])
    if version not in READABLE_VERSIONS:
        raise FormatError(f"cannot load: unsupported format version {version} (this build reads versions "
                          f"{', '.join(map(str, READABLE_VERSIONS))})")
    known = FLAG_SIGNED | FLAG_SEEDED | FLAG_SEEDED_KEYS if version >= 2 else 0
    if flags & ~known:
        raise FormatError(f"cannot load: unknown format flags {flags:#x} for version {version}")
    if len(view) < total:
        raise FormatError(f"cannot load: truncated file: {len(view)} bytes, the file says {total}")
    if len(view) > total:
        raise FormatError(f"cannot load: {len(view) - total} trailing bytes after the end of the file")
    if flags & FLAG_SIGNED and total < _PREAMBLE.size + DIGEST_SIZE + TRAILER_SIZE:
        raise FormatError(f"cannot load: truncated file: {total} bytes cannot hold a signature")
    return version, flags


def _parse_header(raw: memoryview) -> dict[str, Any]:
    raw = bytes(raw)
    opens = raw.count(b"[") + raw.count(b"{")
    # Bound nesting before json recurses into it (deep nesting would hit RecursionError).
    if opens > MAX_JSON_DEPTH and _max_nesting(raw) > MAX_JSON_DEPTH:
        raise FormatError(f"cannot load: header nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(f"cannot load: malformed JSON header: {exc}") from None
    if not isinstance(header, dict):
        raise FormatError("cannot load: the header is not a JSON object")
    if opens > MAX_JSON_DEPTH and _depth(header) > MAX_JSON_DEPTH:
        # Closing brackets inside strings can lower the byte count: the parsed object is the truth.
        raise FormatError(f"cannot load: header nested deeper than {MAX_JSON_DEPTH} levels")
    return header


def _depth(obj: Any) -> int:
    """Nesting depth of parsed JSON (lists and dicts), with an explicit stack."""
    best, stack = 0, [(obj, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        best = max(best, level)
        stack.extend((child, level + 1) for child in children)
    return best


def _max_nesting(raw: bytes) -> int:
    # Counting brackets over-estimates inside strings, which only makes the bound stricter.
    opens = raw.count(b"[") + raw.count(b"{")
    if opens <= MAX_JSON_DEPTH:  # no deeper than that many opening brackets: the usual header, in C
        return opens
    # The running depth, vectorised (a byte loop cost a key service ~35 us per request).
    b = np.frombuffer(raw, dtype=np.uint8)
    step = ((b == 0x5B) | (b == 0x7B)).astype(np.int64) - ((b == 0x5D) | (b == 0x7D))
    return max(int(np.cumsum(step).max(initial=0)), 0)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _read_arrays(reader: _Reader) -> dict[str, np.ndarray]:
    (count,) = reader.unpack(_U32, "the array count")
    # Each record is at least 4 bytes, so a huge count in a tiny file fails here, not in a loop.
    if count * (_ARRAY_HEAD.size + _DTYPE_HEAD.size) > reader.end - reader.pos:
        raise FormatError(f"cannot load: truncated or inconsistent file: {count} arrays announced, "
                          f"{reader.end - reader.pos} bytes remain")
    arrays: dict[str, np.ndarray] = {}
    for _ in range(count):
        name, array = _read_array(reader)
        if name in arrays:
            raise FormatError(f"cannot load: array name {name!r} appears twice")
        arrays[name] = array
    return arrays


def _read_array(reader: _Reader) -> tuple[str, np.ndarray]:
    (name_len,) = reader.unpack(_ARRAY_HEAD, "an array name length")
    if name_len > MAX_NAME:
        raise FormatError(f"cannot load: array name of {name_len} bytes (max {MAX_NAME})")
    try:
        name = bytes(reader.take(name_len, "an array name")).decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("cannot load: an array name is not valid UTF-8") from None
    code, ndim = reader.unpack(_DTYPE_HEAD, f"the dtype of array {name!r}")
    if code not in DTYPE_CODES:
        raise FormatError(f"cannot load: array {name!r} has bad dtype code {code} "
                          f"(allowed: {', '.join(ALLOWED_DTYPES)})")
    if ndim > MAX_NDIM:
        raise FormatError(f"cannot load: array {name!r} has {ndim} dimensions (max {MAX_NDIM})")
    shape = struct.unpack(f"<{ndim}Q", reader.take(8 * ndim, f"the shape of array {name!r}"))
    dtype = DTYPE_CODES[code]
    count = 1
    for dim in shape:  # Python ints: no overflow however large the claimed dims are
        count *= dim
    nbytes = count * dtype.itemsize
    raw = reader.take(nbytes, f"array {name!r} of shape {shape} ({dtype.name})")
    try:
        # Dims may multiply out to zero bytes yet be too large for numpy (e.g. (2**64-1, 0)).
        array = np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=True)
    except ValueError as exc:
        raise FormatError(f"cannot load: array {name!r} has an impossible shape {shape}: {exc}") from None
    if dtype.name == "bool" and np.any(np.frombuffer(raw, dtype=np.uint8) > 1):
        raise FormatError(f"cannot load: bool array {name!r} holds bytes other than 0 and 1")
    return name, array
