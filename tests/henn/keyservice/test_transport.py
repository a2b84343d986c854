"""The key service transport over Unix sockets: addresses, the socket path, peer uids, framing limits.

Every test uses real sockets; the service side runs in a thread. Each attack a
defence answers is played here, and each test fails without that defence (the
comments say which outcome the missing defence would produce). TLS is in test_tls.py.
"""
from __future__ import annotations

import os
import socket
import stat
import struct
import time

import pytest

from henn.keyservice.transport import (
    HELLO,
    MAGIC_V2,
    OK,
    AddressError,
    AddressInUse,
    ConnectionExpired,
    FrameError,
    FrameTimeout,
    IdleTimeout,
    PeerRejected,
    TransportError,
    listen,
    parse_endpoint,
)

from .threads import InThread, quick_connect

HEAD = struct.Struct(">4sBQ")
OLD_MAGIC = b"HKS1"  # the retired framing: a peer still speaking it is told to upgrade


def _sock_path(tmp_path):
    return str(tmp_path / "run" / "k.sock")


def _raw_client(path: str) -> socket.socket:
    """A client that speaks raw bytes (the attacker's view); our own uid, so it passes the peer check."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(path)
    return sock


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _gone(conn) -> bool:
    """The other side closed ``conn``: a clean EOF, or a reset when it left our bytes unread."""
    try:
        return conn.recv() is None
    except TransportError:
        return conn.closed


def _timed_recv(listener, **kw):
    """Server side: accept one connection and time a recv that is expected to fail."""
    conn = listener.accept(5)
    assert conn is not None
    start = time.monotonic()
    try:
        conn.recv(**kw)
    except TransportError as exc:
        return exc, time.monotonic() - start, conn.closed
    return None, time.monotonic() - start, conn.closed


# ---------------------------------------------------------------------------- addresses
@pytest.mark.parametrize("text, expected", [
    ("unix:/run/user/1000/henn/k.sock", ("unix", "/run/user/1000/henn/k.sock", "", 0)),
    ("/tmp/h/k.sock", ("unix", "/tmp/h/k.sock", "", 0)),
    ("k.sock", ("unix", "k.sock", "", 0)),
    ("relative/dir:80", ("unix", "relative/dir:80", "", 0)),
    ("tls://localhost:7000", ("tls", "", "localhost", 7000)),
    ("TLS://10.1.2.3:7000", ("tls", "", "10.1.2.3", 7000)),
    ("tls://[::1]:7000", ("tls", "", "::1", 7000)),
    ("tls://0.0.0.0:0", ("tls", "", "0.0.0.0", 0)),
])
def test_parse_endpoint_accepts_unix_and_tls(text, expected):
    a = parse_endpoint(text)
    assert (a.kind, a.path, a.host, a.port) == expected
    assert parse_endpoint(str(a)) == a  # the canonical form parses back


@pytest.mark.parametrize("text", ["127.0.0.1:7000", "localhost:7000", "0.0.0.0:7000", "[::1]:7000", "::1:7000",
                                  "tcp://127.0.0.1:7000", "ssl://host:1", "http://host:80"])
def test_plain_tcp_is_refused_with_the_forms_that_work(text):
    with pytest.raises(AddressError, match="only with mutual TLS") as info:
        parse_endpoint(text)
    assert "tls://HOST:PORT" in str(info.value) and "unix:" in str(info.value)
    assert isinstance(info.value, ValueError)  # callers that catch ValueError keep working


def test_listen_and_connect_refuse_plain_tcp():
    with pytest.raises(AddressError, match="mutual TLS"):
        listen("127.0.0.1:0")
    with pytest.raises(AddressError, match="mutual TLS"):
        quick_connect("localhost:7000")


@pytest.mark.parametrize("text, message", [("", "empty"), ("unix:", "empty"), ("/tmp/a\0b", "NUL"),
                                           ("/" + "d" * 200 + "/k.sock", "at most"),
                                           ("tls://host", "expected tls://"), ("tls://host:99999", "port"),
                                           ("tls://host:80/path", "expected tls://")])
def test_malformed_addresses_are_refused(text, message):
    with pytest.raises(AddressError, match=message):
        parse_endpoint(text)


# ---------------------------------------------------------------------------- the socket's directory
def test_listen_makes_a_0700_directory_and_a_0600_socket_and_removes_it(tmp_path):
    path = _sock_path(tmp_path)
    umask = os.umask(0o022)
    try:
        with listen(path) as listener:
            assert str(listener.address) == f"unix:{path}"
            assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
            st = os.lstat(path)
            assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert os.umask(0o022) == 0o022  # the temporary umask did not leak
    finally:
        os.umask(umask)
    assert not os.path.exists(path)


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o701, 0o777])
def test_a_directory_other_users_can_enter_is_refused(tmp_path, mode):
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(mode)
    with pytest.raises(TransportError, match=f"mode {mode:04o}.*chmod 700"):
        listen(str(run / "k.sock"))
    assert not (run / "k.sock").exists()
    assert stat.S_IMODE(run.stat().st_mode) == mode  # reported, not silently "fixed"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_a_directory_owned_by_another_user_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    os.chown(run, 54321, -1)
    with pytest.raises(TransportError, match="belongs to uid 54321"):
        listen(str(run / "k.sock"))


def test_a_missing_grandparent_is_not_created(tmp_path):
    with pytest.raises(TransportError, match="does not exist"):
        listen(str(tmp_path / "no" / "such" / "k.sock"))
    assert not (tmp_path / "no").exists()


# ---------------------------------------------------------------------------- peer credentials
def test_a_peer_whose_uid_is_not_allowed_is_rejected_before_any_frame(tmp_path):
    path = _sock_path(tmp_path)
    other = os.geteuid() + 4242
    reasons = []
    with listen(path, allowed_uids=[other], on_reject=reasons.append) as listener:
        server = InThread(listener.accept, 1.0)
        with quick_connect(path, idle_seconds=5) as client:
            start = time.monotonic()
            assert client.recv() is None  # closed by the service although we never sent a byte
            assert time.monotonic() - start < 1.0  # not after waiting for a frame or a timeout
        assert server.result() is None
        assert listener.rejected == 1 and len(reasons) == 1
        assert f"uid {os.geteuid()}" in reasons[0] and str(other) in reasons[0]


def test_our_own_uid_is_admitted_by_default(tmp_path):
    path = _sock_path(tmp_path)
    with listen(path) as listener:
        server = InThread(listener.accept, 5.0)
        with quick_connect(path):
            conn = server.result()
            assert conn is not None and conn.peer.startswith(f"uid {os.geteuid()} pid ")
            conn.close()
        assert listener.rejected == 0


def test_the_client_refuses_a_socket_served_by_another_uid(tmp_path):
    """A socket planted by someone else must not be mistaken for the owner's service."""
    path = _sock_path(tmp_path)
    with listen(path), pytest.raises(PeerRejected, match=f"uid {os.geteuid()} pid"):
        quick_connect(path, allowed_uids=[os.geteuid() + 1])


# ---------------------------------------------------------------------------- who owns the path
def _round_trip(listener, path):
    def serve():
        while True:  # the first connection may be another listener's liveness probe
            conn = listener.accept(5)
            frame = conn.recv()
            if frame is not None:
                conn.send(OK, frame[1])
                return frame
    server = InThread(serve)
    with quick_connect(path) as client:
        client.send(HELLO, b"ping")
        assert client.recv() == (OK, b"ping")
    assert server.result() == (HELLO, b"ping")


def test_a_second_listener_on_a_live_socket_is_refused_and_the_first_keeps_working(tmp_path):
    path = _sock_path(tmp_path)
    with listen(path) as first:
        inode = os.lstat(path).st_ino
        with pytest.raises(AddressInUse, match="another key service is listening"):
            listen(path)
        assert os.lstat(path).st_ino == inode  # not unlinked and re-bound
        _round_trip(first, path)


def test_a_stale_socket_is_replaced(tmp_path):
    path = _sock_path(tmp_path)
    os.mkdir(os.path.dirname(path), 0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)  # a service that died without removing its socket
    dead.close()
    with pytest.raises(ConnectionRefusedError):
        _raw_client(path)  # really stale
    with listen(path) as listener:  # bind() alone would fail with "address in use"
        _round_trip(listener, path)


@pytest.mark.parametrize("kind", ["file", "symlink", "directory"])
def test_something_that_is_not_a_socket_is_left_alone(tmp_path, kind):
    path = _sock_path(tmp_path)
    os.mkdir(os.path.dirname(path), 0o700)
    if kind == "file":
        with open(path, "w") as f:
            f.write("keep me")
    elif kind == "symlink":
        os.symlink(tmp_path / "elsewhere", path)
    else:
        os.mkdir(path)
    before = os.lstat(path)
    with pytest.raises(AddressInUse, match="not a socket is in the way"):
        listen(path)
    after = os.lstat(path)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)


def test_shutdown_leaves_a_path_that_now_belongs_to_another_inode(tmp_path):
    path = _sock_path(tmp_path)
    listener = listen(path)
    os.unlink(path)  # someone removed ours and another service bound the same path
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(path)
    other.listen(1)
    theirs = os.lstat(path).st_ino
    try:
        listener.close()
        assert os.lstat(path).st_ino == theirs  # their socket survives our shutdown
        with _raw_client(path):
            pass  # and still answers
    finally:
        other.close()


# ---------------------------------------------------------------------------- framing
@pytest.mark.parametrize("size", [0, 1, 70_000, 3 << 20])
def test_frames_round_trip_and_are_counted(tmp_path, size):
    path = _sock_path(tmp_path)
    payload = os.urandom(size)
    with listen(path) as listener:
        def serve():
            conn = listener.accept(5)
            op, body = conn.recv()
            conn.send(op + 1, body)
            return conn.recv(), conn.bytes_received
        server = InThread(serve)
        with quick_connect(path) as client:
            assert client.send(HELLO, payload) == 13 + size
            assert client.recv() == (HELLO + 1, payload)
            assert client.bytes_sent == client.bytes_received == 13 + size
        assert server.result() == (None, 13 + size)  # a clean close reads as None


def test_the_wire_format_is_hks2(tmp_path):
    path = _sock_path(tmp_path)
    with listen(path) as listener:
        server = InThread(lambda: listener.accept(5).recv())
        with _raw_client(path) as raw:
            raw.sendall(HEAD.pack(MAGIC_V2, 7, 3) + b"abc")
            assert server.result() == (7, b"abc")


def test_a_drip_feeding_client_is_dropped_within_the_frame_deadline(tmp_path):
    """One byte every 0.1 s: each read is quick, so only a whole-frame deadline catches it."""
    path = _sock_path(tmp_path)
    frame = HEAD.pack(MAGIC_V2, HELLO, 40) + b"x" * 40
    with listen(path, frame_seconds=0.5, idle_seconds=5) as listener:
        server = InThread(_timed_recv, listener)
        with _raw_client(path) as raw:
            try:
                for byte in frame:  # 5.3 s if nobody stopped it
                    raw.sendall(bytes([byte]))
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass
            exc, seconds, closed = server.result()
    assert isinstance(exc, FrameTimeout) and "within 0.5 s" in str(exc)
    assert 0.4 < seconds < 1.2 and closed


def test_an_oversized_length_is_refused_before_reading_the_payload(tmp_path):
    path = _sock_path(tmp_path)
    with listen(path, max_bytes=1024, frame_seconds=5) as listener:
        server = InThread(_timed_recv, listener)
        with _raw_client(path) as raw:
            raw.sendall(HEAD.pack(MAGIC_V2, HELLO, 1 << 40))  # claims a terabyte, sends nothing more
            exc, seconds, closed = server.result()
            assert _closed_by_peer(raw)
    # Reading first would have waited the 5 s frame deadline (or allocated a terabyte).
    assert isinstance(exc, FrameError) and "exceeds the 1024-byte limit" in str(exc)
    assert seconds < 1.0 and closed


@pytest.mark.parametrize("size, accepted", [(1024, True), (1025, False)])
def test_the_payload_limit_is_exact_and_can_be_set_per_call(tmp_path, size, accepted):
    path = _sock_path(tmp_path)
    with listen(path) as listener:
        server = InThread(lambda: listener.accept(5).recv(max_bytes=1024))
        with quick_connect(path) as client:
            client.send(HELLO, b"y" * size)
            if accepted:
                assert server.result() == (HELLO, b"y" * size)
            else:
                with pytest.raises(FrameError, match="exceeds"):
                    server.result()


def test_bad_magic_ends_the_connection_and_names_an_old_peer(tmp_path):
    path = _sock_path(tmp_path)
    with listen(path) as listener:
        server = InThread(_timed_recv, listener)
        with _raw_client(path) as raw:
            raw.sendall(HEAD.pack(OLD_MAGIC, HELLO, 0))
            exc, _seconds, closed = server.result()
            assert _closed_by_peer(raw)
    assert isinstance(exc, FrameError) and "HKS1" in str(exc) and closed


def test_a_frame_cut_short_is_an_error_not_a_short_payload(tmp_path):
    path = _sock_path(tmp_path)
    with listen(path) as listener:
        server = InThread(_timed_recv, listener)
        with _raw_client(path) as raw:
            raw.sendall(HEAD.pack(MAGIC_V2, HELLO, 100) + b"z" * 10)
        exc, _seconds, _closed = server.result()
    assert isinstance(exc, FrameError) and "10 of 100 bytes" in str(exc)


def test_a_silent_peer_is_dropped_after_the_idle_timeout(tmp_path):
    path = _sock_path(tmp_path)
    with listen(path, idle_seconds=0.3) as listener:
        server = InThread(_timed_recv, listener)
        with _raw_client(path) as raw:
            exc, seconds, closed = server.result()
            assert _closed_by_peer(raw)
    assert isinstance(exc, IdleTimeout) and 0.25 < seconds < 1.0 and closed


def test_the_lifetime_limit_refuses_a_frame_and_closes_the_connection(tmp_path):
    path = _sock_path(tmp_path)
    with listen(path, lifetime_seconds=0.6, idle_seconds=5) as listener:
        def serve():
            conn = listener.accept(5)
            first = conn.recv()
            time.sleep(0.8)  # the second frame is complete and waiting, but arrives after the lifetime
            try:
                conn.recv()
            except ConnectionExpired as exc:
                return first, exc, conn.closed
            return first, None, conn.closed
        server = InThread(serve)
        with quick_connect(path) as client:
            client.send(HELLO, b"1")
            client.send(HELLO, b"2")
            first, exc, closed = server.result()
            assert _gone(client)  # the service closed it
    assert first == (HELLO, b"1")
    assert isinstance(exc, ConnectionExpired) and "0.6 s lifetime" in str(exc) and closed


def test_a_peer_that_does_not_read_cannot_stall_a_send(tmp_path):
    path = _sock_path(tmp_path)
    with listen(path, frame_seconds=0.5) as listener:
        def serve():
            conn = listener.accept(5)
            start = time.monotonic()
            try:
                conn.send(OK, b"\0" * (16 << 20))  # far more than the socket buffers hold
            except FrameTimeout as exc:
                return exc, time.monotonic() - start, conn.closed
            return None, time.monotonic() - start, conn.closed
        server = InThread(serve)
        with _raw_client(path):
            exc, seconds, closed = server.result()
    assert isinstance(exc, FrameTimeout) and 0.4 < seconds < 1.5 and closed


def test_a_closed_connection_and_listener_say_so(tmp_path):
    path = _sock_path(tmp_path)
    listener = listen(path)
    server = InThread(listener.accept, 5.0)
    client = quick_connect(path)
    server.result().close()
    client.close()
    with pytest.raises(TransportError, match="closed; connect again"):
        client.send(HELLO)
    listener.close()
    with pytest.raises(TransportError, match="listener is closed"):
        listener.accept(0.1)
    with pytest.raises(TransportError, match="cannot reach the key service"):
        quick_connect(path)


def test_accept_times_out_with_none(tmp_path):
    with listen(_sock_path(tmp_path)) as listener:
        start = time.monotonic()
        assert listener.accept(0.2) is None
        assert 0.15 < time.monotonic() - start < 1.0


def test_options_that_do_not_fit_the_address_are_refused(tmp_path):
    with pytest.raises(AddressError, match="tls_dir is for tls://"):
        listen(_sock_path(tmp_path), tls_dir=tmp_path)
    with pytest.raises(ValueError, match="limits must be positive"):
        listen(_sock_path(tmp_path), frame_seconds=0)
