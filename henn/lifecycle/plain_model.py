"""Plaintext models: named float64 weight arrays and JSON metadata in an owner-only ``.npz``.

The file holds the model in the clear, so it is written like a secret key (``0o600``).
It is read member by member without ``np.load``: nothing is unpickled, and no array
larger than the bytes actually present is allocated (the reader sees hostile files:
``fuzz/run_loaders.py``).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from he_core.errors import FormatError

META_ENTRY = "__meta__"
MAX_PLAIN_MODEL_BYTES = 1 << 34  # 16 GiB of weights: far above any model here, far below a zip bomb


@dataclasses.dataclass
class PlainModel:
    """Named float64 weight arrays and JSON metadata: the owner's model in the clear."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


def write_plain_model(path: str | os.PathLike, model: PlainModel) -> Path:
    """Write a plaintext model as ``.npz`` (weights plus a ``__meta__`` JSON entry), owner-only.

    The file holds the model in the clear, so it is created ``0o600`` like a secret key
    (and a missing parent directory ``0o700``).
    """
    arrays = {name: _weight(name, a) for name, a in model.arrays.items()}
    meta = np.frombuffer(json.dumps(model.meta).encode("utf-8"), dtype=np.uint8)
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        np.savez(handle, **arrays, **{META_ENTRY: meta})
    return path


def read_plain_model(path: str | os.PathLike) -> PlainModel:
    """Read a plaintext model written by :func:`write_plain_model` (or any ``.npz`` of numeric weights).

    The archive is parsed member by member (see :func:`_read_npz`): nothing is ever
    unpickled, and no array larger than the data actually present is allocated.

    Raises:
        FormatError: not an ``.npz``, object or non-numeric arrays, non-finite weights, bad metadata.
        FileNotFoundError, PermissionError: the file cannot be opened.
    """
    try:
        raw = _read_npz(Path(path))
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (ValueError, OSError, EOFError, KeyError, RuntimeError, NotImplementedError, OverflowError,
            zipfile.BadZipFile, zlib.error, struct.error) as exc:  # the ways zipfile/numpy refuse bad bytes
        raise FormatError(f"cannot read plaintext model {path}: {exc}") from None
    meta = {}
    if META_ENTRY in raw:
        meta = _meta_from(raw.pop(META_ENTRY), path)
    if not raw:
        raise FormatError(f"cannot read plaintext model {path}: it holds no weight arrays")
    try:
        arrays = {name: _weight(name, a) for name, a in raw.items()}
    except (TypeError, ValueError) as exc:
        raise FormatError(f"cannot read plaintext model {path}: {exc}") from None
    return PlainModel(arrays, meta)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz``, checking every declared size against the bytes present.

    ``np.load`` would allocate whatever an ``.npy`` header claims before reading; here a
    header's byte count must fit in the member's recorded size, and the member must
    then deliver exactly that many bytes.
    """
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if sum(info.file_size for info in infos) > MAX_PLAIN_MODEL_BYTES:
            raise ValueError(f"the archive claims more than {MAX_PLAIN_MODEL_BYTES} bytes of arrays")
        for info in infos:
            if not info.filename.endswith(".npy") or info.filename[:-4] in out:
                raise ValueError(f"unexpected archive member {info.filename!r}")
            with archive.open(info) as member:
                out[info.filename[:-4]] = _read_npy(member, info.file_size, info.filename)
    return out


def _read_npy(member: Any, size: int, name: str) -> np.ndarray:
    version = np.lib.format.read_magic(member)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f"{name}: unsupported .npy version {version}")
    try:
        shape, fortran, dtype = readers[version](member)
    except (SyntaxError, tokenize.TokenError) as exc:
        # numpy tokenises the header text (safely, with ast.literal_eval) and lets these
        # escape on malformed headers; found by fuzz/run_loaders.py.
        raise ValueError(f"{name}: malformed .npy header: {exc}") from None
    if dtype.hasobject or dtype.kind not in "iuf" or dtype.fields is not None:
        raise ValueError(f"{name}: arrays of dtype {dtype} are not weights (real numbers only, no objects)")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > size:
        raise ValueError(f"{name}: its header claims {nbytes} bytes, the member holds {size}")
    data = member.read(nbytes)
    if len(data) != nbytes or member.read(1):
        raise ValueError(f"{name}: the array data does not have the {nbytes} bytes its header states")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _meta_from(entry: np.ndarray, path: Any) -> dict[str, Any]:
    if entry.dtype != np.uint8 or entry.ndim != 1:
        raise FormatError(f"cannot read plaintext model {path}: {META_ENTRY} must be UTF-8 JSON bytes (uint8)")
    try:
        meta = json.loads(entry.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(f"cannot read plaintext model {path}: bad {META_ENTRY} JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise FormatError(f"cannot read plaintext model {path}: {META_ENTRY} must be a JSON object")
    return meta


def _weight(name: str, array: Any) -> np.ndarray:
    if not isinstance(name, str) or not name or name.startswith("__"):
        raise ValueError(f"weight name {name!r} is empty or reserved")
    array = np.asarray(array)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"weight {name!r} has dtype {array.dtype}; weights must be real numbers")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"weight {name!r} contains NaN or infinity")
    return array
