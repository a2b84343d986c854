"""Saving and loading ciphertexts, keys and encrypted bundles, with no pickle and no trust.

One file holds one object: a :class:`~he_core.ciphertext.Ciphertext`, a
:class:`~he_core.keys.SecretKey`, :class:`~he_core.keys.PublicKeys`,
:class:`~he_core.keys.SwitchKey`, :class:`~he_core.keys.KeyRequirements` or a
:class:`Bundle` (named ciphertexts plus JSON metadata: an encrypted model). The byte
layout is in :mod:`he_core.formats.container` and ``docs/formats.md``.

Every file records the full parameter set of its scheme (:mod:`he_core.dumping`).
Loading (:mod:`he_core.loading`) re-creates the parameters through the scheme registry
and checks they still hash to the recorded ``params_id``, so edited parameters are
refused; a set below 128-bit security loads
only when the caller asks for it (``allow_insecure=True``). Public keys (alone or
attached to a bundle) must carry the key id derived from their material, so a key
cannot be passed off under another key's id. Files may be signed by the owner's
Ed25519 key (:mod:`he_core.formats.signing`) and secret keys sealed under a passphrase
(:mod:`he_core.formats.sealed`). Every problem on load raises
:class:`~he_core.errors.FormatError` naming it.

Example::

    blob = dumps(ct, signer=owner)   # ct carries its parameter set; or dumps(ct, params=scheme)
    ct2 = loads(blob, expect_kind="ciphertext", expect_key_id=ct.key_id, owner_key=owner.verify_key)
    save(keys.secret, "owner/secret.henn", passphrase=b"...")   # written 0o600, always
"""
from __future__ import annotations

import dataclasses
import os
import secrets
import stat
import warnings
from pathlib import Path
from typing import Any, Union

from .bundle import Bundle, Serialisable
from .dumping import SEALED_ARRAY, dumps, wire_nbytes
from .errors import FormatError, SecurityWarning
from .formats import container, signing
from .formats.signing import SigningKey, VerifyKey
from .keys import SecretKey
from .loading import KINDS, MAX_ID, MIGRATE_KEYS, SECURE_BITS, _check_expectations, derived_key_id, loads

__all__ = ["Bundle", "FileInfo", "KINDS", "MAX_ID", "MIGRATE_KEYS", "SEALED_ARRAY", "SECURE_BITS", "Serialisable",
           "check_signature", "derived_key_id", "dumps", "file_info", "load", "loads", "save", "wire_nbytes"]


PathLike = Union[str, "os.PathLike[str]"]


def save(obj: Serialisable, path: PathLike, *, secret: bool = False, params: Any = None,
         signer: SigningKey | None = None, passphrase: bytes | None = None) -> Path:
    """Write one object to ``path`` atomically (a temporary file, then a rename).

    Secret keys are always written owner-only (``0o600``) from the moment the file
    exists; ``secret=True`` does the same for any other object.

    Args:
        obj: what to save (see :func:`dumps`).
        path: destination file; its directory must exist.
        secret: write owner-only even if ``obj`` is not a secret key.
        params, signer, passphrase: as for :func:`dumps` (``passphrase`` seals a secret key).

    Returns:
        The path written.
    """
    blob = dumps(obj, params=params, signer=signer, passphrase=passphrase)
    path = Path(path)
    private = secret or isinstance(obj, SecretKey)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                 0o600 if private else 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load(path: PathLike, *, expect_kind: str | None = None, expect_scheme: str | None = None,
         expect_key_id: str | None = None, owner_key: VerifyKey | None = None, allow_insecure: bool = False,
         passphrase: bytes | None = None, verify_key_id: bool = True) -> Serialisable:
    """Read one object from ``path``; see :func:`loads` for the checks and arguments.

    A secret key file readable by group or others triggers a :class:`SecurityWarning`.

    Raises:
        FormatError: see :func:`loads`; the message ends with the path.
        KeyMissingError: a sealed secret key and no passphrase.
        OSError: the file cannot be read.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        data = handle.read()
        mode = os.fstat(handle.fileno()).st_mode
    try:
        obj = loads(data, expect_kind=expect_kind, expect_scheme=expect_scheme, expect_key_id=expect_key_id,
                    owner_key=owner_key, allow_insecure=allow_insecure, passphrase=passphrase,
                    verify_key_id=verify_key_id)
    except FormatError as exc:
        raise FormatError(f"{exc} [{path}]") from None
    if isinstance(obj, SecretKey) and mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(f"secret key file {path} is accessible to other users (mode {stat.filemode(mode)}); "
                      "chmod 600 it", SecurityWarning, stacklevel=2)
    return obj


def check_signature(data: bytes, owner_key: VerifyKey) -> None:
    """Check only that ``data`` is a file signed by ``owner_key`` (nothing is parsed or built).

    Raises:
        FormatError: a bad envelope, or the signature check of :func:`loads` fails.
    """
    signing.require_signature(container.envelope(data), owner_key)


@dataclasses.dataclass(frozen=True)
class FileInfo:
    """What a file says about itself, read without building (or unsealing) the object.

    Attributes:
        version: container format version (1: written before signatures and derived ids).
        kind, scheme, params_id, key_ids: from the header (unverified beyond the digest).
        signer: fingerprint of the key that signed it, or ``None``; *not* verified here.
        sealed: a secret key sealed under a passphrase.
    """

    version: int
    kind: str
    scheme: str | None
    params_id: str | None
    key_ids: list[str]
    signer: str | None
    sealed: bool


def file_info(data: bytes) -> FileInfo:
    """Describe a file from its envelope and header (for ``henn inspect`` and migration).

    Raises:
        FormatError: the envelope or header is malformed.
    """
    env = container.envelope(data)
    header, _ = container.parse(env)
    kind = _check_expectations(header, None, None, None)
    ids = header.get("key_ids")
    key_ids = [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
    text = [header.get(k) if isinstance(header.get(k), str) else None for k in ("scheme", "params_id")]
    return FileInfo(env.version, kind, text[0], text[1], key_ids, env.signer.hex() if env.signer else None,
                    kind == "secret_key" and "sealed" in header)
