"""The owner's key service in a process of its own, pinned to another core: training measured as in real use.

Issue #13 measures training with the key holder where it lives in a real run: another
process (the owner's ``henn serve-keys``), here on the core the trainer does not use.
:func:`remote_key_holder` forks that process from a single-party setup (the child
serves the job under the secret key; the trainer's side only talks to its socket), so
every refresh pays the real round trip: framing, validation, the service's journal.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
from typing import Any, Iterator

import he_core
from henn.distributed.owner_service import LocalKeyJob
from henn.keyholder import RefreshTerms
from henn.keyservice import RemoteKeyHolder


def _serve(scheme: he_core.Scheme, secret: he_core.SecretKey, terms: RefreshTerms, targets: list[dict],
           core: int | None, conn: Any) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})
    with LocalKeyJob(scheme, secret, terms, targets, shared=False) as job:
        conn.send((job.address, job.job))
        conn.recv()  # until the trainer is done


def other_core() -> int | None:
    """The core the key service takes: the highest one this process may use, unless it is the only one."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    mine = sorted(os.sched_getaffinity(0))
    every = range(os.cpu_count() or 1)
    others = [c for c in every if c not in mine] or (mine[1:] if len(mine) > 1 else [])
    return others[-1] if others else None


@contextlib.contextmanager
def remote_key_holder(scheme: he_core.Scheme, secret: he_core.SecretKey, terms: RefreshTerms, targets: list[dict],
                      *, core: int | None = None) -> Iterator[RemoteKeyHolder]:
    """A :class:`RemoteKeyHolder` on a job served by a forked process (pinned to ``core`` when given).

    Args:
        scheme: the job's scheme, its public keys installed (the trainer uses it too).
        secret: the job's secret key (the child serves with it).
        terms, targets: the job's terms and allowed refresh signatures.
        core: the core to pin the service to (:func:`other_core` for the usual one).
    """
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    proc = context.Process(target=_serve, args=(scheme, secret, terms, targets, core, child), daemon=True,
                           name="henn-bench-key-service")
    proc.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("the key service process did not start within 60 s")
        address, job = parent.recv()
        with RemoteKeyHolder(address, scheme, secret.key_id, job=job) as holder:
            yield holder
    finally:
        if proc.is_alive():
            parent.send("stop")
        proc.join(30)
        if proc.is_alive():
            proc.kill()
