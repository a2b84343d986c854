"""The owner's key service and the trainer's remote key holder (henn.keyservice), in one process.

The service runs in a thread on a Unix socket; the multi-process workflow through
``henn serve-keys`` is tested in ``test_lifecycle_sentiment.py``.
"""
from __future__ import annotations

import contextlib
import socket
import struct
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

import he_core
from he_core import serialization as ser
from henn.keyservice import (BYE, ERROR, HELLO, MAGIC, OK, REENCRYPT, KeyService, KeyServiceError, RemoteKeyHolder,
                             parse_address, recv_frame, send_frame)


@contextlib.contextmanager
def serving(service: KeyService, address: str):
    """The service answering on ``address`` in a thread while the block runs."""
    ready = threading.Event()
    thread = threading.Thread(target=service.serve, args=(address,), kwargs={"ready": lambda _: ready.set()},
                              daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield
    finally:
        service.stop()
        thread.join(10)


@pytest.fixture(params=["plain", "vhe"])
def served(request):
    """(scheme, secret, service, socket path) with the service running in a thread."""
    scheme = he_core.get_scheme(request.param)
    secret, _public = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(1))
    service = KeyService(scheme, secret, max_bytes=1 << 20)
    sock = Path(tempfile.mkdtemp(prefix="hks")) / "k.sock"
    with serving(service, str(sock)):
        yield scheme, secret, service, sock
    assert not sock.exists()


def test_remote_refresh_keeps_values_and_is_counted(served):
    scheme, secret, service, sock = served
    values = np.array([[0.5, -1.25, 0.0], [3.0, -0.0625, 7.5]])
    ct = scheme.encrypt(values)
    with RemoteKeyHolder(str(sock), scheme, secret.key_id, mask_bound=4.0) as remote:
        fresh = remote.refresh(ct)
        again = remote.refresh(fresh)
        assert remote.refresh_rounds == 2 and remote.bytes_exchanged > 2 * ct.nbytes
    for out in (fresh, again):
        np.testing.assert_array_equal(scheme.decrypt(out, secret), values)  # exact: values on the grid
    assert service.keyholder.refresh_rounds == 2 and service.keyholder.decrypt_calls == 0


def test_remote_key_holder_cannot_decrypt(served):
    scheme, secret, _service, sock = served
    with RemoteKeyHolder(str(sock), scheme, secret.key_id) as remote:
        assert not hasattr(remote, "decrypt")


def test_service_refuses_a_ciphertext_under_another_key_and_stays_usable(served):
    scheme, secret, service, sock = served
    other_scheme = he_core.get_scheme(scheme.name)
    other_secret, _ = other_scheme.keygen(he_core.KeyRequirements(sizes=(1,)))
    foreign = other_scheme.encrypt(np.array([[1.0]]))
    with RemoteKeyHolder(str(sock), scheme, secret.key_id) as remote:
        with pytest.raises(KeyServiceError, match="wrong key"):
            remote.reencrypt(foreign)
        np.testing.assert_array_equal(scheme.decrypt(remote.refresh(scheme.encrypt(np.array([[2.0]]))), secret), [[2]])
    assert service.errors == 1


def test_service_answers_garbage_with_an_error_frame(served):
    _scheme, _secret, service, sock = served
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(sock))
        send_frame(conn, REENCRYPT, b"\x00\x00\x00\x04null" + b"not a henn ciphertext")
        op, body = recv_frame(conn, 1 << 20)
        assert op == ERROR and b"FormatError" in body
        send_frame(conn, 99)
        op, body = recv_frame(conn, 1 << 20)
        assert op == ERROR and b"unknown key service request 99" in body
        send_frame(conn, HELLO)
        op, body = recv_frame(conn, 1 << 20)
        assert op == OK and service.keyholder.key_id.encode() in body
        send_frame(conn, BYE)
    assert service.errors == 2


def test_service_drops_a_connection_with_an_oversized_or_bad_frame(served):
    _scheme, _secret, service, sock = served
    for frame in (struct.pack(">4sBQ", MAGIC, REENCRYPT, 1 << 40), struct.pack(">4sBQ", b"XXXX", HELLO, 0)):
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(sock))
            conn.sendall(frame)
            assert conn.recv(16) == b""  # closed without reading a terabyte or guessing a frame boundary
    assert service.errors == 2


def test_remote_key_holder_checks_the_key_before_training(served):
    scheme, _secret, _service, sock = served
    with pytest.raises(KeyServiceError, match="holds"):
        RemoteKeyHolder(str(sock), scheme, "0" * 32)


def test_unreachable_service_is_a_clear_error(tmp_path):
    scheme = he_core.get_scheme("plain")
    scheme.keygen(he_core.KeyRequirements(sizes=(1,)))
    with pytest.raises(KeyServiceError, match="cannot reach the key service"):
        RemoteKeyHolder(str(tmp_path / "nobody.sock"), scheme, scheme.public_keys.key_id, timeout=2)


@pytest.mark.parametrize("address, family", [("/tmp/x.sock", socket.AF_UNIX), ("127.0.0.1:7000", socket.AF_INET),
                                             ("localhost:7000", socket.AF_INET), ("::1:7000", socket.AF_INET6),
                                             ("relative/dir:80", socket.AF_UNIX)])
def test_parse_address(address, family):
    assert parse_address(address)[0] == family


@pytest.mark.parametrize("address, message", [("10.0.0.5:7000", "loopback"), ("0.0.0.0:7000", "loopback"),
                                              ("127.0.0.1:0", "port"), ("", "empty")])
def test_parse_address_refuses(address, message):
    with pytest.raises(ValueError, match=message):
        parse_address(address)


def test_serve_refuses_to_replace_a_regular_file(tmp_path):
    scheme = he_core.get_scheme("plain")
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1,)))
    target = tmp_path / "important.txt"
    target.write_text("keep me")
    with pytest.raises(FileExistsError, match="not a socket"):
        KeyService(scheme, secret).serve(str(target))
    assert target.read_text() == "keep me"


def test_service_over_loopback_tcp():
    scheme = he_core.get_scheme("plain")
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, 2)))
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    service = KeyService(scheme, secret)
    with serving(service, f"127.0.0.1:{port}"):
        with RemoteKeyHolder(f"127.0.0.1:{port}", scheme, secret.key_id) as remote:
            out = remote.refresh(scheme.encrypt(np.array([[1.5, -2.0]])))
    np.testing.assert_allclose(scheme.decrypt(out, secret), [[1.5, -2.0]], atol=1e-9)
    assert ser.dumps(out)  # an ordinary ciphertext


# ---------------------------------------------------------------------------- hostile clients
@pytest.fixture()
def ckks_served():
    import warnings

    from he_core.schemes.ckks import CkksParams, CkksScheme
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=2048, levels=4, scale_bits=32, first_bits=44, special_bits=44,
                                       allow_insecure=True))
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, 8)), rng=he_core.SeededRandom(2))
    service = KeyService(scheme, secret, idle_seconds=1.0)
    sock = Path(tempfile.mkdtemp(prefix="hks")) / "c.sock"
    with serving(service, str(sock)):
        yield scheme, secret, service, sock


def test_values_the_service_cannot_reencrypt_get_zeros_not_an_error(ckks_served):
    """An error would be a comparison oracle on the plaintext: |v| >= limit(scale) or not."""
    scheme, secret, service, sock = ckks_served
    unmasked = scheme.encrypt(np.array([[3.14159]]))
    too_fine = {"layout": "constant", "level": 4, "scale": 2.0**60}  # 3.14 * 2^60 does not fit
    with RemoteKeyHolder(str(sock), scheme, secret.key_id) as remote:
        out = remote.reencrypt(unmasked, too_fine)
        fine = remote.reencrypt(unmasked, {"layout": "constant", "level": 4, "scale": 2.0**32})
    np.testing.assert_allclose(scheme.decrypt(out, secret), [[0.0]], atol=1e-6)
    np.testing.assert_allclose(scheme.decrypt(fine, secret), [[3.14159]], atol=1e-6)
    assert service.value_refusals == 1 and service.errors == 0


def test_malformed_ciphertexts_and_layouts_get_errors_and_the_service_survives(ckks_served):
    scheme, secret, service, sock = ckks_served
    good = scheme.encrypt(np.ones((1, 8)))
    broken = [good.replace(meta={k: v for k, v in good.meta.items() if k != "stride"}),
              good.replace(meta={**good.meta, "stride": 0}), good.replace(shape=(10**6, 8))]
    with RemoteKeyHolder(str(sock), scheme, secret.key_id) as remote:
        for ct in broken:
            with pytest.raises(KeyServiceError, match="malformed|too few"):
                remote.reencrypt(ct)
        with pytest.raises(KeyServiceError, match="needs stride 8"):  # would make the service allocate 1000x
            remote.reencrypt(good, {"layout": "coeff", "level": 1, "scale": 2.0**32, "stride": 2048, "rev": False})
        np.testing.assert_allclose(scheme.decrypt(remote.refresh(good), secret), np.ones((1, 8)), atol=1e-6)
    assert service.errors == 4


def test_an_idle_client_is_dropped_and_the_next_one_served(ckks_served):
    scheme, secret, _service, sock = ckks_served
    idle = RemoteKeyHolder(str(sock), scheme, secret.key_id)
    import time
    time.sleep(1.5)  # longer than the service's idle_seconds
    with pytest.raises(KeyServiceError):
        idle.refresh(scheme.encrypt(np.ones((1, 8))))
    with pytest.raises(KeyServiceError, match="closed"):  # no stale answer is ever read after a failure
        idle.refresh(scheme.encrypt(np.ones((1, 8))))
    with RemoteKeyHolder(str(sock), scheme, secret.key_id) as fresh:
        np.testing.assert_allclose(scheme.decrypt(fresh.refresh(scheme.encrypt(np.ones((1, 8)))), secret),
                                   np.ones((1, 8)), atol=1e-6)
