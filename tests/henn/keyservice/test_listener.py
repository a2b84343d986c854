"""henn.keyservice.listener.Listener: peers are authenticated concurrently, so a silent or rejected peer
never holds up a good one; rejections are counted and reported; a full set of handshakes turns peers away.

The listener is given a loopback socket and an ``admit`` that reads one byte naming the peer's
behaviour (``g`` good, ``s`` slow: waits for the test, ``b`` bad: rejected, ``x``: leaves), so
each outcome is decided by the test, not by timing luck.
"""
from __future__ import annotations

import socket
import threading

import pytest

from henn.keyservice import listener as listener_mod
from henn.keyservice.endpoints import parse_endpoint
from henn.keyservice.framing import Connection, PeerRejected, TransportError
from henn.keyservice.listener import Listener


class Peers:
    """A Listener on 127.0.0.1 whose admit follows the first byte each peer sends."""

    def __init__(self):
        self.release = threading.Event()
        self.reasons: list[str] = []
        self.clients: list[socket.socket] = []
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self.listener = Listener(sock, parse_endpoint("tls://127.0.0.1:1"), admit=self.admit,
                                 on_reject=self.reasons.append)

    def admit(self, raw: socket.socket) -> Connection:
        raw.settimeout(10)
        kind = raw.recv(1)
        if kind == b"s":
            assert self.release.wait(10)
        elif kind == b"b":
            raise PeerRejected("peer b: wrong credentials")
        elif kind in (b"x", b""):
            raise OSError("connection reset by peer")
        return Connection(raw, peer=f"peer {kind.decode()}")

    def connect(self, kind: bytes) -> socket.socket:
        client = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        client.sendall(kind)
        self.clients.append(client)
        return client

    def close(self):
        self.release.set()
        self.listener.close()
        for client in self.clients:
            client.close()


def closed_by_peer(client: socket.socket) -> bool:
    """The listener's side closed: a clean EOF, or a reset."""
    client.settimeout(5)
    try:
        return client.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.fixture
def peers():
    p = Peers()
    yield p
    p.close()


def test_a_slow_handshake_does_not_hold_up_the_next_peer(peers):
    peers.connect(b"s")
    peers.connect(b"g")
    first = peers.listener.accept(5)
    assert first is not None and first.peer == "peer g"  # handed out while "s" is still being checked
    peers.release.set()
    second = peers.listener.accept(5)
    assert second is not None and second.peer == "peer s"
    first.close()
    second.close()


def test_rejected_and_vanished_peers_are_counted_reported_and_waiting_goes_on(peers):
    peers.connect(b"b")
    peers.connect(b"x")
    peers.connect(b"g")
    conn = None
    while conn is None or peers.listener.rejected < 2:  # the rejections may be collected after the good peer
        got = peers.listener.accept(5)
        conn = conn or got
        assert got is not None or peers.listener.rejected == 2
    assert conn.peer == "peer g"
    assert sorted(peers.reasons) == sorted(peers.listener.rejections) == sorted(
        ["peer b: wrong credentials", "a peer left before it was checked: connection reset by peer"])
    conn.close()


def test_when_every_handshake_slot_is_taken_a_peer_is_turned_away_at_once(peers, monkeypatch):
    monkeypatch.setattr(listener_mod, "MAX_PENDING_ADMISSIONS", 1)
    peers.connect(b"s")
    assert peers.listener.accept(0.3) is None  # "s" holds the only slot
    late = peers.connect(b"g")
    assert peers.listener.accept(0.3) is None
    assert peers.listener.rejected == 1 and "1 handshakes are under way" in peers.reasons[0]
    assert closed_by_peer(late)  # closed, not left waiting
    peers.release.set()
    conn = peers.listener.accept(5)
    assert conn is not None and conn.peer == "peer s"
    conn.close()


def test_accept_times_out_with_none_and_a_closed_listener_says_so(peers):
    assert peers.listener.accept(0.1) is None
    peers.listener.close()
    peers.listener.close()  # closing twice is harmless
    with pytest.raises(TransportError, match="the listener is closed"):
        peers.listener.accept(0.1)


def test_a_connection_admitted_but_never_handed_out_is_closed_with_the_listener(peers):
    client = peers.connect(b"s")
    assert peers.listener.accept(0.2) is None  # its admission is under way
    peers.listener.close()
    peers.release.set()  # the admission finishes after the close: its connection must not stay open
    assert closed_by_peer(client)
