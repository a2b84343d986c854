"""The key holder's end of the pipe to its cluster process: bytes only, bounded, errors by name, no unpickling."""
from __future__ import annotations

import builtins
import json
import multiprocessing
import os
import subprocess
import sys

import pytest

pytest.importorskip("distributed")

from henn.deploy import DeployError  # noqa: E402
from henn.distributed import ClusterError, ClusterUnreachableError  # noqa: E402
from henn.distributed.isolation import ClusterProcess  # noqa: E402


class _FakeChild:
    """Stands for the child process: a sentinel that never fires, an exit code of None."""

    def __init__(self):
        self._r, self._w = os.pipe()
        self.sentinel, self.exitcode = self._r, None

    def close(self):
        os.close(self._r)
        os.close(self._w)


@pytest.fixture
def ends():
    parent, child = multiprocessing.Pipe(duplex=True)
    holder = ClusterProcess.__new__(ClusterProcess)
    holder._conn, holder._process, holder._answered = parent, _FakeChild(), 0
    yield holder, child
    holder._process.close()
    parent.close()
    child.close()


class _Exec:
    def __reduce__(self):
        return exec, ("import builtins; builtins._henn_pipe_ran = True", {})


def test_a_pickle_from_the_child_is_never_unpickled(ends):
    holder, child = ends
    child.send(_Exec())  # what a compromised child would send to a parent that used recv()
    with pytest.raises(ClusterError, match="broke the pipe"):
        holder._receive(5, 0)
    assert not getattr(builtins, "_henn_pipe_ran", False)


def test_the_childs_messages_are_bounded_and_checked(ends):
    holder, child = ends
    child.send_bytes(json.dumps({"frames": -1}).encode())
    with pytest.raises(ClusterError, match="malformed header"):
        holder._receive(5, 0)
    child.send_bytes(json.dumps({"frames": 0, "error": "cluster", "message": "has no workers"}).encode())
    with pytest.raises(ClusterError, match="has no workers"):
        holder._receive(5, 0)
    child.send_bytes(json.dumps({"frames": 0, "error": "os.system", "message": "x"}).encode())
    with pytest.raises(DeployError):  # an unknown name is a DeployError, never a lookup of anything
        holder._receive(5, 0)
    with pytest.raises(ClusterUnreachableError, match="did not answer within"):
        holder._receive(0.2, 0)
    child.send_bytes(json.dumps({"frames": 1}).encode())
    child.send_bytes(b"\0" * 100)
    with pytest.raises(ClusterError, match="broke the pipe"):  # a frame over the limit (the pipe is done then)
        holder._receive(5, 10)


def test_an_unreachable_scheduler_is_named_by_the_child():
    from henn.deploy import Circuit, ServerBundle
    import numpy as np

    bundle = ServerBundle.create(Circuit([("linear", np.ones((3, 2)), np.zeros(2))], clip=2.0), "vhe")
    # a cluster address nobody listens on: the child reports the unreachable scheduler by name
    with pytest.raises(ClusterUnreachableError, match="cannot reach the Dask scheduler"):
        ClusterProcess(bundle, "tcp://127.0.0.1:9", allow_insecure=True, timeout=1)


def test_protect_memory_makes_the_process_non_dumpable():
    code = ("import ctypes, sys\nfrom henn.distributed.isolation import protect_memory\n"
            "sys.exit(0 if protect_memory() and ctypes.CDLL(None).prctl(3, 0, 0, 0, 0) == 0 else 1)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode == 0
