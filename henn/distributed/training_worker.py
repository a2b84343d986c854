"""A worker's part of a data-parallel round: train a chunk against the current weights, return the trained ones.

One task per worker and round (:func:`local_round`). The task receives the round's
encrypted weights sealed in the project's format (:class:`~henn.distributed.wire.Wire`),
the job's public keys (a Dask dependency, moved by the registered serializers), its
chunk of plaintext rows and targets, and a 32-byte *task seed*. It trains the chunk with
:func:`henn.training.fit.fit` exactly as one process would, refreshing through the
owner's key service, and returns every trained parameter times its chunk's share of the
round, sealed, in the layout it was received in (the driver sums them:
:mod:`henn.distributed.training`).

Why a seed: Dask re-runs a task whose worker died, and the re-run must not spend the
job's budget twice or show the owner a second masked view of the same values. So
everything the task sends the key service is a function of its arguments:
:class:`ReplayKeyHolder` draws masks from :class:`he_core.randomness.XofRandom` keyed by the seed
(SHAKE-256: as unpredictable to the owner as the OS CSPRNG while the seed stays with the
trainer) and derives each request id from the seed and the request's position. A re-run
sends byte-identical requests under the same ids, which the service answers from its
cache (:mod:`henn.keyservice.service`) without decrypting again or counting them.

Against ``henn serve-keys``, each request travels on its own connection: that service
serves one connection at a time, so a worker holding one for a whole round would stall
the others. A service that serves connections side by side
(:class:`~henn.keyservice.local_job.SharedKeyService`) keeps one per task.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from typing import Any, Callable

import numpy as np

from he_core import PublicKeys
from he_core.randomness import XofRandom

from distributed.diagnostics.plugin import WorkerPlugin

from ..bundle import make_scheme
from ..keyservice import RemoteKeyHolder
from ..module import Sequential
from ..tensor import EncTensor
from ..training.batches import count_rows
from ..training.fit import fit
from . import wire

#: Bytes of a task seed (drawn by the driver from the OS CSPRNG).
SEED_BYTES = 32
MASK_DOMAIN = b"henn-distributed-masks"
REQUEST_DOMAIN = b"henn-distributed-request-id"


class ReplayKeyHolder(RemoteKeyHolder):
    """The owner's key service as a task sees it: requests that a re-run of the task repeats byte for byte.

    Args:
        address, scheme, key_id, job, tls_dir, timeout: as :class:`~henn.keyservice.RemoteKeyHolder`.
        seed: the task's seed (at least 16 bytes): it keys the masks and the request ids.
        per_request: open a connection per request (for a service that serves one
            connection at a time, as ``henn serve-keys`` does).

    Attributes:
        requests: requests sent (the next one's position in the task).
    """

    def __init__(self, address: str, scheme: Any, key_id: str, *, seed: bytes, job: dict | None = None,
                 tls_dir: str | None = None, timeout: float = 120.0, per_request: bool = True):
        if not isinstance(seed, (bytes, bytearray)) or len(seed) < 16:
            raise ValueError("cannot replay a task's requests: its seed must be at least 16 bytes")
        self._seed = bytes(seed)
        self.requests = 0
        self.per_request = bool(per_request)
        super().__init__(address, scheme, key_id, job=job, tls_dir=tls_dir, timeout=timeout)
        self._rng = XofRandom(self._seed, MASK_DOMAIN)

    def _request_id(self) -> str:
        position = self.requests.to_bytes(8, "big")
        self.requests += 1
        return hashlib.shake_256(REQUEST_DOMAIN + b"\x00" + self._seed + position).hexdigest(16)

    def _call(self, op: int, payload: bytes) -> bytes:
        try:
            return super()._call(op, payload)
        finally:
            if self.per_request:  # see the module docstring
                self.close()


@dataclasses.dataclass(frozen=True)
class RoundSpec:
    """What every task of a run shares; pickled into the tasks' arguments (no key material).

    Attributes:
        address: the owner's key service (``unix:PATH`` on the workers' machine, or ``tls://HOST:PORT``).
        job: the job's public record (the service's greeting must match), or ``None``.
        tls_dir: the trainer's TLS files on the workers, for a ``tls://`` service.
        build: a module-level function making the model from its parameters, in
            ``model.parameters()`` order (pickled by reference).
        fit_args: :func:`~henn.training.fit.fit`'s keyword arguments (``lr``, ``batch_size``,
            ``loss``, ``value_bound``...); monitoring is off on workers.
        per_request: one connection per key-service request (see :class:`ReplayKeyHolder`).
        allow_insecure: the run accepts an insecure parameter set (tests, ``vhe``; the
            workers are switched over by :class:`AcceptInsecurePlugin`).
    """

    address: str
    job: dict | None
    tls_dir: str | None
    build: Callable[..., Sequential]
    fit_args: dict
    per_request: bool = True
    allow_insecure: bool = False


def contribution(holder: ReplayKeyHolder, trained: Any, target: Any, weight: float,
                 value_bound: float | None) -> Any:
    """``weight * trained`` in the layout, level and scale the weight was received in.

    The plaintext product is made here, where a masked refresh is at hand: on a leveled
    scheme it changes the scale (or the level), which the driver's sum could only align by
    spending a level per round. A packing scheme may also keep a weight in another packing
    after training (CKKS turns a one-row table around for its inner products). Either way
    one masked refresh into the received layout restores what the next round needs (a
    target the job allows: the weights' own layouts).
    """
    scheme = holder.scheme
    before = scheme.budget(trained)
    if weight != 1.0:
        trained = scheme.mul_plain(trained, np.full(tuple(trained.shape), float(weight)))
    after = scheme.budget(trained)
    moved = scheme.layout_of(trained) != target
    rescaled = before.get("kind") == "levels" and (after["level"], after["scale"]) != (before["level"],
                                                                                        before["scale"])
    if moved or rescaled:
        trained = holder.refresh(trained, layout=target, value_bound=value_bound)
    return trained


class AcceptInsecurePlugin(WorkerPlugin):
    """Lets every worker, present and future, load an insecure parameter set (tests, ``vhe``).

    A worker receives the public keys as another task's result, deserialized before any
    task of this run could say so: the setting must be on from the worker's start.
    """

    name = "henn-accept-insecure"

    def setup(self, worker: Any = None) -> None:
        wire.accept_insecure(True)  # only ever switched on: another job on this worker may have asked for it


def open_public(sealed: wire.Wire) -> PublicKeys:
    """The job's public keys (one task's result: each worker fetches them once)."""
    return sealed.open()


def local_round(spec: RoundSpec, public: PublicKeys, weights: list[wire.Wire], X: Any, y: Any, seed: bytes,
                weight: float = 1.0) -> dict:
    """Train ``(X, y)`` from ``weights`` on this worker; its weighted trained weights, sealed, and what it cost.

    Args:
        spec: the run's shared settings.
        public: the job's public keys.
        weights: the current parameters, sealed, in ``model.parameters()`` order.
        X, y: this worker's chunk of the round (plaintext).
        seed: the task's seed (see the module docstring).
        weight: this chunk's share of the round's rows (FedAvg), ``n_k / N``.

    Returns:
        ``trained`` (``weight`` times each trained parameter, sealed, in its received
        layout: :func:`contribution`), ``rows``, ``refreshes``,
        ``requests``, ``bytes`` (exchanged with the key service), ``retries`` (its
        transport retries), ``seconds`` and ``cpu_seconds`` of the task, ``pid``.
    """
    start, cpu = time.perf_counter(), time.process_time()
    scheme = make_scheme(public.scheme, public.params)
    scheme.set_public_keys(public)
    model = spec.build(*[EncTensor(scheme, w.open()) for w in weights])
    layouts = [scheme.layout_of(p.value.ct) for p in model.parameters()]  # the ones the average needs
    holder = ReplayKeyHolder(spec.address, scheme, public.key_id, seed=seed, job=spec.job, tls_dir=spec.tls_dir,
                             per_request=spec.per_request)
    try:
        history = fit(model, X, y, keyholder=holder, monitor=False, **spec.fit_args)
        trained = [wire.Wire(contribution(holder, p.value.ct, layout, weight, spec.fit_args.get("value_bound")))
                   for p, layout in zip(history.model.parameters(), layouts)]
    finally:
        holder.close()
    return {"trained": trained, "rows": count_rows(X, "X"), "refreshes": holder.refresh_rounds,
            "requests": holder.requests, "bytes": holder.bytes_exchanged, "retries": holder.retries, "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu, "pid": os.getpid()}


__all__ = ["AcceptInsecurePlugin", "MASK_DOMAIN", "REQUEST_DOMAIN", "ReplayKeyHolder", "RoundSpec", "SEED_BYTES",
           "contribution", "local_round", "open_public"]
