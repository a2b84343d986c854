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

The owner also has a signing identity (:func:`owner_init`: an Ed25519 key pair in an
owner directory, ``signing.key`` and ``owner.pub``). Files it signs (``signer=``) can be
checked by anyone holding ``owner.pub`` (``owner_key=``), so a trainer can tell the
owner's keys and models from substituted ones.

On disk a key directory holds ``public.henn`` (scheme, parameters, public and
evaluation keys: safe to share) and ``secret.henn`` (owner-only, mode ``0o600``,
optionally sealed under a passphrase; :func:`destroy_secret` overwrites and removes
it). A plaintext model is an ``.npz`` of named weight arrays plus a ``__meta__`` entry
with UTF-8 JSON metadata (see :func:`write_plain_model`). An encrypted model is a
:class:`he_core.serialization.Bundle`. Files whose parameters give less than 128-bit
security (``vhe``, ``plain``, toy CKKS rings) load only with ``allow_insecure=True``.

Only the ``he_core`` interface and registry are used: any registered scheme works.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import stat
import struct
import threading
import tokenize
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

import he_core
from he_core import (
    Capability,
    KeyMissingError,
    KeyPair,
    KeyRequirements,
    MismatchError,
    PublicKeys,
    Scheme,
    SecretKey,
)
from he_core import serialization as ser
from he_core.errors import FormatError
from he_core.formats import sealed, signing
from he_core.formats.signing import SigningKey, VerifyKey

PUBLIC_FILE = "public.henn"
MODEL_FILE = "model.henn"  # the file name inside a model directory (as henn.io writes it)
SECRET_FILE = "secret.henn"
SIGNING_KEY_FILE = "signing.key"
OWNER_PUB_FILE = "owner.pub"
read_passphrase = sealed.read_passphrase_file  # the owner commands' --passphrase-file
META_ENTRY = "__meta__"
MODEL_FORMAT = "henn-model-1"
MAX_PLAIN_MODEL_BYTES = 1 << 34  # 16 GiB of weights: far above any model here, far below a zip bomb

_guard = threading.local()
#: Levels a key directory's parameters provide when nothing asks for more (a model's
#: ``depth`` metadata does): enough to compute a little, and a scale whose flooded
#: releases keep 16 bits.
DEFAULT_DEPTH = 2


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


# ---------------------------------------------------------------------------- owner identity
def owner_init(out_dir: str | os.PathLike, passphrase: bytes | None = None) -> VerifyKey:
    """Owner: make a signing identity: ``signing.key`` (0o600) and ``owner.pub`` in ``out_dir`` (0o700).

    Args:
        out_dir: the owner directory; created ``0o700`` if missing.
        passphrase: encrypt the private key under it (PKCS#8 ``BestAvailableEncryption``).

    Returns:
        The public key; give ``owner.pub`` (or its fingerprint) to every trainer.

    Raises:
        FileExistsError: the directory already holds an identity (never replaced).
        PermissionError: an existing directory that group or others can access.
        KeyMissingError: inside :func:`public_only`.
    """
    _refuse_secret_if_public_only("create an owner identity")
    out = Path(out_dir)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(out.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(f"cannot create the owner identity: {out} is accessible to other users (mode "
                              f"{mode:o}); use a new directory or chmod 700 it")
    for name in (SIGNING_KEY_FILE, OWNER_PUB_FILE):
        if (out / name).exists():
            raise FileExistsError(f"cannot create the owner identity: {out / name} exists (replacing an identity "
                                  "makes every file signed with it unverifiable)")
    key = SigningKey.generate()
    signing.save_signing_key(key, out / SIGNING_KEY_FILE, passphrase)
    signing.save_verify_key(key.verify_key, out / OWNER_PUB_FILE)
    return key.verify_key


def load_signer(owner_dir: str | os.PathLike, passphrase: bytes | None = None) -> SigningKey:
    """Owner: the signing key of an owner directory (or a ``signing.key`` file).

    Raises:
        KeyMissingError: inside :func:`public_only`, no key there, or an encrypted key
            and no passphrase.
        FormatError: wrong passphrase or damaged file.
        MismatchError: the directory's ``owner.pub`` is not this key's public half.
    """
    _refuse_secret_if_public_only("load the owner's signing key")
    path = Path(owner_dir)
    path = path / SIGNING_KEY_FILE if path.is_dir() else path
    if not path.exists():
        raise KeyMissingError(f"cannot load the owner's signing key: {path} does not exist "
                              "(make one with henn owner init --out DIR)")
    key = signing.load_signing_key(path, passphrase)
    published = path.with_name(OWNER_PUB_FILE)
    if published.exists():
        public = signing.load_verify_key(published)
        if public != key.verify_key:
            raise MismatchError(f"cannot use owner directory {path.parent}: {OWNER_PUB_FILE} is key "
                                f"{public.fingerprint}, {SIGNING_KEY_FILE} is key {key.fingerprint}")
    return key


def load_owner_key(path: str | os.PathLike) -> VerifyKey:
    """Anyone: the owner's public key, from ``owner.pub`` or the directory holding it.

    Raises:
        FormatError: not an Ed25519 public key PEM.
        KeyMissingError: ``path`` is the private ``signing.key``.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    path = path / OWNER_PUB_FILE if path.is_dir() else path
    if path.name == SIGNING_KEY_FILE:
        raise KeyMissingError(f"cannot load the owner key from {path}: that is the private signing key; pass "
                              f"{OWNER_PUB_FILE} or the owner directory")
    return signing.load_verify_key(path)


# ---------------------------------------------------------------------------- key directories
def keygen(scheme_name: str, out_dir: str | os.PathLike, *, sizes: Iterable[int] = (1,),
           rotations: Iterable[int] = (), multiply: bool = True, params: Any = None, force: bool = False,
           rng: Any = None, passphrase: bytes | None = None, signer: SigningKey | None = None) -> KeyPair:
    """Owner: make a key pair and write ``public.henn`` and ``secret.henn`` into ``out_dir``.

    Args:
        scheme_name: a registered scheme.
        out_dir: the key directory (created ``0o700`` if missing).
        sizes, rotations, multiply: the :class:`KeyRequirements` of the computation.
        params: a parameter object, or ``None``: the scheme's cheapest set for
            :data:`DEFAULT_DEPTH` levels that releases models with >= 16 bits of precision
            (``Scheme.params_for_depth``; CKKS: N = 16384, 54-bit scale), or its defaults.
        force: replace an existing secret key (models under it become undecryptable).
        rng: randomness for tests; default the OS CSPRNG.
        passphrase: seal ``secret.henn`` under it (see :mod:`he_core.formats.sealed`).
        signer: the owner's signing key; ``public.henn`` is then signed.

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
    if params is None:
        params = he_core.scheme_class(scheme_name).params_for_depth(DEFAULT_DEPTH)
    scheme = he_core.get_scheme(scheme_name, params)
    pair = scheme.keygen(KeyRequirements(tuple(sizes), tuple(rotations), multiply), rng=rng)
    ser.save(pair.secret, secret_path, passphrase=passphrase)
    ser.save(pair.public, out / PUBLIC_FILE, signer=signer)
    return pair


def _public_path(keys: str | os.PathLike) -> Path:
    path = Path(keys)
    if path.is_dir():
        return path / PUBLIC_FILE
    if path.name == SECRET_FILE:
        raise KeyMissingError(f"cannot load public keys from {path}: that is a secret key file; "
                              f"pass the key directory or its {PUBLIC_FILE}")
    return path


def load_public(keys: str | os.PathLike, *, owner_key: VerifyKey | None = None,
                allow_insecure: bool = False) -> tuple[Scheme, PublicKeys]:
    """Anyone: the scheme and public keys of a key directory (or a ``public.henn`` file).

    Never opens the secret key file. The key id must be the one derived from the public
    key material (checked on load), so a key cannot pose as another.

    Args:
        keys: the key directory or its ``public.henn``.
        owner_key: require the file to be signed by the owner.
        allow_insecure: accept parameters below 128-bit security.

    Returns:
        ``(scheme, public)``, the scheme built from the stored parameters with the
        public keys installed.

    Raises:
        FormatError: the file is not valid public key material, not signed by
            ``owner_key``, or asks for insecure parameters not allowed.
        FileNotFoundError: no public key file there.
    """
    path = _public_path(keys)
    public = ser.load(path, expect_kind="public_keys", owner_key=owner_key, allow_insecure=allow_insecure)
    return scheme_for(public), public


def load_secret(keys_dir: str | os.PathLike, passphrase: bytes | None = None, *,
                allow_insecure: bool = False) -> SecretKey:
    """Owner: the secret key of a key directory (or a ``secret.henn`` file).

    Args:
        keys_dir: the key directory or its ``secret.henn``.
        passphrase: opens a sealed key.
        allow_insecure: accept parameters below 128-bit security.

    Raises:
        KeyMissingError: inside :func:`public_only`, the directory has no secret key, or
            the key is sealed and no passphrase was given.
        FormatError: the file is not a valid secret key, or the passphrase is wrong.
    """
    _refuse_secret_if_public_only("load a secret key")
    path = Path(keys_dir)
    path = path / SECRET_FILE if path.is_dir() else path
    if not path.exists():
        raise KeyMissingError(f"cannot load the secret key: {path} does not exist (only the owner's key "
                              "directory holds one)")
    return ser.load(path, expect_kind="secret_key", passphrase=passphrase, allow_insecure=allow_insecure)


def load_owner(keys_dir: str | os.PathLike, passphrase: bytes | None = None, *, owner_key: VerifyKey | None = None,
               allow_insecure: bool = False) -> tuple[Scheme, PublicKeys, SecretKey]:
    """Owner: scheme, public keys and secret key of one key directory, checked to belong together.

    The public key's id is checked against its material on load; the secret key must
    carry that same id (it is the other half of the pair).

    Raises:
        MismatchError: the secret key's id is not the public key's.
        KeyMissingError, FormatError: see :func:`load_public` and :func:`load_secret`.
    """
    scheme, public = load_public(keys_dir, owner_key=owner_key, allow_insecure=allow_insecure)
    secret = load_secret(keys_dir, passphrase, allow_insecure=allow_insecure)
    if (secret.scheme, secret.params_id, secret.key_id) != (public.scheme, public.params_id, public.key_id):
        raise MismatchError(f"cannot use key directory {keys_dir}: its secret key ({secret.key_id}) and public "
                            f"keys ({public.key_id}) are not one pair (a substituted file, or one written before "
                            "key ids were derived: henn migrate --keys DIR)")
    return scheme, public, secret


def destroy_secret(keys_dir: str | os.PathLike) -> Path:
    """Owner: overwrite the secret key file with random bytes, then remove it.

    The file is overwritten in place with as many random bytes as it holds, flushed to
    the device (``fsync``), unlinked, and the directory entry's removal is flushed too.
    Every hard link to the file sees the random bytes afterwards.

    This is best effort, and only that: on SSDs (wear levelling keeps old blocks),
    journaling filesystems (the journal may hold the old data), copy-on-write
    filesystems and snapshots (btrfs, ZFS, APFS: the overwrite goes to new blocks) and
    backups, the original bytes may survive. The real protection of a key at rest is
    to seal it under a passphrase (``keygen(..., passphrase=...)``): whatever copy of a
    sealed key survives is still useless without the passphrase.

    Returns:
        The path of the removed file.

    Raises:
        KeyMissingError: inside :func:`public_only`, or there is no secret key file.
        OSError: the file is not a regular file (e.g. a symlink) or cannot be written.
    """
    _refuse_secret_if_public_only("destroy a secret key")
    path = Path(keys_dir)
    path = path / SECRET_FILE if path.is_dir() else path
    if not path.exists() and not path.is_symlink():
        raise KeyMissingError(f"cannot destroy the secret key: {path} does not exist")
    return sealed.destroy_file(path)


def scheme_for(public: PublicKeys) -> Scheme:
    """A scheme object for the parameters of ``public`` (loaded from a file), with the keys installed."""
    scheme = he_core.get_scheme(public.scheme, public.params)
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

    def with_tensors(self, tensors: dict[str, he_core.Ciphertext], **meta: Any) -> EncryptedModel:
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


def load_encrypted_model(path: str | os.PathLike, *, owner_key: VerifyKey | None = None,
                         allow_insecure: bool = False) -> EncryptedModel:
    """Anyone: an encrypted model and a scheme able to compute on it (public material only).

    Accepts the files of :func:`encrypt_model` and any other bundle that carries its
    public keys (such as ``model.henn`` of :func:`henn.io.save_model`; a directory is
    taken to hold one). Without a shape table, each tensor's shape is its ``(rows, size)``.
    The attached public keys must carry the id derived from their material.

    Args:
        path: the model file, or a directory holding ``model.henn``.
        owner_key: require the file to be signed by the owner (a trainer receiving a model).
        allow_insecure: accept parameters below 128-bit security (``vhe`` models need it).

    Raises:
        FormatError: not a bundle, no attached public keys, a shape table that does not
            match the tensors, not signed by ``owner_key``, or insecure parameters not allowed.
    """
    path = _model_path(path)
    bundle = ser.load(path, expect_kind="bundle", owner_key=owner_key, allow_insecure=allow_insecure)
    if bundle.public is None:
        raise FormatError(f"cannot load {path}: a bundle, but not an encrypted henn model with its public keys")
    if bundle.meta.get("format") == MODEL_FORMAT:
        _check_shapes(bundle, path)
    return EncryptedModel(scheme_for(bundle.public), bundle)


def _model_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


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


def save_encrypted_model(path: str | os.PathLike, model: EncryptedModel | ser.Bundle, *,
                         signer: SigningKey | None = None) -> Path:
    """Write an encrypted model (no secret material in it, so a normal public file).

    Args:
        path: the file to write.
        model: the model, or its bundle (which must carry its public keys).
        signer: the owner's signing key; the file is then signed.
    """
    bundle = model.bundle if isinstance(model, EncryptedModel) else model
    if bundle.public is None:
        raise ValueError("cannot save an encrypted model without the public keys it is under")
    return ser.save(bundle, path, signer=signer)


def _check_model_key(bundle: ser.Bundle, key: SecretKey, keys_dir: Any, op: str) -> None:
    """Refuse before any arithmetic when the model is not under the given key."""
    if bundle.key_ids != [key.key_id] or bundle.public.scheme != key.scheme:
        raise MismatchError(f"cannot {op}: the model is under key {', '.join(bundle.key_ids)} "
                            f"({bundle.public.scheme}), the key directory {keys_dir} holds key {key.key_id} "
                            f"({key.scheme})")


def decrypt_model(model: EncryptedModel, secret: SecretKey, keys_dir: Any = "given", *,
                  flooding: he_core.Flooding | None = None) -> PlainModel:
    """Owner: release every tensor in its original shape: noise-flooded and rounded (a file that leaves).

    Args:
        model, secret: the encrypted model and its key.
        keys_dir: named in error messages.
        flooding: the flooding (default: one release under the key, lambda = 30, and at
            least 16 bits kept relative to each tensor's largest value). A job's key
            releases with the job's budget (``henn job close``).

    Raises:
        MismatchError: the model is under another key (checked first, by key id), or a
            tensor is malformed.
        he_core.PrecisionError: the flooding would leave too few bits (a larger scale is needed).
    """
    _check_model_key(model.bundle, secret, keys_dir, "decrypt the model")
    flooding = flooding or he_core.Flooding(min_precision_bits=he_core.flooding.MIN_PRECISION_BITS)
    arrays = {}
    for name, ct in model.bundle.ciphertexts.items():
        model.scheme.validate(ct)
        arrays[name] = model.scheme.decrypt(ct, secret, flooding=flooding).reshape(model.shape_of(name))
    ours = model.bundle.meta.get("format") == MODEL_FORMAT
    return PlainModel(arrays, dict(model.bundle.meta.get("model", {}) if ours else model.bundle.meta))


def make_switch_key(from_dir: Any, to_dir: Any, *, rng: Any = None, passphrase: bytes | None = None,
                    allow_insecure: bool = False) -> he_core.SwitchKey:
    """Owner: public material that moves ciphertexts from the key of ``from_dir`` to that of ``to_dir``.

    ``passphrase`` opens both secret keys if they are sealed (one owner, one passphrase).
    """
    scheme, _, old = load_owner(from_dir, passphrase, allow_insecure=allow_insecure)
    _, _, new = load_owner(to_dir, passphrase, allow_insecure=allow_insecure)
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


# ---------------------------------------------------------------------------- migration
@dataclasses.dataclass(frozen=True)
class Migration:
    """A key directory moved to the key id derived from its public key.

    Attributes:
        old_ids: the ids the directory's files carried before (empty if already derived).
        new_id: the derived id, now in ``public.henn`` and ``secret.henn``.
        public: the rewritten public keys (attached to migrated models).
    """

    old_ids: tuple[str, ...]
    new_id: str
    public: PublicKeys


def migrate_keys(keys_dir: str | os.PathLike, *, passphrase: bytes | None = None, signer: SigningKey | None = None,
                 allow_insecure: bool = False) -> Migration:
    """Owner: rewrite a key directory written before key ids were derived from the public key.

    Recomputes the id from the public material, checks the secret key is the other half
    of the pair (by id, and by a test encryption under the public key that the secret
    key must decrypt, when the scheme encrypts with public keys), then rewrites
    ``secret.henn`` (sealed if ``passphrase`` is given) and ``public.henn`` (signed if
    ``signer`` is given). Running it again, or on a directory already migrated, is safe.

    Raises:
        MismatchError: the two files are not one key pair.
        KeyMissingError, FormatError: unreadable or sealed files (see :func:`load_secret`).
    """
    _refuse_secret_if_public_only("migrate a key directory")
    keys = Path(keys_dir)
    if not keys.is_dir():
        raise FileNotFoundError(f"cannot migrate: {keys} is not a key directory")
    public = ser.load(_public_path(keys), expect_kind="public_keys", allow_insecure=allow_insecure,
                      verify_key_id=False)
    secret = load_secret(keys, passphrase, allow_insecure=allow_insecure)
    new_id = ser.derived_key_id(public)
    # The secret file may already carry the new id if an earlier run stopped half-way.
    if (secret.scheme, secret.params_id) != (public.scheme, public.params_id) or \
            secret.key_id not in (public.key_id, new_id):
        raise MismatchError(f"cannot migrate {keys}: its secret key ({secret.scheme} key {secret.key_id}) and public "
                            f"keys ({public.scheme} key {public.key_id}) are not one pair")
    old = tuple(sorted({public.key_id, secret.key_id} - {new_id}))
    public = dataclasses.replace(public, key_id=new_id)
    secret = dataclasses.replace(secret, key_id=new_id)
    _check_pair(public, secret, keys)
    ser.save(secret, keys / SECRET_FILE, passphrase=passphrase)
    ser.save(public, keys / PUBLIC_FILE, signer=signer)
    return Migration(old, new_id, public)


def _check_pair(public: PublicKeys, secret: SecretKey, where: Any) -> None:
    """A test encryption under the public key must decrypt under the secret key.

    Migration re-binds ids to material, so it must not bind the owner's secret key to a
    public key someone slipped into the directory (models encrypted under it would be
    readable by them). Schemes without public-key encryption are checked by id only.
    """
    scheme = scheme_for(public)
    if not scheme.supports(Capability.PUBLIC_KEY_ENCRYPT):
        return
    # One probe per vector size: a scheme may keep one secret per size (vhe does). The
    # exact local decryption is right here: its result is compared, never released.
    for size in public.requirements.sizes:
        probe = np.resize(np.array([0.75, -0.5, 0.25, -1.0]), size).reshape(1, -1)
        ct = scheme.encrypt(probe)
        try:
            if np.allclose(scheme.decrypt_exact_local(ct, secret), probe, rtol=0, atol=0.1):
                continue
        except he_core.HEError:  # a wrong key may decrypt to something no valid encoding is (CKKS says so)
            pass
        raise MismatchError(f"cannot migrate {where}: its public key is not the public half of its secret key "
                            "(a test encryption does not decrypt): a substituted public.henn")


def migrate_model(path: str | os.PathLike, migration: Migration, *, signer: SigningKey | None = None,
                  allow_insecure: bool = False) -> Path:
    """Owner: move an encrypted model file to the derived key id of a migrated key directory.

    The model's attached public keys must be the directory's (same material, whatever id
    they carry). Every ciphertext's key id, the attached public keys and the
    ``key_history`` entries of the old id are rewritten; the file is replaced (signed
    if ``signer`` is given).

    Returns:
        The path written.

    Raises:
        FormatError: not an encrypted model with its public keys.
        MismatchError: the model is under another key.
    """
    path = _model_path(path)
    bundle = ser.load(path, expect_kind="bundle", allow_insecure=allow_insecure, verify_key_id=False)
    if bundle.public is None:
        raise FormatError(f"cannot migrate {path}: it carries no public keys, so its key cannot be identified")
    if ser.derived_key_id(bundle.public) != migration.new_id or bundle.public.params_id != migration.public.params_id:
        raise MismatchError(f"cannot migrate {path}: it is under key {', '.join(bundle.key_ids)}, whose public key "
                            f"is not the key directory's (key {migration.new_id})")
    old = bundle.public.key_id
    cts = {name: ct.replace(key_id=migration.new_id) for name, ct in bundle.ciphertexts.items()}
    meta = dict(bundle.meta)
    if isinstance(meta.get("key_history"), list):
        meta["key_history"] = [migration.new_id if entry == old else entry for entry in meta["key_history"]]
    return ser.save(ser.Bundle(cts, meta, migration.public), path, signer=signer)


# Loaders that take a path and may see hostile bytes (fuzzed by fuzz/run_loaders.py).
FILE_LOADERS = ("load_encrypted_model", "read_plain_model", "load_public")
