"""Helpers shared by the transport tests: a server call in a thread, clients that fail fast, a socket path."""
from __future__ import annotations

import socket
import threading

from henn.keyservice.transport import connect


def quick_connect(*args, **kwargs):
    """:func:`connect` with test-sized waits: a defence that breaks makes a test fail, not hang for minutes."""
    kwargs.setdefault("idle_seconds", 5)
    kwargs.setdefault("timeout", 5)
    return connect(*args, **kwargs)


class InThread:
    """Run ``fn(*args)`` in a thread; :meth:`result` joins and returns its value or re-raises its error."""

    def __init__(self, fn, *args):
        self._out: dict = {}
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self._thread.start()

    def _run(self, fn, args):
        try:
            self._out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self._out["error"] = exc

    def result(self, timeout: float = 10.0):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the server thread did not finish"
        if "error" in self._out:
            raise self._out["error"]
        return self._out["value"]


def sock_path(tmp_path) -> str:
    """A socket path in a directory ``listen`` creates (0700)."""
    return str(tmp_path / "run" / "k.sock")


def raw_client(path: str) -> socket.socket:
    """A client that speaks raw bytes (the attacker's view); our own uid, so it passes the peer check."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(path)
    return sock
