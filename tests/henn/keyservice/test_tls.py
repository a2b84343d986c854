"""The key service over mutual TLS: the contexts, and who gets in (the PKI itself: test_pki.py).

Real certificates, real TLS 1.3 handshakes on the loopback interface; the service
side runs in a thread. Each refused party is the attacker a defence is for: a client
with another CA's certificate or none, a server from another CA or for another host
name, a leaked server certificate used to log in, an old TLS version, a peer that
never finishes its handshake.
"""
from __future__ import annotations

import contextlib
import gc
import os
import shutil
import socket
import ssl
import struct
import time
import warnings

import pytest

from henn.keyservice.tls import (
    TLSSetupError,
    client_context,
    make_pki,
    server_context,
)
from henn.keyservice.transport import (
    HELLO,
    MAGIC_V2,
    OK,
    AddressError,
    FrameTimeout,
    PeerRejected,
    TransportError,
    listen,
)

from .threads import InThread, quick_connect

HEAD = struct.Struct(">4sBQ")


def _mixed(tmp_path, **sources):
    """A trainer directory assembled from files of different PKIs: name=source_dir."""
    out = tmp_path / "mixed"
    out.mkdir(mode=0o700)
    for name, src in sources.items():
        target = out / name.replace("_", ".")
        shutil.copyfile(src / target.name, target)
        if target.suffix == ".key":
            target.chmod(0o600)
    return out


def _serve_one(listener, timeout=5.0):
    """Server side: accept one connection, echo one frame; returns the peer (None if nobody got in)."""
    conn = listener.accept(timeout)
    if conn is None:
        return None
    with conn:
        frame = conn.recv()
        if frame is not None:
            conn.send(OK, frame[1])
        return conn.peer


def _refused_by_server(listener, client_dir, tmp_path):
    """Connect with ``client_dir``; the service must turn us away during the handshake."""
    server = InThread(listener.accept, 1.0)
    with quick_connect(listener.address, tls_dir=client_dir, timeout=5, idle_seconds=3) as client:  # fail, not hang
        # TLS 1.3: the client finishes first and hears about the refusal on its first read.
        with pytest.raises(PeerRejected, match="refused our TLS certificate"):
            client.recv()
        assert client.closed
    assert server.result() is None
    assert listener.rejected == 1
    return listener.rejections[-1]


# ---------------------------------------------------------------------------- the PKI
# ---------------------------------------------------------------------------- loading
def test_contexts_require_tls13_and_certificates(pkis):
    a, _b = pkis
    for ctx in (server_context(a), client_context(a)):
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3 and ctx.verify_mode == ssl.CERT_REQUIRED
    assert client_context(a).check_hostname


def test_a_private_key_others_can_read_is_refused(pkis, tmp_path):
    a, _b = pkis
    trainer = _mixed(tmp_path, ca_pem=a, client_pem=a, client_key=a)
    (trainer / "client.key").chmod(0o644)
    with pytest.raises(TLSSetupError, match="mode 0644 .*chmod 600"):
        client_context(trainer)


def test_a_missing_file_is_named(pkis, tmp_path):
    a, _b = pkis
    trainer = _mixed(tmp_path, ca_pem=a, client_pem=a)
    with pytest.raises(TLSSetupError, match="client.key is missing"):
        client_context(trainer)


def test_a_key_that_does_not_match_its_certificate_is_refused(pkis, tmp_path):
    a, b = pkis
    trainer = _mixed(tmp_path, ca_pem=a, client_pem=a, client_key=b)
    with pytest.raises(TLSSetupError, match="are they a pair"):
        client_context(trainer)


def test_the_trainer_needs_only_its_three_files(pkis, tmp_path):
    a, _b = pkis
    trainer = _mixed(tmp_path, ca_pem=a, client_pem=a, client_key=a)
    with listen("tls://127.0.0.1:0", tls_dir=a) as listener:
        server = InThread(_serve_one, listener)
        with quick_connect(listener.address, tls_dir=trainer) as client:
            client.send(HELLO, b"hi")
            assert client.recv() == (OK, b"hi")
        assert server.result().startswith("CN=henn trainer sha256:")


# ---------------------------------------------------------------------------- who gets in
def test_mutual_tls_round_trip(pkis):
    a, _b = pkis
    payload = os.urandom(200_000)
    with listen("tls://127.0.0.1:0", tls_dir=a) as listener:
        assert listener.address.port > 0
        server = InThread(_serve_one, listener)
        with quick_connect(listener.address, tls_dir=a) as client:
            assert client.peer.startswith(f"key service {listener.address} (CN=henn key service sha256:")
            client.send(HELLO, payload)
            assert client.recv() == (OK, payload)
        assert "from 127.0.0.1:" in server.result()
        assert listener.rejected == 0


def test_a_client_certificate_from_another_ca_is_refused(pkis, tmp_path):
    a, b = pkis
    impostor = _mixed(tmp_path, ca_pem=a, client_pem=b, client_key=b)  # trusts the server, but is not trusted
    with listen("tls://127.0.0.1:0", tls_dir=a) as listener:
        reason = _refused_by_server(listener, impostor, tmp_path)
    assert "does not verify: unable to get local issuer certificate" in reason


def test_the_servers_certificate_cannot_log_in_as_a_trainer(pkis, tmp_path):
    """Signed by the right CA, but for serving only (extended key usage): a leaked server.key is not a login."""
    a, _b = pkis
    trainer = _mixed(tmp_path, ca_pem=a, client_pem=a, client_key=a)
    shutil.copyfile(a / "server.pem", trainer / "client.pem")
    shutil.copyfile(a / "server.key", trainer / "client.key")
    with listen("tls://127.0.0.1:0", tls_dir=a) as listener:
        reason = _refused_by_server(listener, trainer, tmp_path)
    assert "certificate purpose" in reason


def test_no_client_certificate_is_refused(pkis):
    a, _b = pkis
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.load_verify_locations(cafile=str(a / "ca.pem"))
    with listen("tls://127.0.0.1:0", tls_dir=a) as listener:
        server = InThread(listener.accept, 1.0)
        with socket.create_connection(("127.0.0.1", listener.address.port), timeout=5) as raw, \
                anonymous.wrap_socket(raw, server_hostname="127.0.0.1") as tls, \
                pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
            tls.recv(1)
        assert server.result() is None
        assert listener.rejected == 1 and "certificate" in listener.rejections[-1]


def test_a_peer_that_does_not_speak_tls_is_refused_and_its_socket_closed(pkis):
    """Each rejected peer's descriptor is closed at once, not left for the garbage collector to find."""
    a, _b = pkis
    gc.collect()  # earlier tests' garbage is not this test's business
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        with listen("tls://127.0.0.1:0", tls_dir=a, on_reject=lambda reason: None) as listener:
            port = listener.address.port
            server = InThread(listener.accept, 1.0)
            with socket.create_connection(("127.0.0.1", listener.address.port), timeout=5) as raw:
                raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
                with contextlib.suppress(ConnectionResetError):
                    raw.recv(100)  # whatever the service answers (an alert, EOF), it is not HTTP
            assert server.result() is None and listener.rejected == 1
        gc.collect()
    leaked = [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)]
    assert [m for m in leaked if f"'127.0.0.1', {port})" in m] == []


def test_a_server_from_another_ca_is_refused_by_the_client(pkis):
    a, b = pkis
    with listen("tls://127.0.0.1:0", tls_dir=b) as listener:  # someone else's service on the address
        server = InThread(listener.accept, 1.0)
        with pytest.raises(PeerRejected, match="not the owner's key service.*certificate"):
            quick_connect(listener.address, tls_dir=a, timeout=5)
        assert server.result() is None and listener.rejected == 1


def test_a_server_certificate_for_another_host_name_is_refused(tmp_path):
    pki = make_pki(tmp_path / "p", server_names=("keys.example",))
    with listen("tls://127.0.0.1:0", tls_dir=pki) as listener:
        server = InThread(listener.accept, 1.0)
        with pytest.raises(PeerRejected, match="127.0.0.1 is one of the server_names"):
            quick_connect(listener.address, tls_dir=pki, timeout=5)
        assert server.result() is None


def test_tls_12_is_refused(pkis):
    a, _b = pkis
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    old.load_verify_locations(cafile=str(a / "ca.pem"))
    old.load_cert_chain(str(a / "client.pem"), str(a / "client.key"))
    with listen("tls://127.0.0.1:0", tls_dir=a) as listener:
        server = InThread(listener.accept, 1.0)
        with socket.create_connection(("127.0.0.1", listener.address.port), timeout=5) as raw, \
                pytest.raises(ssl.SSLError):
            old.wrap_socket(raw, server_hostname="127.0.0.1")
        assert server.result() is None and listener.rejected == 1


def test_a_peer_that_never_finishes_its_handshake_is_cut_off(pkis):
    """Before authentication an anonymous peer may hold the one-at-a-time service only briefly."""
    a, _b = pkis
    with listen("tls://127.0.0.1:0", tls_dir=a, handshake_seconds=0.5) as listener:
        with socket.create_connection(("127.0.0.1", listener.address.port), timeout=5):  # says nothing
            start = time.monotonic()
            server = InThread(_serve_one, listener, 3.0)
            time.sleep(0.8)
            with quick_connect(listener.address, tls_dir=a) as client:  # the real trainer, queued behind it
                client.send(HELLO, b"ok")
                assert client.recv() == (OK, b"ok")
            assert server.result() is not None
        assert listener.rejected == 1 and "did not complete in time" in listener.rejections[-1]
        assert time.monotonic() - start < 2.5


def test_silent_peers_do_not_hold_up_a_real_trainer(pkis):
    """Handshakes run side by side: twelve anonymous peers that never speak (each allowed the full 10 s)
    do not delay the trainer who connects after them, and the service stays usable."""
    a, _b = pkis
    with listen("tls://127.0.0.1:0", tls_dir=a) as listener:
        server = InThread(_serve_one, listener, 8.0)
        silent = [socket.create_connection(("127.0.0.1", listener.address.port), timeout=5) for _ in range(12)]
        try:
            start = time.monotonic()
            with quick_connect(listener.address, tls_dir=a) as client:
                client.send(HELLO, b"ok")
                assert client.recv() == (OK, b"ok")
            assert server.result() is not None
            assert time.monotonic() - start < 3.0  # serial handshakes would have taken 12 x 10 s
        finally:
            for sock in silent:
                sock.close()


def test_a_drip_feeding_client_is_dropped_within_the_frame_deadline_over_tls(pkis):
    """One byte per TLS record every 0.1 s: every read returns data, only the frame deadline stops it."""
    a, _b = pkis
    frame = HEAD.pack(MAGIC_V2, HELLO, 20) + b"x" * 20
    ctx = client_context(a)
    with listen("tls://127.0.0.1:0", tls_dir=a, frame_seconds=0.5, idle_seconds=5) as listener:
        def serve():
            conn = listener.accept(5)
            start = time.monotonic()
            with pytest.raises(FrameTimeout) as info:
                conn.recv()
            return info.value, time.monotonic() - start, conn.closed
        server = InThread(serve)
        with socket.create_connection(("127.0.0.1", listener.address.port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            try:
                for byte in frame:  # 3.3 s if nobody stopped it
                    tls.sendall(bytes([byte]))
                    time.sleep(0.1)
            except OSError:
                pass
            exc, seconds, closed = server.result()
    assert "within 0.5 s" in str(exc) and 0.4 < seconds < 1.2 and closed


def test_tls_options_are_checked(pkis, tmp_path):
    a, _b = pkis
    with pytest.raises(AddressError, match="needs tls_dir"):
        listen("tls://127.0.0.1:0")
    with pytest.raises(AddressError, match="allowed_uids applies to Unix sockets"):
        listen("tls://127.0.0.1:0", tls_dir=a, allowed_uids=[0])
    with pytest.raises(AddressError, match="port 0 is only for listening"):
        quick_connect("tls://127.0.0.1:0", tls_dir=a)
    with pytest.raises(TLSSetupError, match="ca.pem is missing"):
        listen("tls://127.0.0.1:0", tls_dir=tmp_path)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportError, match="cannot reach the key service"):
        quick_connect(f"tls://127.0.0.1:{port}", tls_dir=a, timeout=2)
