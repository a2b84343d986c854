"""henn.keyservice.framing.Connection: HKS2 frames over a socket pair, and every way a peer can misbehave.

Timing tests use deadlines of a few tenths of a second; each failure closes the
connection before raising.
"""
import socket
import struct
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from henn.keyservice.framing import (HEADER_SIZE, MAGIC_V2, Connection, ConnectionExpired, FrameError, FrameTimeout,
                                     IdleTimeout, TransportError, check_limits)


def pair(**kw):
    a, b = socket.socketpair()
    return Connection(a, peer="left", **kw), Connection(b, peer="right", **kw)


@given(op=st.integers(0, 255), payload=st.binary(max_size=4096))
@settings(max_examples=30, deadline=None)
def test_frames_arrive_whole_and_counted(op, payload):
    left, right = pair()
    with left, right:
        assert left.send(op, payload) == HEADER_SIZE + len(payload)
        assert right.recv() == (op, payload)
        assert left.bytes_sent == right.bytes_received == HEADER_SIZE + len(payload)


def test_a_large_frame_crosses_a_small_socket_buffer():
    left, right = pair()
    payload = bytes(range(256)) * 4096  # 1 MiB: several sends and receives
    t = threading.Thread(target=left.send, args=(9, payload))
    t.start()
    assert right.recv() == (9, payload)
    t.join()
    left.close(), right.close()


def test_a_clean_close_between_frames_is_none_and_closes():
    left, right = pair()
    left.close()
    assert right.recv() is None and right.closed
    with pytest.raises(TransportError, match="closed; connect again"):
        right.recv()
    with pytest.raises(TransportError, match="closed"):
        left.send(1)


def raw_pair(**kw):
    a, b = socket.socketpair()
    return a, Connection(b, peer="right", **kw)


@pytest.mark.parametrize("head,match", [
    (b"HKS1" + struct.pack(">BQ", 1, 0), "older henn"),
    (b"XXXX" + struct.pack(">BQ", 1, 0), "bad magic"),
    (MAGIC_V2 + struct.pack(">BQ", 1, 2**40), "exceeds the"),
])
def test_malformed_headers_are_refused_before_reading_the_payload(head, match):
    a, conn = raw_pair(max_bytes=1 << 20)
    a.sendall(head)
    with pytest.raises(FrameError, match=match):
        conn.recv()
    assert conn.closed
    a.close()


def test_a_stream_cut_inside_a_frame_is_a_frame_error():
    a, conn = raw_pair()
    a.sendall(MAGIC_V2 + struct.pack(">BQ", 1, 10) + b"abc")
    a.close()
    with pytest.raises(FrameError, match="inside a frame"):
        conn.recv()


def test_the_per_call_limit_overrides_the_connections():
    left, right = pair(max_bytes=1 << 20)
    left.send(1, b"x" * 100)
    with pytest.raises(FrameError, match="100-byte payload exceeds the 10-byte limit"):
        right.recv(max_bytes=10)
    left.close()


def test_an_idle_peer_times_out():
    a, conn = raw_pair(idle_seconds=0.2)
    with pytest.raises(IdleTimeout, match="sent nothing"):
        conn.recv()
    assert conn.closed
    a.close()


def test_dripping_bytes_does_not_extend_a_frame():
    a, conn = raw_pair(frame_seconds=0.4)

    def drip():
        for byte in MAGIC_V2 + struct.pack(">BQ", 1, 100):
            try:
                a.send(bytes([byte]))
            except OSError:
                return
            time.sleep(0.05)

    t = threading.Thread(target=drip)
    t.start()
    start = time.monotonic()
    with pytest.raises(FrameTimeout, match="within 0.4 s"):
        conn.recv()
    assert time.monotonic() - start < 2.0
    t.join()
    a.close()


def test_a_connection_expires():
    left, right = pair(lifetime_seconds=0.2)
    time.sleep(0.25)
    with pytest.raises(ConnectionExpired, match="lifetime"):
        right.recv()
    left.close()


@pytest.mark.parametrize("args", [(0, 1.0), (1, 0.0), (1, -1.0), (1, float("nan"))])
def test_limits_must_be_positive(args):
    with pytest.raises(ValueError, match="must be positive"):
        check_limits(*args)


def test_ops_must_be_bytes():
    left, right = pair()
    with pytest.raises(ValueError, match="0 .. 255"):
        left.send(256)
    left.close(), right.close()
