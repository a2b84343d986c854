"""The owner's signing identity: Ed25519 keys (from ``cryptography``) that sign henn files.

A file's SHA-256 digest tells corruption from a good file, but anyone can recompute
it. An owner therefore makes one Ed25519 key pair (``henn owner init``), keeps the
private half (``signing.key``) and gives the public half (``owner.pub``) to every
trainer. Files the owner writes carry a signature over all their bytes (layout in
:mod:`.container`), so a trainer holding ``owner.pub`` can tell the owner's keys and
models from substituted ones, and the owner can tell its own files from edited ones.

Keys are named by a **fingerprint**: the first 32 hex characters (128 bits) of the
SHA-256 of the raw 32-byte public key. Files store it as 16 raw bytes.

On disk: the private key is PKCS#8 PEM, optionally encrypted under a passphrase
(``BestAvailableEncryption``), created ``0o600`` with ``O_EXCL`` (never over an
existing identity); the public key is SubjectPublicKeyInfo PEM.
"""
from __future__ import annotations

import hashlib
import os
import stat
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Union

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization as pem
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ..errors import FormatError, KeyMissingError, SecurityWarning

if TYPE_CHECKING:
    from .container import Envelope

FINGERPRINT_BYTES = 16
SIGNATURE_BYTES = 64
RAW_KEY_BYTES = 32
MAX_PEM_BYTES = 64 * 1024  # an Ed25519 PEM is a few hundred bytes; refuse to slurp anything huge
_ENCRYPTED_LABEL = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"

PathLike = Union[str, "os.PathLike[str]"]


def fingerprint_bytes(raw_public: bytes) -> bytes:
    """The 16-byte fingerprint of a raw 32-byte Ed25519 public key (a SHA-256 prefix)."""
    return hashlib.sha256(raw_public).digest()[:FINGERPRINT_BYTES]


class VerifyKey:
    """An owner's public key: checks signatures and names the owner by fingerprint."""

    def __init__(self, key: Ed25519PublicKey):
        if not isinstance(key, Ed25519PublicKey):
            raise TypeError(f"cannot use a {type(key).__name__} as an owner key: Ed25519 only")
        self._key = key
        self.raw = key.public_bytes(pem.Encoding.Raw, pem.PublicFormat.Raw)
        self.fingerprint_bytes = fingerprint_bytes(self.raw)
        self.fingerprint = self.fingerprint_bytes.hex()

    @classmethod
    def from_pem(cls, data: bytes, source: str = "the owner key") -> VerifyKey:
        """Parse a SubjectPublicKeyInfo PEM.

        Raises:
            FormatError: not a PEM public key, or not an Ed25519 one.
        """
        try:
            key = pem.load_pem_public_key(bytes(data))
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise FormatError(f"cannot load {source}: not a PEM public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise FormatError(f"cannot load {source}: a {type(key).__name__}, not an Ed25519 key")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._key.public_bytes(pem.Encoding.PEM, pem.PublicFormat.SubjectPublicKeyInfo)

    def verify(self, signature: bytes, message: bytes | memoryview) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            self._key.verify(bytes(signature), message)
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"VerifyKey(fingerprint={self.fingerprint!r})"


class SigningKey:
    """An owner's private Ed25519 key: signs files. Its ``repr`` never shows key material."""

    def __init__(self, key: Ed25519PrivateKey):
        if not isinstance(key, Ed25519PrivateKey):
            raise TypeError(f"cannot use a {type(key).__name__} as a signing key: Ed25519 only")
        self._key = key
        self.verify_key = VerifyKey(key.public_key())
        self.fingerprint = self.verify_key.fingerprint
        self.fingerprint_bytes = self.verify_key.fingerprint_bytes

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key from the operating system's CSPRNG (through OpenSSL)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None, source: str = "the signing key") -> SigningKey:
        """Parse a PKCS#8 PEM private key, decrypting it with ``passphrase`` if it is encrypted.

        A passphrase given for an unencrypted key is ignored with a :class:`SecurityWarning`.

        Raises:
            KeyMissingError: the key is encrypted and no passphrase was given.
            FormatError: wrong passphrase, a damaged file, or not an Ed25519 key.
        """
        data = bytes(data)
        encrypted = _ENCRYPTED_LABEL in data
        if encrypted and passphrase is None:
            raise KeyMissingError(f"cannot load {source}: it is encrypted with a passphrase; pass it "
                                  "(--passphrase-file FILE)")
        if not encrypted and passphrase is not None:
            warnings.warn(f"{source} is not encrypted, the passphrase given is not needed; anyone who can read "
                          "the file can sign as the owner", SecurityWarning, stacklevel=2)
        try:
            key = pem.load_pem_private_key(data, password=passphrase if encrypted else None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise FormatError(f"cannot load {source}: wrong passphrase or damaged file") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise FormatError(f"cannot load {source}: a {type(key).__name__}, not an Ed25519 key")
        return cls(key)

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """PKCS#8 PEM, encrypted under ``passphrase`` when one is given."""
        if passphrase is None:
            algorithm: pem.KeySerializationEncryption = pem.NoEncryption()
        else:
            algorithm = pem.BestAvailableEncryption(check_passphrase(passphrase))
        return self._key.private_bytes(pem.Encoding.PEM, pem.PrivateFormat.PKCS8, algorithm)

    def sign(self, message: bytes | memoryview) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(fingerprint={self.fingerprint!r})"


def check_passphrase(passphrase: object) -> bytes:
    """A usable passphrase: non-empty bytes.

    Raises:
        TypeError: not bytes.
        ValueError: empty.
    """
    if not isinstance(passphrase, (bytes, bytearray)):
        raise TypeError(f"a passphrase must be bytes, got {type(passphrase).__name__}")
    if not passphrase:
        raise ValueError("cannot use an empty passphrase")
    return bytes(passphrase)


# ---------------------------------------------------------------------------- files
def save_signing_key(key: SigningKey, path: PathLike, passphrase: bytes | None = None) -> Path:
    """Write a private key as PEM, owner-only (``0o600``) from the first byte.

    Raises:
        FileExistsError: ``path`` exists. An identity is never replaced silently: every
            file signed with the old key would stop verifying against the new one.
    """
    path = Path(path)
    data = key.to_pem(passphrase)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise FileExistsError(f"cannot write the signing key: {path} already exists (replacing an owner identity "
                              "makes every file signed with it unverifiable)") from None
    _write_all(fd, data)
    return path


def save_verify_key(key: VerifyKey, path: PathLike) -> Path:
    """Write a public key as PEM (``0o644`` minus the umask); never over an existing file."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    _write_all(fd, key.to_pem())
    return path


def _write_all(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def load_signing_key(path: PathLike, passphrase: bytes | None = None) -> SigningKey:
    """Read a private key written by :func:`save_signing_key`.

    Warns (:class:`SecurityWarning`) when group or others can read the file.

    Raises:
        KeyMissingError: encrypted, and no passphrase given.
        FormatError: wrong passphrase, damaged file, not an Ed25519 key.
        OSError: the file cannot be read.
    """
    path = Path(path)
    data, mode = _read_small(path)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(f"signing key file {path} is accessible to other users (mode {stat.filemode(mode)}); "
                      "chmod 600 it", SecurityWarning, stacklevel=2)
    return SigningKey.from_pem(data, passphrase, source=f"the signing key {path}")


def load_verify_key(path: PathLike) -> VerifyKey:
    """Read a public key written by :func:`save_verify_key` (``owner.pub``).

    Raises:
        FormatError: not an Ed25519 PEM public key.
        OSError: the file cannot be read.
    """
    path = Path(path)
    data, _ = _read_small(path)
    return VerifyKey.from_pem(data, source=f"the owner key {path}")


def _read_small(path: Path) -> tuple[bytes, int]:
    with open(path, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        data = handle.read(MAX_PEM_BYTES + 1)
    if len(data) > MAX_PEM_BYTES:
        raise FormatError(f"cannot load {path}: larger than any key file ({MAX_PEM_BYTES} bytes)")
    return data, mode


# ---------------------------------------------------------------------------- signed files
MIGRATE_HINT = "henn migrate --keys KEY_DIR --owner OWNER_DIR [--model FILE ...]"


def require_signature(env: Envelope, owner_key: VerifyKey) -> None:
    """Refuse a file that ``owner_key`` did not sign, naming why.

    Args:
        env: the file's checked envelope (:func:`he_core.formats.container.envelope`).
        owner_key: the key the file must be signed with.

    Raises:
        FormatError: the file is unsigned (a version-1 file says it predates signatures
            and how to sign it), signed by another key (both fingerprints named), or its
            signature does not verify (the file changed after it was signed).
    """
    if not isinstance(owner_key, VerifyKey):
        raise TypeError(f"owner_key must be a VerifyKey, got {type(owner_key).__name__}")
    if env.signer is None:
        if env.version < 2:
            raise FormatError("cannot load: the file is not signed: it was written before henn signed files "
                              f"(format version {env.version}); the owner can sign it with: {MIGRATE_HINT}")
        raise FormatError(f"cannot load: the file is not signed, and a signature by the owner key "
                          f"{owner_key.fingerprint} is required")
    if env.signer != owner_key.fingerprint_bytes:
        raise FormatError(f"cannot load: the file is signed by key {env.signer.hex()}, not by the owner key "
                          f"{owner_key.fingerprint}")
    if not owner_key.verify(env.signature, env.signed_message):
        raise FormatError(f"cannot load: bad signature: the file changed after the owner key {owner_key.fingerprint} "
                          "signed it (tampered with)")
