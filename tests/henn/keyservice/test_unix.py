"""henn.keyservice.unix: the socket's private directory, the careful bind, and the peer's uid.

Every test uses real sockets; the service side runs in a thread. Each attack a defence answers is
played here (comments say what the missing defence would do). Framing over these sockets: test_transport.py.
"""
from __future__ import annotations

import os
import socket
import stat
import time

import pytest

from henn.keyservice.transport import HELLO, OK, AddressInUse, PeerRejected, TransportError, listen

from .threads import InThread, quick_connect, raw_client, sock_path


# ---------------------------------------------------------------------------- the socket's directory
def test_listen_makes_a_0700_directory_and_a_0600_socket_and_removes_it(tmp_path):
    path = sock_path(tmp_path)
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
    path = sock_path(tmp_path)
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
    path = sock_path(tmp_path)
    with listen(path) as listener:
        server = InThread(listener.accept, 5.0)
        with quick_connect(path):
            conn = server.result()
            assert conn is not None and conn.peer.startswith(f"uid {os.geteuid()} pid ")
            conn.close()
        assert listener.rejected == 0


def test_the_client_refuses_a_socket_served_by_another_uid(tmp_path):
    """A socket planted by someone else must not be mistaken for the owner's service."""
    path = sock_path(tmp_path)
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
    path = sock_path(tmp_path)
    with listen(path) as first:
        inode = os.lstat(path).st_ino
        with pytest.raises(AddressInUse, match="another key service is listening"):
            listen(path)
        assert os.lstat(path).st_ino == inode  # not unlinked and re-bound
        _round_trip(first, path)


def test_a_stale_socket_is_replaced(tmp_path):
    path = sock_path(tmp_path)
    os.mkdir(os.path.dirname(path), 0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)  # a service that died without removing its socket
    dead.close()
    with pytest.raises(ConnectionRefusedError):
        raw_client(path)  # really stale
    with listen(path) as listener:  # bind() alone would fail with "address in use"
        _round_trip(listener, path)


@pytest.mark.parametrize("kind", ["file", "symlink", "directory"])
def test_something_that_is_not_a_socket_is_left_alone(tmp_path, kind):
    path = sock_path(tmp_path)
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
    path = sock_path(tmp_path)
    listener = listen(path)
    os.unlink(path)  # someone removed ours and another service bound the same path
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(path)
    other.listen(1)
    theirs = os.lstat(path).st_ino
    try:
        listener.close()
        assert os.lstat(path).st_ino == theirs  # their socket survives our shutdown
        with raw_client(path):
            pass  # and still answers
    finally:
        other.close()
