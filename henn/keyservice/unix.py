"""Unix sockets for the key service: a private directory, a careful bind, and the peer's uid.

The protection of a ``unix:`` address is the file system plus the kernel:

* the socket's directory must belong to this user and be mode 0700 (it is created so
  if missing; its parent is never created), checked on the directory actually opened;
* the socket is born 0600 (bound under a 0177 umask), so there is no moment at which
  others may connect;
* a socket that answers is never unlinked; only a stale one (connection refused) is,
  and probe, unlink and bind happen under a lock on the directory, so two services
  starting together cannot both find the path stale and steal it;
* on shutdown the path is removed only if it is still the inode this listener bound;
* every peer's uid is read from the kernel (``SO_PEERCRED``) and must be allowed.
  Where ``SO_PEERCRED`` is missing (not Linux) the 0700 directory is the whole
  protection, and the caller refuses an allow-list rather than ignore it.
"""
from __future__ import annotations

import logging
import os
import socket
import stat
import struct
import sys
import threading

from .framing import AddressError, AddressInUse, PeerRejected, TransportError, os_reason

__all__ = ["HAS_PEERCRED", "UnixBinding", "check_peer_uid", "private_dir"]

HAS_PEERCRED = sys.platform.startswith("linux") and hasattr(socket, "SO_PEERCRED")
_UCRED = struct.Struct("iII")  # Linux struct ucred: pid_t pid, uid_t uid, gid_t gid
_PROBE_SECONDS = 1.0
_UMASK_LOCK = threading.Lock()  # os.umask is process-wide: two binds must not interleave their restores
log = logging.getLogger("henn.keyservice")


def check_peer_uid(sock: socket.socket, uids: frozenset[int], who: str) -> str:
    """Read the peer's credentials from the kernel and check its uid.

    Args:
        sock: a connected Unix socket; closed here if the peer is refused.
        uids: the uids allowed.
        who: how to name the peer in a refusal.

    Returns:
        ``"uid U pid P"`` (or a note that the uid is unknown, without ``SO_PEERCRED``).

    Raises:
        PeerRejected: the credentials cannot be read or the uid is not allowed.
    """
    if not HAS_PEERCRED:
        return "a local peer (uid unknown: no SO_PEERCRED here)"
    try:
        pid, uid, _gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    except OSError as exc:
        sock.close()
        raise PeerRejected(f"{who}: its credentials cannot be read ({os_reason(exc)})") from None
    if uid not in uids:
        sock.close()
        raise PeerRejected(f"{who} uid {uid} pid {pid} is not allowed (allowed uids: {sorted(uids)}); it was "
                           "disconnected before anything was read")
    return f"uid {uid} pid {pid}"


class UnixBinding:
    """A bound Unix socket, its verified directory (held open) and the inode it created. Made by :meth:`bind`."""

    def __init__(self, sock: socket.socket, path: str, dir_fd: int, name: str, inode: tuple[int, int]):
        self.sock, self.path, self.dir_fd, self.name, self.inode = sock, path, dir_fd, name, inode

    @classmethod
    def bind(cls, path: str, backlog: int) -> UnixBinding:
        """Bind and listen on ``path`` in its private directory, replacing only a stale socket.

        Raises:
            AddressError: no Unix sockets on this platform.
            AddressInUse: a live socket, or something that is not a socket, is at ``path``.
            TransportError: an unsafe or missing directory, or the bind failed.
        """
        if not hasattr(socket, "AF_UNIX"):
            raise AddressError(f"cannot listen on {path}: Unix sockets are not available here; use tls://HOST:PORT")
        import fcntl  # POSIX only: imported here so the keyservice (tls://) still loads where it is missing

        dir_fd = private_dir(path, create=True)
        name = os.path.basename(path)
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX)  # probe-unlink-bind is atomic among our listeners
            try:
                _clear_stale(path, dir_fd, name)
                sock, inode = _bind_private(path, dir_fd, name, backlog)
            finally:
                fcntl.flock(dir_fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(dir_fd)
            raise
        return cls(sock, path, dir_fd, name, inode)

    def release(self) -> None:
        """Unlink the path if it is still our inode (another service may have taken it since).

        Called while our socket is still open: it pins the inode, so its number cannot
        have been reused by a socket bound there since.
        """
        import fcntl  # POSIX only (see bind): only a bound Unix socket gets here

        try:
            fcntl.flock(self.dir_fd, fcntl.LOCK_EX)
            st = os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == self.inode:
                os.unlink(self.name, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass
        except OSError as exc:  # closing must not fail; a left-over socket is found stale next time
            log.warning("key service: could not remove %s: %s", self.path, os_reason(exc))
        finally:
            os.close(self.dir_fd)  # also drops the lock


def _bind_private(path: str, dir_fd: int, name: str, backlog: int) -> tuple[socket.socket, tuple[int, int]]:
    """A listening socket bound at ``path`` with mode 0600, and the (device, inode) it created."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _UMASK_LOCK:
            old = os.umask(0o177)  # born 0600: no moment at which others may connect
            try:
                sock.bind(path)
            finally:
                os.umask(old)
        sock.listen(backlog)
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        sock.close()
        raise TransportError(f"cannot listen on {path}: {os_reason(exc)}") from None
    return sock, (st.st_dev, st.st_ino)


def private_dir(path: str, *, create: bool) -> int:
    """Open the socket's directory and check that it is ours and private.

    Args:
        path: the socket's path.
        create: make the directory (0700) if it is missing; its parent must exist.

    Returns:
        A file descriptor of the directory (the caller closes it).

    Raises:
        TransportError: the directory is missing (or its parent, when creating), cannot
            be opened, belongs to another user, or group or others may enter it.
    """
    parent = os.path.dirname(os.path.abspath(path))
    made = False
    if create:
        try:
            os.mkdir(parent, 0o700)
            made = True
        except FileExistsError:
            pass
        except FileNotFoundError:
            raise TransportError(f"cannot listen on {path}: {os.path.dirname(parent)} does not exist (only the "
                                 "socket's own directory is created)") from None
    try:
        fd = os.open(parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise TransportError(f"cannot use {path}: its directory {parent} cannot be opened "
                             f"({os_reason(exc)})") from None
    try:
        if made:
            os.fchmod(fd, 0o700)  # exactly 0700 whatever the umask; checked below like any other
        _check_private(path, parent, os.fstat(fd))  # the directory opened, not whatever the path names now
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_private(path: str, parent: str, st: os.stat_result) -> None:
    if st.st_uid != os.geteuid():
        raise TransportError(f"cannot use {path}: its directory {parent} belongs to uid {st.st_uid}, not to this "
                             f"user (uid {os.geteuid()}); use a directory of your own, such as /run/user/UID/henn")
    if st.st_mode & 0o077:
        raise TransportError(f"cannot use {path}: its directory {parent} has mode {stat.S_IMODE(st.st_mode):04o}, "
                             f"so other users could reach the socket; run `chmod 700 {parent}` or use a directory "
                             "of its own")


def _clear_stale(path: str, dir_fd: int, name: str) -> None:
    """Unlink a dead socket at ``path``; refuse a live one and anything that is not a socket."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        kind = "symbolic link" if stat.S_ISLNK(st.st_mode) else "directory" if stat.S_ISDIR(st.st_mode) else "file"
        raise AddressInUse(f"cannot listen on {path}: a {kind} that is not a socket is in the way; it is left "
                           "alone: remove it yourself or choose another path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(_PROBE_SECONDS)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(name, dir_fd=dir_fd)  # nobody listens: a stale socket of a service that died
        return
    except FileNotFoundError:
        return
    except OSError as exc:  # a full backlog times out: busy is alive, so leave it
        raise AddressInUse(f"cannot listen on {path}: the socket there did not say whether it is in use "
                           f"({os_reason(exc)}); it is left alone: stop its service or choose another path") from None
    finally:
        probe.close()
    raise AddressInUse(f"cannot listen on {path}: another key service is listening there; stop it first or "
                       "choose another path")
