"""Migration: key directories and models written before key ids were derived from the public key.

An old release gave each key pair a random id; now the id is derived from the public
key material and checked on load, so a key cannot pose as another. :func:`migrate_keys`
rewrites a key directory under its derived id (after checking its two files are one
pair), and :func:`migrate_model` moves each of its models along.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

import he_core
from he_core import Capability, MismatchError, PublicKeys, SecretKey
from he_core import serialization as ser
from he_core.errors import FormatError
from he_core.formats.signing import SigningKey

from .encrypted_model import model_file_path
from .keydir import PUBLIC_FILE, SECRET_FILE, load_secret, public_key_path, scheme_for
from .roles import refuse_secret_if_public_only


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
    refuse_secret_if_public_only("migrate a key directory")
    keys = Path(keys_dir)
    if not keys.is_dir():
        raise FileNotFoundError(f"cannot migrate: {keys} is not a key directory")
    public = ser.load(public_key_path(keys), expect_kind="public_keys", allow_insecure=allow_insecure,
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
    path = model_file_path(path)
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
