"""A model's life across parties: key generation, encryption, hand-over, re-keying, decryption.

Roles:

* the **owner** holds the secret key(s). It generates keys (:func:`keygen`), encrypts
  its plaintext model (:func:`encrypt_model`), moves an encrypted model from one of its
  keys to another without decrypting it (:func:`rekey_model`) and finally decrypts
  (:func:`decrypt_model`);
* a **trainer** receives an encrypted model that carries the public keys it is under
  (:func:`load_encrypted_model`) and computes on it with public material only. Code
  running for a trainer wraps itself in :func:`public_only`, which makes every attempt
  to read a secret key fail loudly.

On disk a key directory holds ``public.henn`` (scheme, parameters, public and
evaluation keys: safe to share) and ``secret.henn`` (owner-only, mode ``0o600``). A
plaintext model is an ``.npz`` of named weight arrays plus a ``__meta__`` entry with
UTF-8 JSON metadata (see :func:`write_plain_model`). An encrypted model is a
:class:`he_core.serialization.Bundle`.

Only the ``he_core`` interface and registry are used: any registered scheme works.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import struct
import threading
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

import he_core
from he_core import Capability, KeyMissingError, KeyPair, KeyRequirements, MismatchError, PublicKeys, Scheme, \
    SecretKey
from he_core import serialization as ser
from he_core.errors import FormatError

PUBLIC_FILE = "public.henn"
MODEL_FILE = "model.henn"  # the file name inside a model directory (as henn.io writes it)
SECRET_FILE = "secret.henn"
META_ENTRY = "__meta__"
MODEL_FORMAT = "henn-model-1"
MAX_PLAIN_MODEL_BYTES = 1 << 34  # 16 GiB of weights: far above any model here, far below a zip bomb

_guard = threading.local()


# ---------------------------------------------------------------------------- roles
@contextlib.contextmanager
def public_only(role: str = "trainer") -> Iterator[None]:
    """Within this block, any attempt to read a secret key raises :class:`KeyMissingError`.

    Args:
        role: named in the error message.
    """
    previous = getattr(_guard, "role", None)
    _guard.role = role
    try:
        yield
    finally:
        _guard.role = previous


def _refuse_secret_if_public_only(what: str) -> None:
    role = getattr(_guard, "role", None)
    if role is not None:
        raise KeyMissingError(f"cannot {what}: refusing to look for a secret key on the {role} side "
                              "(only the owner holds it)")


# ---------------------------------------------------------------------------- key directories
def keygen(scheme_name: str, out_dir: str | os.PathLike, *, sizes: Iterable[int] = (1,),
           rotations: Iterable[int] = (), multiply: bool = True, params: Any = None, force: bool = False,
           rng: Any = None) -> KeyPair:
    """Owner: make a key pair and write ``public.henn`` and ``secret.henn`` into ``out_dir``.

    Args:
        scheme_name: a registered scheme.
        out_dir: the key directory (created ``0o700`` if missing).
        sizes, rotations, multiply: the :class:`KeyRequirements` of the computation.
        params: a parameter object, or ``None`` for the scheme's defaults.
        force: replace an existing secret key (models under it become undecryptable).
        rng: randomness for tests; default the OS CSPRNG.

    Returns:
        The key pair.

    Raises:
        FileExistsError: ``out_dir`` already holds a secret key and ``force`` is false.
    """
    _refuse_secret_if_public_only("generate keys")
    out = Path(out_dir)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret_path = out / SECRET_FILE
    if secret_path.exists() and not force:
        raise FileExistsError(f"cannot keygen: {out} already holds a secret key; replacing it makes every model "
                              "encrypted under it undecryptable (use --force / force=True to do it anyway)")
    scheme = he_core.get_scheme(scheme_name, params)
    pair = scheme.keygen(KeyRequirements(tuple(sizes), tuple(rotations), multiply), rng=rng)
    ser.save(pair.secret, secret_path)
    ser.save(pair.public, out / PUBLIC_FILE)
    return pair


def _public_path(keys: str | os.PathLike) -> Path:
    path = Path(keys)
    if path.is_dir():
        return path / PUBLIC_FILE
    if path.name == SECRET_FILE:
        raise KeyMissingError(f"cannot load public keys from {path}: that is a secret key file; "
                              f"pass the key directory or its {PUBLIC_FILE}")
    return path


def load_public(keys: str | os.PathLike) -> tuple[Scheme, PublicKeys]:
    """Anyone: the scheme and public keys of a key directory (or a ``public.henn`` file).

    Never opens the secret key file.

    Returns:
        ``(scheme, public)``, the scheme built from the stored parameters with the
        public keys installed.

    Raises:
        FormatError: the file is not valid public key material.
        FileNotFoundError: no public key file there.
    """
    path = _public_path(keys)
    public = ser.load(path, expect_kind="public_keys")
    return scheme_for(public), public


def load_secret(keys_dir: str | os.PathLike) -> SecretKey:
    """Owner: the secret key of a key directory.

    Raises:
        KeyMissingError: inside :func:`public_only`, or the directory has no secret key.
        FormatError: the file is not a valid secret key.
    """
    _refuse_secret_if_public_only("load a secret key")
    path = Path(keys_dir)
    path = path / SECRET_FILE if path.is_dir() else path
    if not path.exists():
        raise KeyMissingError(f"cannot load the secret key: {path} does not exist (only the owner's key "
                              "directory holds one)")
    return ser.load(path, expect_kind="secret_key")


def load_owner(keys_dir: str | os.PathLike) -> tuple[Scheme, PublicKeys, SecretKey]:
    """Owner: scheme, public keys and secret key of one key directory, checked to belong together."""
    scheme, public = load_public(keys_dir)
    secret = load_secret(keys_dir)
    if (secret.scheme, secret.params_id, secret.key_id) != (public.scheme, public.params_id, public.key_id):
        raise MismatchError(f"cannot use key directory {keys_dir}: its secret key ({secret.key_id}) and public "
                            f"keys ({public.key_id}) are not one pair")
    return scheme, public, secret


def scheme_for(public: PublicKeys) -> Scheme:
    """A scheme object for the parameters of ``public`` (loaded from a file), with the keys installed."""
    scheme = he_core.get_scheme(public.scheme, ser.params_for(public.params_id))
    scheme.set_public_keys(public)
    return scheme


# ---------------------------------------------------------------------------- plaintext models
@dataclasses.dataclass
class PlainModel:
    """Named float64 weight arrays and JSON metadata: the owner's model in the clear."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


def write_plain_model(path: str | os.PathLike, model: PlainModel) -> Path:
    """Write a plaintext model as ``.npz`` (weights plus a ``__meta__`` JSON entry), owner-only.

    The file holds the model in the clear, so it is created ``0o600`` like a secret key.
    """
    arrays = {name: _weight(name, a) for name, a in model.arrays.items()}
    meta = np.frombuffer(json.dumps(model.meta).encode("utf-8"), dtype=np.uint8)
    path = Path(path)
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


# ---------------------------------------------------------------------------- encrypted models
def _as_rows(name: str, array: np.ndarray) -> np.ndarray:
    """The ``(rows, size)`` view a ciphertext stores: last axis = vector, the rest = rows."""
    if array.size == 0:
        raise ValueError(f"cannot encrypt weight {name!r}: it is empty (shape {array.shape})")
    if array.ndim == 0:
        return array.reshape(1, 1)
    return array.reshape(-1, array.shape[-1])


def required_sizes(model: PlainModel) -> list[int]:
    """Vector lengths the model's ciphertexts will have (pass them to keygen ``sizes``)."""
    return sorted({_as_rows(name, a).shape[1] for name, a in model.arrays.items()})


def encrypt_model(model: PlainModel, scheme: Scheme, *, secret: SecretKey | None = None) -> ser.Bundle:
    """Owner: encrypt every weight; the result carries the public keys it is under.

    Uses public-key encryption when ``secret`` is ``None`` (the scheme must support it).
    Weights the model's metadata lists under ``"tables"`` (gathered and scattered by row,
    like an embedding) are encrypted with the scheme's ``layout="table"``.

    Raises:
        KeyMissingError: the public keys do not cover a weight's vector length.
        CapabilityError: no public-key encryption and no secret key given.
    """
    public = scheme.public_keys
    missing = sorted(set(required_sizes(model)) - set(public.requirements.sizes))
    if missing:
        raise KeyMissingError(f"cannot encrypt the model: the keys were made for vector sizes "
                              f"{list(public.requirements.sizes)}, the model also needs {missing}; "
                              "regenerate them with those sizes (henn keygen --sizes ... or --model ...)")
    if secret is None:
        scheme.require(Capability.PUBLIC_KEY_ENCRYPT, "encrypt with the owner's secret key instead")
    tables = set(model.meta.get("tables", ())) if isinstance(model.meta.get("tables", ()), list) else set()
    cts = {name: scheme.encrypt(_as_rows(name, a), secret, layout="table" if name in tables else None)
           for name, a in model.arrays.items()}
    meta = {"format": MODEL_FORMAT, "shapes": {name: list(a.shape) for name, a in model.arrays.items()},
            "model": model.meta, "key_history": [public.key_id]}
    return ser.Bundle(cts, meta, public)


@dataclasses.dataclass
class EncryptedModel:
    """An encrypted model as a party receives it: a ready scheme and the bundle."""

    scheme: Scheme
    bundle: ser.Bundle

    @property
    def key_id(self) -> str:
        return self.bundle.public.key_id

    @property
    def tensors(self) -> dict[str, he_core.Ciphertext]:
        """Name -> ciphertext, in ``(rows, size)`` layout (see ``shape_of`` for the original shape)."""
        return dict(self.bundle.ciphertexts)

    def shape_of(self, name: str) -> tuple[int, ...]:
        """The plaintext shape the tensor ``name`` had before encryption (its ``(rows, size)`` if unrecorded)."""
        shapes = self.bundle.meta.get("shapes") if self.bundle.meta.get("format") == MODEL_FORMAT else None
        return tuple(shapes[name]) if shapes else tuple(self.bundle.ciphertexts[name].shape)

    def with_tensors(self, tensors: dict[str, he_core.Ciphertext], **meta: Any) -> "EncryptedModel":
        """The same model with new values of its tensors (after training), metadata updated with ``meta``.

        Raises:
            ValueError: the names differ from the model's.
            MismatchError: a tensor changed shape, or is under another key or parameter set.
        """
        reserved = set(meta) & {"format", "shapes", "key_history"}
        if reserved:
            raise ValueError(f"cannot update the model: metadata keys {sorted(reserved)} are managed by henn")
        if set(tensors) != set(self.bundle.ciphertexts):
            raise ValueError(f"cannot update the model: tensor names {sorted(tensors)} differ from "
                             f"{sorted(self.bundle.ciphertexts)}")
        for name, ct in tensors.items():
            old = self.bundle.ciphertexts[name]
            if (ct.shape, ct.key_id, ct.params_id) != (old.shape, old.key_id, old.params_id):
                raise MismatchError(f"cannot update the model: tensor {name!r} is now {ct.describe()}, "
                                    f"it was {old.describe()}")
        return EncryptedModel(self.scheme, ser.Bundle(dict(tensors), {**self.bundle.meta, **meta},
                                                      self.bundle.public))


def load_encrypted_model(path: str | os.PathLike) -> EncryptedModel:
    """Anyone: an encrypted model and a scheme able to compute on it (public material only).

    Accepts the files of :func:`encrypt_model` and any other bundle that carries its
    public keys (such as ``model.henn`` of :func:`henn.io.save_model`; a directory is
    taken to hold one). Without a shape table, each tensor's shape is its ``(rows, size)``.

    Raises:
        FormatError: not a bundle, no attached public keys, or a shape table that does
            not match the tensors.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    bundle = ser.load(path, expect_kind="bundle")
    if bundle.public is None:
        raise FormatError(f"cannot load {path}: a bundle, but not an encrypted henn model with its public keys")
    if bundle.meta.get("format") == MODEL_FORMAT:
        _check_shapes(bundle, path)
    return EncryptedModel(scheme_for(bundle.public), bundle)


def _check_shapes(bundle: ser.Bundle, path: Any) -> None:
    """Each recorded plaintext shape must flatten to its ciphertext's ``(rows, size)``."""
    shapes = bundle.meta.get("shapes")
    if not isinstance(shapes, dict) or set(shapes) != set(bundle.ciphertexts):
        raise FormatError(f"cannot load {path}: the model's shape table does not match its tensors")
    for name, shape in shapes.items():
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise FormatError(f"cannot load {path}: tensor {name!r} has a bad shape {shape!r}")
        flat = (1, 1) if not shape else (math.prod(shape[:-1]), shape[-1])
        if flat != tuple(bundle.ciphertexts[name].shape):
            raise FormatError(f"cannot load {path}: tensor {name!r} is recorded as {shape} but its ciphertext "
                              f"holds {bundle.ciphertexts[name].shape}")


def save_encrypted_model(path: str | os.PathLike, model: EncryptedModel | ser.Bundle) -> Path:
    """Write an encrypted model (no secret material in it, so a normal public file)."""
    bundle = model.bundle if isinstance(model, EncryptedModel) else model
    if bundle.public is None:
        raise ValueError("cannot save an encrypted model without the public keys it is under")
    return ser.save(bundle, path)


def _check_model_key(bundle: ser.Bundle, key: SecretKey, keys_dir: Any, op: str) -> None:
    """Refuse before any arithmetic when the model is not under the given key."""
    if bundle.key_ids != [key.key_id] or bundle.public.scheme != key.scheme:
        raise MismatchError(f"cannot {op}: the model is under key {', '.join(bundle.key_ids)} "
                            f"({bundle.public.scheme}), the key directory {keys_dir} holds key {key.key_id} "
                            f"({key.scheme})")


def decrypt_model(model: EncryptedModel, secret: SecretKey, keys_dir: Any = "given") -> PlainModel:
    """Owner: decrypt every tensor back to its original shape.

    Raises:
        MismatchError: the model is under another key (checked first, by key id).
    """
    _check_model_key(model.bundle, secret, keys_dir, "decrypt the model")
    arrays = {}
    for name, ct in model.bundle.ciphertexts.items():
        arrays[name] = model.scheme.decrypt(ct, secret).reshape(model.shape_of(name))
    ours = model.bundle.meta.get("format") == MODEL_FORMAT
    return PlainModel(arrays, dict(model.bundle.meta.get("model", {}) if ours else model.bundle.meta))


def make_switch_key(from_dir: Any, to_dir: Any, *, rng: Any = None) -> he_core.SwitchKey:
    """Owner: public material that moves ciphertexts from the key of ``from_dir`` to that of ``to_dir``."""
    scheme, _, old = load_owner(from_dir)
    _, _, new = load_owner(to_dir)
    scheme.require(Capability.REKEY, "this scheme cannot move ciphertexts to another key without decrypting")
    return scheme.make_switch_key(old, new, rng=rng)


def rekey_model(model: EncryptedModel, switch_key: he_core.SwitchKey, new_public: PublicKeys) -> EncryptedModel:
    """Anyone holding the switch key: move every tensor to the new key without decrypting.

    Raises:
        MismatchError: the switch key does not start at the model's key, or ``new_public``
            is not the switch key's target.
        CapabilityError: the scheme cannot switch keys.
    """
    model.scheme.require(Capability.REKEY, "this scheme cannot move ciphertexts to another key without decrypting")
    if model.bundle.key_ids != [switch_key.from_key_id]:
        raise MismatchError(f"cannot rekey the model: it is under key {', '.join(model.bundle.key_ids)}, "
                            f"the switch key starts from key {switch_key.from_key_id}")
    if new_public.key_id != switch_key.to_key_id or new_public.params_id != switch_key.params_id:
        raise MismatchError(f"cannot rekey the model: the switch key leads to key {switch_key.to_key_id}, "
                            f"the public keys given are for key {new_public.key_id}")
    cts = {name: model.scheme.rekey(ct, switch_key) for name, ct in model.bundle.ciphertexts.items()}
    meta = dict(model.bundle.meta)
    if meta.get("format") == MODEL_FORMAT:  # other bundles' metadata is theirs: leave it as it is
        meta["key_history"] = list(meta.get("key_history", [])) + [new_public.key_id]
    return EncryptedModel(scheme_for(new_public), ser.Bundle(cts, meta, new_public))


# Loaders that take a path and may see hostile bytes (fuzzed by fuzz/run_loaders.py).
FILE_LOADERS = ("load_encrypted_model", "read_plain_model", "load_public")
