"""Data-parallel encrypted-weight training on a Dask cluster: synchronous rounds, updates averaged encrypted.

The driver holds the encrypted model and public keys only. Each **round** gives every
worker the current weights (sealed in the project's format) and its next chunk of
``round_rows`` rows from its own shard (``K`` contiguous, disjoint, near-equal parts of
the data, as ``--part K/M``); the worker trains the chunk with :func:`~henn.training.fit.fit`
from those weights, refreshing through the owner's key service, and returns its trained
weights ``W_k`` (:mod:`henn.distributed.training_worker`). When every worker's update of
the round is in, the driver averages them homomorphically, each weighted by its chunk's
share of the round's rows (a plaintext scalar product, made by the worker where a masked
refresh is at hand to restore a leveled scheme's level and scale; then additions):

    W <- sum_k (n_k / N) W_k  =  W + sum_k (n_k / N) (W_k - W)

which is FedAvg. The driver sums the trained weights rather than the deltas ``W_k - W``:
the value is the same, but a scheme that tracks a noise *bound* per ciphertext (``vhe``)
charges the delta form the bound of ``W`` three times over per round (``W`` plus each
``-W``), doubling it every round until an addition is refused (measured: the 20,000-review
IMDB run stopped that way after about 20 rounds); the weighted sum's bound stays that of
one worker's weights. With one review per worker and round it is exactly one process's
mini-batch SGD over the round's ``K`` reviews (the mean of their gradients): ``K`` is the
*effective batch* a one-process comparison uses (:func:`same_batch_order`). The weights
are never decrypted; the key service decrypts masked values only.

Faults: a round's update is applied only after every worker's is gathered, so a round is
all or nothing. A worker that dies mid-round has its task re-run by Dask on another worker
from the scheduler's copy of its arguments (the weights' sealed bytes and the task's
seed); the re-run repeats its requests byte for byte, and the owner's service answers
them from its cache: no budget spent twice, no second masked view, no update lost or
added twice. A round Dask gives up on raises :class:`DistributedTrainingError` with
the model as it was before that round.

Costs and measurements: docs/scaling.md ("Data-parallel training").
"""
from __future__ import annotations

import dataclasses
import math
import time
import uuid
import warnings
from typing import Any, Callable, Sequence

import numpy as np

import he_core
from distributed import KilledWorker

from ..module import Sequential
from ..tensor import EncTensor
from ..training.batches import as_targets, count_rows, take_rows
from . import wire
from .cluster import Cluster, ClusterError
from .training_worker import SEED_BYTES, AcceptInsecurePlugin, RoundSpec, local_round, open_public


class DistributedTrainingError(he_core.HEError, RuntimeError):
    """A round could not be completed (the model keeps the weights of the rounds before it)."""


@dataclasses.dataclass
class ClusterTrainReport:
    """What a :func:`train_on_cluster` run did and cost.

    Attributes:
        model: the trained model (encrypted; updated in place).
        workers: tasks per round (the cluster's workers at the start).
        rounds: rounds run; ``rows``: rows trained in all (epochs included).
        seconds: wall time of the rounds; ``driver_seconds``: the driver's own part
            (sealing the weights, opening and averaging the workers' weights).
        worker_seconds, worker_cpu_seconds: the tasks' wall and CPU time, summed.
        refreshes, requests: masked refreshes and key-service requests the tasks made
            (a re-run task's replays included).
        weight_bytes, update_bytes: sealed weights per round, and every update the workers returned.
        key_bytes: the public keys (sent once per worker).
        rounds_log: per round: its rows, seconds and the tasks' pids.
    """

    model: Sequential
    workers: int
    rounds: int
    rows: int
    seconds: float
    driver_seconds: float
    worker_seconds: float
    worker_cpu_seconds: float
    refreshes: int
    requests: int
    weight_bytes: int
    update_bytes: int
    key_bytes: int
    rounds_log: list[dict] = dataclasses.field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("model", "rounds_log")}
        out["rows_per_s"] = self.rows_per_s
        return out


def shards(n: int, workers: int) -> list[np.ndarray]:
    """``workers`` contiguous, disjoint, near-equal row ranges of ``range(n)`` (as ``--part K/M``)."""
    return [np.arange(n * k // workers, n * (k + 1) // workers) for k in range(workers)]


def round_weights(counts: Sequence[int]) -> list[float]:
    """Each task's weight ``n_k / N``: its chunk's share of the round's rows (FedAvg)."""
    total = sum(counts)
    return [c / total for c in counts]


def same_batch_order(n: int, workers: int) -> np.ndarray:
    """The row order in which one process's mini-batches of ``workers`` rows are the cluster's rounds of one row each.

    Row ``i`` of every shard, then row ``i + 1`` of every shard...: with ``round_rows=1``
    the cluster computes exactly ``fit(X[order], y[order], batch_size=workers,
    shuffle=False)``; with more rows per round it is the same effective batch, each worker
    taking several local steps between averages.
    """
    parts = shards(n, workers)
    longest = max(len(p) for p in parts)
    return np.array([p[i] for i in range(longest) for p in parts if i < len(p)], dtype=np.int64)


def train_on_cluster(cluster: Cluster, model: Sequential, X: Any, y: Any, *, keyservice: str,
                     build: Callable[..., Sequential], fit_args: dict, round_rows: int, epochs: int = 1,
                     job: dict | None = None, tls_dir: str | None = None, connection_per_request: bool = True,
                     allow_insecure: bool = False, rng: he_core.RandomSource | None = None,
                     on_round: Callable[[dict], None] | None = None) -> ClusterTrainReport:
    """Train ``model`` data-parallel on the cluster's workers, in synchronous rounds.

    Args:
        cluster: where to train.
        model: the encrypted model (parameters under the job's public keys); updated in place.
        X, y: the rows (array or :class:`~henn.embedding.Bags`) and targets, plaintext.
        keyservice: the owner's key service, as the workers reach it (``unix:PATH`` on
            their machine, or ``tls://HOST:PORT``).
        build: a module-level function making the model from its parameters (pickled by reference).
        fit_args: the per-task :func:`~henn.training.fit.fit` arguments (``lr``, ``batch_size``,
            ``loss``, ``shuffle``...; ``epochs`` must be 1 or absent: a task trains its chunk once).
        round_rows: rows each worker trains per round.
        epochs: passes over the data (the same order each pass).
        job: the job's public record, checked against the service's greeting.
        tls_dir: the trainer's TLS files, on the workers, for a ``tls://`` service.
        connection_per_request: a connection per request, as ``henn serve-keys`` needs
            (it serves one connection at a time); ``False`` for a service that serves
            them side by side (:class:`~henn.keyservice.local_job.SharedKeyService`).
        allow_insecure: accept an insecure parameter set (tests, ``vhe``).
        rng: source of the task seeds (default the OS CSPRNG; tests may seed).
        on_round: called with each round's log entry.

    Returns:
        A :class:`ClusterTrainReport`.

    Raises:
        ValueError: bad sizes or settings, or an insecure scheme without ``allow_insecure``.
        ClusterError: the cluster has no workers.
        DistributedTrainingError: Dask gave up on a round.
    """
    params = model.parameters()
    if not params:
        raise ValueError("cannot train on the cluster: the model has no parameters")
    scheme = params[0].value.scheme
    _check_settings(scheme, fit_args, round_rows, epochs, allow_insecure)
    n = count_rows(X, "X")
    if count_rows(y, "y") != n:
        raise ValueError(f"cannot train on the cluster: X has {n} rows, y has {count_rows(y, 'y')}")
    y = as_targets(y)
    workers = len(cluster.workers())
    if not workers:
        raise ClusterError(f"cannot train: the cluster at {cluster.address} has no workers")
    if allow_insecure:  # this process opens the workers' updates, the workers the weights and keys
        wire.accept_insecure(True)
        cluster.client.register_plugin(AcceptInsecurePlugin(), name=AcceptInsecurePlugin.name)
    rng = rng or he_core.OsRandom()
    spec = RoundSpec(keyservice, job, tls_dir, build, {**fit_args, "epochs": 1}, connection_per_request,
                     allow_insecure)
    client, run = cluster.client, uuid.uuid4().hex[:12]
    sealed_public = wire.Wire(scheme.public_keys)
    public = client.submit(open_public, sealed_public, key=f"henn-train-public-{run}", pure=False)
    parts = shards(n, workers)
    per_epoch = max(math.ceil(len(p) / round_rows) for p in parts)
    report = ClusterTrainReport(model, workers, 0, 0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0, 0, len(sealed_public))
    start = time.perf_counter()
    try:
        for _epoch in range(epochs):
            for r in range(per_epoch):
                chunks = [p[r * round_rows:(r + 1) * round_rows] for p in parts]
                chunks = [c for c in chunks if c.size]
                entry = _round(client, run, report, spec, public, scheme, X, y, chunks, rng)
                if on_round is not None:
                    on_round(entry)
    finally:
        client.cancel([public])
    report.seconds = time.perf_counter() - start
    return report


def _check_settings(scheme: he_core.Scheme, fit_args: dict, round_rows: int, epochs: int,
                    allow_insecure: bool) -> None:
    for name, value in (("round_rows", round_rows), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"cannot train on the cluster: {name} must be a positive integer, got {value!r}")
    if fit_args.get("epochs", 1) != 1:
        raise ValueError("cannot train on the cluster: pass epochs to train_on_cluster, not in fit_args (a task "
                         "trains its chunk once)")
    if {"keyholder", "monitor", "checkpoint", "resume"} & set(fit_args):
        raise ValueError("cannot train on the cluster: fit_args may not set keyholder, monitor, checkpoint or "
                         "resume (the workers refresh through the key service; rounds replace checkpoints)")
    if scheme.params.security_bits == 0 and not allow_insecure:
        raise ValueError(f"cannot train on the cluster: the {scheme.name} parameters give no security; pass "
                         "allow_insecure=True for tests")


def _round(client: Any, run: str, report: ClusterTrainReport, spec: RoundSpec, public: Any,
           scheme: he_core.Scheme, X: Any, y: Any, chunks: list[np.ndarray], rng: he_core.RandomSource) -> dict:
    """One synchronous round: dispatch, gather every worker's update, then (only then) average them."""
    number = report.rounds
    t0 = time.perf_counter()
    params = report.model.parameters()
    sealed = [wire.Wire(p.value.ct) for p in params]
    seeds = [rng.bytes(SEED_BYTES) for _ in chunks]
    driver = time.perf_counter() - t0
    with warnings.catch_warnings():  # the weights and chunks ride in the graph on purpose: a re-run needs them
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        weights = client.submit(_same, sealed, key=f"henn-train-weights-{run}-{number}", pure=False)
        futures = [client.submit(local_round, spec, public, weights, take_rows(X, c), take_rows(y, c), seed, share,
                                 key=f"henn-train-round-{run}-{number}-{k}", pure=False)
                   for k, (c, seed, share) in enumerate(zip(chunks, seeds, round_weights([c.size for c in chunks])))]
    try:
        results = client.gather(futures)
    except KilledWorker as exc:
        raise DistributedTrainingError(f"cannot finish round {number}: Dask gave up on a task after it took down "
                                       f"workers repeatedly ({exc}); the model holds the weights of the "
                                       f"{number} rounds before it") from exc
    finally:
        client.cancel(futures + [weights])
    t1 = time.perf_counter()
    _apply(scheme, params, results)
    driver += time.perf_counter() - t1
    rows = sum(r["rows"] for r in results)
    report.rounds += 1
    report.rows += rows
    report.driver_seconds += driver
    report.worker_seconds += sum(r["seconds"] for r in results)
    report.worker_cpu_seconds += sum(r["cpu_seconds"] for r in results)
    report.refreshes += sum(r["refreshes"] for r in results)
    report.requests += sum(r["requests"] for r in results)
    report.weight_bytes = sum(len(s) for s in sealed)
    report.update_bytes += sum(len(w) for r in results for w in r["trained"])
    entry = {"round": number, "rows": rows, "seconds": time.perf_counter() - t0, "pids": [r["pid"] for r in results]}
    report.rounds_log.append(entry)
    return entry


def _same(sealed: list[wire.Wire]) -> list[wire.Wire]:
    """The round's sealed weights as one task's result: fetched by each worker, recomputed if lost."""
    return sealed


def _apply(scheme: he_core.Scheme, params: list[Any], results: list[dict]) -> None:
    """``W <- sum_k (w_k W_k)`` per parameter (the workers made the products); nothing is assigned until all are summed.

    Raises:
        DistributedTrainingError: the weighted sum left a parameter at a lower level than
            it had (a leveled scheme pays a level for the product and the alignment of
            scales); the model is left as it was.
    """
    updated = []
    for i, p in enumerate(params):
        total = None
        for result in results:
            share = result["trained"][i].open()
            total = share if total is None else scheme.add(total, share)
        before, after = scheme.budget(p.value.ct), scheme.budget(total)
        if before.get("kind") == "levels" and after["remaining"] < before["remaining"]:
            raise DistributedTrainingError(
                f"cannot average the round's updates on {scheme.name}: they arrived a level below the weights "
                f"(level {before['remaining']} -> {after['remaining']}), which the weights cannot pay round after "
                "round; the model is left as it was before this round")
        updated.append(total)
    for p, ct in zip(params, updated):
        p.value = EncTensor(p.value.scheme, ct)


__all__ = ["ClusterTrainReport", "DistributedTrainingError", "round_weights", "same_batch_order", "shards",
           "train_on_cluster"]
