"""The key service's private PKI: one CA, a server and a client certificate, written with care.

:func:`make_pki` writes one directory; its files go to two places:

===============  ===========  =====================================================
file             who holds it  what it is for
===============  ===========  =====================================================
``ca.pem``       both         the CA certificate: each side trusts only this CA
``ca.key``       owner only   signs certificates; whoever holds it can impersonate
                              the service *and* mint trainers. Keep it offline once
                              the certificates are made.
``server.pem``   owner        the service's certificate (host names and addresses)
``server.key``   owner only   the service's private key
``client.pem``   trainer      the trainer's certificate (extended key usage: client)
``client.key``   trainer only the trainer's private key
===============  ===========  =====================================================

So the trainer receives ``ca.pem``, ``client.pem`` and ``client.key`` (a directory of
its own, passed as ``tls_dir``); everything else stays with the owner. There is no
revocation list: a leaked ``client.key`` stays valid until it expires (``days``), and
revoking means making a new PKI in a new directory and handing out its files.
Private keys are written unencrypted, mode 0600, created with ``O_EXCL`` in a 0700
directory; the loaders refuse a private key that group or others may read.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from .framing import TransportError

CA_CERT, CA_KEY = "ca.pem", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"
CLIENT_CERT, CLIENT_KEY = "client.pem", "client.key"
PKI_FILES = (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY, CLIENT_CERT, CLIENT_KEY)
TRAINER_FILES = (CA_CERT, CLIENT_CERT, CLIENT_KEY)
DEFAULT_DAYS = 30  # no revocation: the validity period is what bounds a leaked trainer key


class TLSSetupError(TransportError):
    """The TLS files are missing, unreadable, malformed, or too widely readable."""


def make_pki(out_dir: str | os.PathLike, *, server_names: Iterable[str] = ("localhost", "127.0.0.1"),
             days: int = DEFAULT_DAYS, client_name: str = "henn trainer") -> Path:
    """Create a CA, a server and a client certificate (ECDSA P-256, SHA-256) in ``out_dir``.

    Args:
        out_dir: a new directory (created 0700), or an empty-of-PKI one that is
            owned by this user and not accessible to group or others.
        server_names: host names and IP addresses the trainer will connect to; each
            becomes a subject alternative name (DNS or IP).
        days: validity of all three certificates.
        client_name: common name of the trainer's certificate (shown as the peer).

    Returns:
        The directory.

    Raises:
        ValueError: no server names, a malformed name, or ``days`` < 1.
        TLSSetupError: the directory is unsafe, or would have a PKI file overwritten.
    """
    names = [str(n) for n in server_names]
    if not names or not all(names):
        raise ValueError("cannot make a PKI: give at least one non-empty server name")
    if int(days) < 1:
        raise ValueError(f"cannot make a PKI: days must be at least 1, got {days}")
    sans = [_san(n) for n in names]
    root = _pki_dir(Path(out_dir))
    ca_key, ca_cert = _make_ca(days)
    server_key, server_cert = _make_leaf(ca_key, ca_cert, "henn key service", sans, server=True, days=days)
    client_key, client_cert = _make_leaf(ca_key, ca_cert, client_name, [], server=False, days=days)
    files = {CA_CERT: _pem(ca_cert), CA_KEY: _pem(ca_key), SERVER_CERT: _pem(server_cert),
             SERVER_KEY: _pem(server_key), CLIENT_CERT: _pem(client_cert), CLIENT_KEY: _pem(client_key)}
    written: list[Path] = []
    try:
        for name, data in files.items():
            path = root / name
            _write_new(path, data, 0o600 if name.endswith(".key") else 0o644)
            written.append(path)
    except BaseException:
        for path in written:  # no half-made PKI left behind
            path.unlink(missing_ok=True)
        raise
    return root


def _pki_dir(root: Path) -> Path:
    try:
        root.mkdir(mode=0o700, parents=True)
        root.chmod(0o700)  # ours, just made: exactly 0700 whatever the umask
    except FileExistsError:
        pass
    st = os.stat(root)
    if not stat.S_ISDIR(st.st_mode):
        raise TLSSetupError(f"cannot make a PKI in {root}: it is not a directory")
    _check_private_dir(root, st)
    present = [n for n in PKI_FILES if os.path.lexists(root / n)]
    if present:
        raise TLSSetupError(f"cannot make a PKI in {root}: {', '.join(present)} already there and would be "
                            "overwritten; use a new directory")
    return root


def _check_private_dir(root: Path, st: os.stat_result) -> None:
    if st.st_uid != os.geteuid():
        raise TLSSetupError(f"cannot make a PKI in {root}: the directory belongs to uid {st.st_uid}, not to this "
                            f"user (uid {os.geteuid()}); use a directory of your own")
    if st.st_mode & 0o077:
        raise TLSSetupError(f"cannot make a PKI in {root}: its mode {stat.S_IMODE(st.st_mode):04o} lets other "
                            f"users in; run `chmod 700 {root}` or use a new directory")


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never follow or reuse something already there; the mode is set at
    # creation, so a private key is never readable by others, not even briefly.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise TLSSetupError(f"cannot make a PKI: {path} appeared while writing; use a new directory") from None
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)  # exactly this mode, whatever the umask took away
        out.write(data)


def _san(name: str):
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"cannot make a PKI: server name {name!r} is not ASCII; give its IDNA (xn--) form") from None
    if any(c in name for c in "*/: \t") or name.startswith(".") or name.endswith("."):
        raise ValueError(f"cannot make a PKI: {name!r} is neither an IP address nor a plain host name")
    return x509.DNSName(name)


def _make_ca(days: int):

    key = ec.generate_private_key(ec.SECP256R1())
    # A random suffix keeps two PKIs apart in error messages (trust comes from the key, not the name).
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"henn key service CA {secrets.token_hex(4)}")])
    builder = _base(name, name, key.public_key(), days).add_extension(
        x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(
        _key_usage(sign_certs=True), critical=True).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    return key, _sign(builder, key)


def _make_leaf(ca_key, ca_cert, common_name: str, sans: list, *, server: bool, days: int):

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    # The extended key usage keeps the roles apart: the server's certificate cannot
    # log in as a trainer, and a trainer's certificate cannot serve.
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = _base(name, ca_cert.subject, key.public_key(), days).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True).add_extension(
        _key_usage(sign_certs=False), critical=True).add_extension(
        x509.ExtendedKeyUsage([usage]), critical=False).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, _sign(builder, ca_key)


def _base(subject, issuer, public_key, days: int):

    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 - datetime.UTC is 3.11+
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate a little clock skew
            .not_valid_after(now + datetime.timedelta(days=int(days)))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def _key_usage(*, sign_certs: bool):

    return x509.KeyUsage(digital_signature=not sign_certs, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=sign_certs,
                         crl_sign=sign_certs, encipher_only=False, decipher_only=False)


def _sign(builder, key):

    return builder.sign(key, hashes.SHA256())


def _pem(obj) -> bytes:

    if hasattr(obj, "public_bytes"):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
