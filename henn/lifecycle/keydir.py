"""Key directories: ``public.henn`` (safe to share) and ``secret.henn`` (owner-only).

``public.henn`` holds the scheme, its parameters, and the public and evaluation keys;
``secret.henn`` is written ``0o600``, optionally sealed under a passphrase
(:mod:`he_core.formats.sealed`), and :func:`destroy_secret` overwrites and removes it.
Files whose parameters give less than 128-bit security load only with
``allow_insecure=True``.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import he_core
from he_core import (
    KeyMissingError,
    KeyPair,
    KeyRequirements,
    MismatchError,
    PublicKeys,
    Scheme,
    SecretKey,
)
from he_core import serialization as ser
from he_core.formats import sealed
from he_core.formats.signing import SigningKey, VerifyKey

from .roles import refuse_secret_if_public_only

PUBLIC_FILE = "public.henn"
SECRET_FILE = "secret.henn"
read_passphrase = sealed.read_passphrase_file  # the owner commands' --passphrase-file
#: Levels a key directory's parameters provide when nothing asks for more (a model's
#: ``depth`` metadata does): enough to compute a little, and a scale whose flooded
#: releases keep 16 bits.
DEFAULT_DEPTH = 2


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
    refuse_secret_if_public_only("generate keys")
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


def public_key_path(keys: str | os.PathLike) -> Path:
    """The ``public.henn`` of a key directory, or ``keys`` itself if it names a file.

    Raises:
        KeyMissingError: ``keys`` is the secret key file (never opened for public material).
    """
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
    path = public_key_path(keys)
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
    refuse_secret_if_public_only("load a secret key")
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
    refuse_secret_if_public_only("destroy a secret key")
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
