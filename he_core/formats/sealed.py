"""Secret keys at rest: sealed under a passphrase with scrypt and AES-256-GCM (``cryptography``).

A file mode (``0o600``) protects a secret key only from other users of a running
system; a copied disk, a backup or a stolen laptop reads it in the clear. Sealing
encrypts the serialised key under a key derived from the owner's passphrase:

* **KDF:** scrypt with a 16-byte random salt, ``n = 2**15``, ``r = 8``, ``p = 1``. That
  is 32 MiB and about 0.1 s per derivation: nothing for an owner who opens the key once
  per command, but every passphrase guess costs an attacker the same memory, which is
  what blunts GPU and ASIC guessing (scrypt is memory-hard). ``n`` is one step above the
  ``2**14`` RFC 7914 suggests for interactive logins because a key file is opened far
  more rarely than a login; ``r = 8`` is the standard block size; ``p = 1`` because
  parallel lanes help the attacker's hardware as much as the owner's.
* **Cipher:** AES-256-GCM with a 12-byte random nonce (a fresh salt also makes a fresh
  key per sealing, so a nonce is never reused under one key).
* **Associated data:** the file's clear outer header (kind, scheme, parameters, key id,
  KDF parameters, nonce), canonically encoded. Changing any of it, say a lower ``n`` or
  another key id, makes decryption fail exactly like a wrong passphrase.

Wrong passphrase and damaged file cannot be told apart (GCM only says "not
authentic"), so both raise :class:`FormatError` "wrong passphrase or damaged file".

Also here: reading a passphrase from a file (:func:`read_passphrase_file`) and
destroying a key file (:func:`destroy_file`).
"""
from __future__ import annotations

import json
import os
import stat
import warnings
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import FormatError, SecurityWarning
from .signing import check_passphrase

KDF = "scrypt"
CIPHER = "aes-256-gcm"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
# Accepted on load: the default and two stronger settings. Anything larger would let a
# file make its reader spend gigabytes; anything smaller would be a quietly weakened seal.
ACCEPTED_N = (2**15, 2**16, 2**17)
SALT_BYTES, NONCE_BYTES, KEY_BYTES = 16, 12, 32
AAD_DOMAIN = b"henn-sealed-secret-key-v1\0"
FIELDS = ("kdf", "n", "r", "p", "salt", "cipher", "nonce")
MAX_PASSPHRASE = 1024


def new_params() -> dict[str, Any]:
    """Fresh sealing parameters for one file: the KDF settings, a new salt and a new nonce."""
    return {"kdf": KDF, "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": os.urandom(SALT_BYTES).hex(),
            "cipher": CIPHER, "nonce": os.urandom(NONCE_BYTES).hex()}


def check_params(params: Any) -> dict[str, Any]:
    """Validate sealing parameters read from a (possibly hostile) file.

    Raises:
        FormatError: unknown KDF or cipher, cost parameters outside the accepted set,
            malformed salt or nonce, unknown fields.
    """
    if not isinstance(params, dict) or sorted(params) != sorted(FIELDS):
        raise FormatError(f"cannot load: malformed sealing parameters (expected the fields {', '.join(FIELDS)})")
    if params["kdf"] != KDF or params["cipher"] != CIPHER:
        raise FormatError(f"cannot load: the key is sealed with {params['kdf']!r} / {params['cipher']!r}; "
                          f"this build reads {KDF} / {CIPHER}")
    if params["n"] not in ACCEPTED_N or type(params["n"]) is not int or params["r"] != SCRYPT_R \
            or params["p"] != SCRYPT_P or type(params["r"]) is not int or type(params["p"]) is not int:
        raise FormatError(f"cannot load: unsupported scrypt parameters n={params['n']!r}, r={params['r']!r}, "
                          f"p={params['p']!r}")
    _hex(params["salt"], SALT_BYTES, "salt")
    _hex(params["nonce"], NONCE_BYTES, "nonce")
    return params


def _hex(value: Any, size: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise FormatError(f"cannot load: the sealing {what} must be {size} bytes in hex")
    return raw


def associated_data(outer_header: dict[str, Any]) -> bytes:
    """The bytes GCM authenticates besides the ciphertext: the clear header, canonically.

    Sorted keys and fixed separators, so the writer (before packing) and the reader (after
    parsing the JSON) compute the same bytes from the same fields.
    """
    canon = json.dumps(outer_header, sort_keys=True, separators=(",", ":"))
    return AAD_DOMAIN + canon.encode("utf-8")


def _key(passphrase: bytes, params: dict[str, Any]) -> bytes:
    kdf = Scrypt(salt=_hex(params["salt"], SALT_BYTES, "salt"), length=KEY_BYTES, n=params["n"],
                 r=params["r"], p=params["p"])
    return kdf.derive(check_passphrase(passphrase))


def seal(plaintext: bytes, passphrase: bytes, params: dict[str, Any], aad: bytes) -> bytes:
    """Encrypt ``plaintext`` (a serialised secret key) under ``passphrase``.

    Args:
        plaintext: what to protect.
        passphrase: non-empty bytes.
        params: from :func:`new_params` (written into the clear header).
        aad: :func:`associated_data` of the clear header that will hold ``params``.

    Returns:
        The AES-256-GCM ciphertext with its 16-byte tag.

    Raises:
        TypeError, ValueError: the passphrase is not non-empty bytes.
    """
    nonce = _hex(params["nonce"], NONCE_BYTES, "nonce")
    return AESGCM(_key(passphrase, params)).encrypt(nonce, bytes(plaintext), aad)


def unseal(ciphertext: bytes, passphrase: bytes, params: dict[str, Any], aad: bytes) -> bytes:
    """Decrypt what :func:`seal` wrote.

    Raises:
        FormatError: wrong passphrase, or the ciphertext or the clear header changed.
        TypeError, ValueError: the passphrase is not non-empty bytes.
    """
    params = check_params(params)
    nonce = _hex(params["nonce"], NONCE_BYTES, "nonce")
    try:
        return AESGCM(_key(passphrase, params)).decrypt(nonce, bytes(ciphertext), aad)
    except InvalidTag:
        raise FormatError("cannot load the secret key: wrong passphrase or damaged file") from None


# ---------------------------------------------------------------------------- files
def read_passphrase_file(path: str | os.PathLike) -> bytes:
    """A passphrase: the first line of a file, without its line ending (``\\n`` or ``\\r\\n``).

    Warns (:class:`SecurityWarning`) when group or others can read the file.

    Raises:
        ValueError: the first line is empty or longer than ``MAX_PASSPHRASE`` bytes.
        OSError: the file cannot be read.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        line = handle.readline(MAX_PASSPHRASE + 2)
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        warnings.warn(f"passphrase file {path} is readable by other users (mode {stat.filemode(mode)}); chmod 600 it",
                      SecurityWarning, stacklevel=2)
    line = line[:-1] if line.endswith(b"\n") else line
    line = line[:-1] if line.endswith(b"\r") else line
    if not line:
        raise ValueError(f"cannot use passphrase file {path}: its first line is empty")
    if len(line) > MAX_PASSPHRASE:
        raise ValueError(f"cannot use passphrase file {path}: its first line is longer than {MAX_PASSPHRASE} bytes")
    return line


def destroy_file(path: str | os.PathLike) -> Path:
    """Overwrite a regular file in place with random bytes, ``fsync`` it, unlink it, ``fsync`` its directory.

    Every hard link to the file sees the random bytes afterwards. This is best effort:
    on SSDs (wear levelling keeps old blocks), journaling filesystems (the journal may
    hold old data), copy-on-write filesystems and snapshots (btrfs, ZFS, APFS write the
    new bytes elsewhere) and in backups the original bytes may survive. Sealing the key
    under a passphrase is the real protection.

    Returns:
        The path removed.

    Raises:
        FileNotFoundError: no such file.
        OSError: a symlink or not a regular file (refused, nothing changed), or a write error.
    """
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"cannot destroy {path}: not a regular file")
        done = 0
        while done < info.st_size:
            done += os.pwrite(fd, os.urandom(min(info.st_size - done, 1 << 20)), done)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.unlink(path)
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    # Makes the unlink durable. Platforms that cannot open a directory have nothing more to flush.
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
