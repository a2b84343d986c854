"""The owner's signing identity: an Ed25519 key pair in an owner directory.

``signing.key`` (0o600, optionally encrypted under a passphrase) stays with the owner;
``owner.pub`` goes to every trainer. Files the owner signs (``signer=`` elsewhere in
:mod:`henn.lifecycle`) can be checked by anyone holding ``owner.pub`` (``owner_key=``),
so a trainer can tell the owner's keys and models from substituted ones.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from he_core import KeyMissingError, MismatchError
from he_core.formats import signing
from he_core.formats.signing import SigningKey, VerifyKey

from .roles import refuse_secret_if_public_only

SIGNING_KEY_FILE = "signing.key"
OWNER_PUB_FILE = "owner.pub"


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
    refuse_secret_if_public_only("create an owner identity")
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
    refuse_secret_if_public_only("load the owner's signing key")
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
