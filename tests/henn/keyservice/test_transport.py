"""henn.keyservice.transport over Unix sockets: listen and connect, HKS2 framing and its limits.

Every test uses real sockets; the service side runs in a thread. Each attack a
defence answers is played here, and each test fails without that defence (the
comments say which outcome the missing defence would produce). Addresses are in
test_endpoints.py, the socket's directory and peer uids in test_unix.py, TLS in test_tls.py.
"""
from __future__ import annotations

import os
import socket
import struct
import time

import pytest

from henn.keyservice.transport import (
    HELLO,
    MAGIC_V2,
    OK,
    AddressError,
    ConnectionExpired,
    FrameError,
    FrameTimeout,
    IdleTimeout,
    TransportError,
    listen,
)

from .threads import InThread, quick_connect, raw_client, sock_path

HEAD = struct.Struct(">4sBQ")
OLD_MAGIC = b"HKS1"  # the retired framing: a peer still speaking it is told to upgrade


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


# ---------------------------------------------------------------------------- framing
@pytest.mark.parametrize("size", [0, 1, 70_000, 3 << 20])
def test_frames_round_trip_and_are_counted(tmp_path, size):
    path = sock_path(tmp_path)
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
    path = sock_path(tmp_path)
    with listen(path) as listener:
        server = InThread(lambda: listener.accept(5).recv())
        with raw_client(path) as raw:
            raw.sendall(HEAD.pack(MAGIC_V2, 7, 3) + b"abc")
            assert server.result() == (7, b"abc")


def test_a_drip_feeding_client_is_dropped_within_the_frame_deadline(tmp_path):
    """One byte every 0.1 s: each read is quick, so only a whole-frame deadline catches it."""
    path = sock_path(tmp_path)
    frame = HEAD.pack(MAGIC_V2, HELLO, 40) + b"x" * 40
    with listen(path, frame_seconds=0.5, idle_seconds=5) as listener:
        server = InThread(_timed_recv, listener)
        with raw_client(path) as raw:
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
    path = sock_path(tmp_path)
    with listen(path, max_bytes=1024, frame_seconds=5) as listener:
        server = InThread(_timed_recv, listener)
        with raw_client(path) as raw:
            raw.sendall(HEAD.pack(MAGIC_V2, HELLO, 1 << 40))  # claims a terabyte, sends nothing more
            exc, seconds, closed = server.result()
            assert _closed_by_peer(raw)
    # Reading first would have waited the 5 s frame deadline (or allocated a terabyte).
    assert isinstance(exc, FrameError) and "exceeds the 1024-byte limit" in str(exc)
    assert seconds < 1.0 and closed


@pytest.mark.parametrize("size, accepted", [(1024, True), (1025, False)])
def test_the_payload_limit_is_exact_and_can_be_set_per_call(tmp_path, size, accepted):
    path = sock_path(tmp_path)
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
    path = sock_path(tmp_path)
    with listen(path) as listener:
        server = InThread(_timed_recv, listener)
        with raw_client(path) as raw:
            raw.sendall(HEAD.pack(OLD_MAGIC, HELLO, 0))
            exc, _seconds, closed = server.result()
            assert _closed_by_peer(raw)
    assert isinstance(exc, FrameError) and "HKS1" in str(exc) and closed


def test_a_frame_cut_short_is_an_error_not_a_short_payload(tmp_path):
    path = sock_path(tmp_path)
    with listen(path) as listener:
        server = InThread(_timed_recv, listener)
        with raw_client(path) as raw:
            raw.sendall(HEAD.pack(MAGIC_V2, HELLO, 100) + b"z" * 10)
        exc, _seconds, _closed = server.result()
    assert isinstance(exc, FrameError) and "10 of 100 bytes" in str(exc)


def test_a_silent_peer_is_dropped_after_the_idle_timeout(tmp_path):
    path = sock_path(tmp_path)
    with listen(path, idle_seconds=0.3) as listener:
        server = InThread(_timed_recv, listener)
        with raw_client(path) as raw:
            exc, seconds, closed = server.result()
            assert _closed_by_peer(raw)
    assert isinstance(exc, IdleTimeout) and 0.25 < seconds < 1.0 and closed


def test_the_lifetime_limit_refuses_a_frame_and_closes_the_connection(tmp_path):
    path = sock_path(tmp_path)
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
    path = sock_path(tmp_path)
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
        with raw_client(path):
            exc, seconds, closed = server.result()
    assert isinstance(exc, FrameTimeout) and 0.4 < seconds < 1.5 and closed


def test_a_closed_connection_and_listener_say_so(tmp_path):
    path = sock_path(tmp_path)
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
    with listen(sock_path(tmp_path)) as listener:
        start = time.monotonic()
        assert listener.accept(0.2) is None
        assert 0.15 < time.monotonic() - start < 1.0


def test_options_that_do_not_fit_the_address_are_refused(tmp_path):
    with pytest.raises(AddressError, match="tls_dir is for tls://"):
        listen(sock_path(tmp_path), tls_dir=tmp_path)
    with pytest.raises(ValueError, match="limits must be positive"):
        listen(sock_path(tmp_path), frame_seconds=0)
