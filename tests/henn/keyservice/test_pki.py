"""henn.keyservice.pki: the private PKI make_pki writes (modes, roles, refusals)."""
from __future__ import annotations

import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from henn.keyservice.tls import (
    PKI_FILES,
    TLSSetupError,
    make_pki,
)


def test_make_pki_writes_private_keys_0600_in_a_0700_directory(pkis):
    a, _b = pkis
    assert stat.S_IMODE(a.stat().st_mode) == 0o700
    modes = {name: stat.S_IMODE((a / name).stat().st_mode) for name in PKI_FILES}
    assert modes == {"ca.pem": 0o644, "ca.key": 0o600, "server.pem": 0o644, "server.key": 0o600,
                     "client.pem": 0o644, "client.key": 0o600}


def test_make_pki_certificates_have_the_right_roles(pkis):
    a, _b = pkis
    ca, server, client = (x509.load_pem_x509_certificate((a / n).read_bytes())
                          for n in ("ca.pem", "server.pem", "client.pem"))
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for leaf, usage in ((server, ExtendedKeyUsageOID.SERVER_AUTH), (client, ExtendedKeyUsageOID.CLIENT_AUTH)):
        assert leaf.issuer == ca.subject
        ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]
        assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey) and leaf.public_key().curve.name == "secp256r1"
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_make_pki_never_overwrites(pkis):
    a, _b = pkis
    before = {n: (a / n).read_bytes() for n in PKI_FILES}
    with pytest.raises(TLSSetupError, match="already there and would be overwritten"):
        make_pki(a)
    assert {n: (a / n).read_bytes() for n in PKI_FILES} == before


def test_make_pki_refuses_a_directory_others_can_enter(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(TLSSetupError, match="chmod 700"):
        make_pki(shared)
    assert list(shared.iterdir()) == []


@pytest.mark.parametrize("names, message", [((), "at least one"), (("*.example",), "neither"),
                                            (("bücher.example",), "IDNA")])
def test_make_pki_refuses_bad_server_names(tmp_path, names, message):
    with pytest.raises(ValueError, match=message):
        make_pki(tmp_path / "p", server_names=names)
    assert not (tmp_path / "p").exists()
