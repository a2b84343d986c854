"""The owner's key service for one job, run beside the trainer: for single-party runs, benchmarks and tests.

``henn train sentiment --cluster`` without ``--model`` makes its own keys, as the
one-process command does (owner and trainer are then one party, and the command says
so). Its workers still never see the secret key: they refresh through a
:class:`~henn.keyservice.KeyService` that this module serves on a Unix socket in a
private temporary directory, under a job whose terms cover every worker's reviews.
A job served by ``henn serve-keys`` in the owner's own process is used the same way
(pass its address to :func:`henn.distributed.training.train_on_cluster`).

:class:`SharedKeyService` is the stock service serving each worker's connection in a
thread of its own, and counting the requests it answered from its cache (a retried
task's replays): tests and reports read it. :func:`serve_apart` runs the job in a forked
process of its own (pinned to a core when asked), so a single-party run pays the round
trip a real owner's service costs (``henn bench --train``, the training benchmarks).
"""
from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np

import he_core

from .. import jobs
from ..keyholder import RefreshTerms
from .client import RemoteKeyHolder
from .service import KeyService

#: Answers the service keeps for replays: a round's requests from every worker.
REPLAY_CACHE = 1 << 14


class SharedKeyService(KeyService):
    """A :class:`~henn.keyservice.KeyService` for many workers: a thread per connection, one request at a time.

    The stock service serves one connection at a time, so workers reaching it open one
    connection per request (:class:`~henn.distributed.training_worker.ReplayKeyHolder`),
    and each new connection waits for its admission (tens of milliseconds). Here every
    worker keeps its connection for a task; requests are still answered one at a time
    (the journal, the budget and the cache are the stock service's).

    Attributes:
        replays: requests answered from the cache (a re-run task, or a transport retry).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.replays = 0
        self._lock = threading.Lock()

    def _dispatch(self, conn: Any) -> None:
        """Each connection is served by a thread of its own (the workers' requests overlap)."""
        threading.Thread(target=super()._dispatch, args=(conn,), daemon=True,
                         name="henn-key-service-connection").start()

    def handle(self, op: int, payload: bytes) -> tuple[int, bytes]:
        with self._lock:  # one request at a time: the journal, the budget and the cache are shared
            return super().handle(op, payload)

    def _retry(self, rid: str, digest: str) -> tuple[int, bytes]:
        answer = super()._retry(rid, digest)
        self.replays += 1
        return answer


class LocalKeyJob:
    """One job's key service on a Unix socket in a private directory, served by a thread; a context manager.

    Args:
        scheme: the job's scheme (public keys installed).
        secret: the job's secret key (it stays in this process).
        terms: the job's terms (sized for every worker's reviews).
        targets: the refresh signatures the job allows (:func:`henn.training.targets.learn_targets`).
        model: what the job is for (recorded in the job).
        cache_answers: answers kept for replays.
        shared: serve connections side by side (:class:`SharedKeyService`); ``False``
            serves them one at a time, as ``henn serve-keys`` does (tests of that path).

    Attributes:
        address: ``unix:PATH`` of the socket.
        service: the :class:`SharedKeyService`.
    """

    def __init__(self, scheme: he_core.Scheme, secret: he_core.SecretKey, terms: RefreshTerms, targets: list[dict],
                 *, model: dict | None = None, cache_answers: int = REPLAY_CACHE, shared: bool = True):
        self._dir = tempfile.TemporaryDirectory(prefix="henn-keyjob-")
        root = Path(self._dir.name)
        root.chmod(0o700)
        keys = root / "job"
        keys.mkdir(mode=0o700)
        probe = scheme.encrypt(np.zeros((1, 1)))
        spec = jobs.JobSpec(job_id=jobs.new_job_id(), key_id=secret.key_id, scheme=scheme.name,
                            params_id=scheme.params_id, terms=terms, targets=targets,
                            scale_log2=math.log2(probe.scale), model=model or {"task": "henn.distributed"})
        jobs.write_spec(keys, spec)
        service = SharedKeyService if shared else KeyService
        self.service = service(scheme, secret, spec, jobs.Journal(keys))
        self.service.cache_answers = int(cache_answers)
        self.address = f"unix:{root / 'sock' / 'keys.sock'}"
        ready = threading.Event()
        self._thread = threading.Thread(target=self.service.serve, args=(self.address,),
                                        kwargs={"ready": lambda _: ready.set()}, daemon=True,
                                        name="henn-key-service")
        self._thread.start()
        if not ready.wait(30):
            self.close()
            raise jobs.JobError("cannot serve the job's keys: the key service did not start within 30 s")

    @property
    def job(self) -> dict:
        """The job's public record (what a trainer checks the service's greeting against)."""
        return self.service.spec.public()

    def close(self) -> None:
        """Stop serving, close the journal, remove the directory (the secret key was never written)."""
        self.service.stop()
        self._thread.join(10)
        self.service.journal.close()
        self._dir.cleanup()

    def __enter__(self) -> "LocalKeyJob":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _serve_job(scheme: he_core.Scheme, secret: he_core.SecretKey, terms: RefreshTerms, targets: list[dict],
               core: int | None, conn: Any, trainer_end: Any) -> None:
    # The fork copied the trainer's end of the pipe: closed here, the pipe ends when the trainer
    # does, however it dies (a signal included), and the service stops instead of serving on.
    trainer_end.close()
    if core is not None:
        os.sched_setaffinity(0, {core})
    with LocalKeyJob(scheme, secret, terms, targets, shared=False) as job:
        conn.send((job.address, job.job))
        try:
            conn.recv()  # until the trainer says stop
        except EOFError:  # or is gone
            pass


def other_core() -> int | None:
    """A core this process is not pinned to (else its last one, if it has two or more): where to serve apart."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    mine = sorted(os.sched_getaffinity(0))
    others = [c for c in range(os.cpu_count() or 1) if c not in mine] or mine[1:]
    return others[-1] if others else None


@contextlib.contextmanager
def serve_apart(scheme: he_core.Scheme, secret: he_core.SecretKey, terms: RefreshTerms, targets: list[dict], *,
                core: int | None = None, timeout: float = 60.0) -> Iterator[RemoteKeyHolder]:
    """The job served by a forked process of its own; yields the trainer's :class:`RemoteKeyHolder` on it.

    A single-party run (the secret key is in this process anyway) that should pay what
    an owner's separate service costs per refresh: framing, validation, the journal.

    Args:
        scheme: the job's scheme, its public keys installed (the trainer uses it too).
        secret: the job's secret key (the child serves with it).
        terms, targets: the job's terms and allowed refresh signatures.
        core: pin the service to this core (:func:`other_core` for the usual choice).
        timeout: seconds to wait for the service to start.

    Raises:
        jobs.JobError: the service did not start in time.
    """
    context = multiprocessing.get_context("fork")  # the child needs the secret: it is not sent anywhere
    parent, child = context.Pipe()
    proc = context.Process(target=_serve_job, args=(scheme, secret, terms, targets, core, child, parent),
                           daemon=True, name="henn-key-service-apart")
    proc.start()
    child.close()  # the child's end lives in the child only
    try:
        if not parent.poll(timeout):
            raise jobs.JobError(f"cannot serve the job apart: the key service did not start within {timeout:g} s")
        address, job = parent.recv()
        with RemoteKeyHolder(address, scheme, secret.key_id, job=job) as holder:
            yield holder
    finally:
        if proc.is_alive():
            parent.send("stop")
        proc.join(30)
        if proc.is_alive():
            proc.kill()


__all__ = ["LocalKeyJob", "REPLAY_CACHE", "SharedKeyService", "other_core", "serve_apart"]
