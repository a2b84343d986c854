"""Encrypted batch inference on a Dask cluster: the server role spread over workers.

Roles are those of :mod:`henn.deploy`. The **workers** together are the server: each
builds one :class:`~henn.deploy.InferenceServer` from the owner's bundle when it starts
(:class:`InferencePlugin`, a Dask worker plugin, so a worker that replaces a dead one
builds its own), holds the client's public keys and answers encrypted batches; no
worker holds a secret key. The **driver** (:class:`ClusterServer`) dispatches one task
per encrypted batch and enforces the bundle's answer budget; it holds no secret key
either, and must not share its process with one (:mod:`.isolation` runs it in a child
of the key holder: Dask may unpickle what the cluster sends).

Why the budget is the driver's: the answers' flooding is sized for
``bundle.queries_per_key`` answers in all. Each worker's server counts only what it
answered itself, so N workers would allow N times the budget; the driver counts every
batch, before it dispatches any of them, and refuses a request that would exceed it
(a batch lost with a dead worker still counts: the error is on the safe side). A task
Dask re-runs after a worker dies answers the same query again, but only one answer per
query is ever gathered, so the client still receives one answer per batch counted.

Data movement: each query travels inside its task's arguments, sealed in the
project's format (:class:`~henn.distributed.wire.Wire`), so the scheduler keeps what it
needs to re-run the task elsewhere; the public keys are one task's result, fetched by
each worker once and recomputed if their holder dies; answers come back through the
registered Dask serializers (the client reads no pickle, and every answer must be a
ciphertext under the client's key). See docs/scaling.md for the bytes and the driver's time.
"""
from __future__ import annotations

import dataclasses
import gc
import inspect
import hashlib
import threading
import uuid
import warnings
from typing import Any, Sequence

import numpy as np

import he_core
from distributed import KilledWorker, get_worker
from distributed.diagnostics.plugin import WorkerPlugin
from he_core import Ciphertext, PublicKeys

from ..deploy import DeployError, InferenceServer, Query, ServerBundle, check_security
from . import wire
from .cluster import Cluster, ClusterError

PLUGIN_PREFIX = "henn-inference-"


class InferencePlugin(WorkerPlugin):
    """Builds a worker's :class:`~henn.deploy.InferenceServer` once, when the worker starts.

    What a worker receives is the server's: the bundle (circuit and weights in the
    clear), later the client's public keys and its ciphertexts.

    Args:
        bundle_bytes: the owner's bundle in its file format.
        allow_insecure: accept insecure parameter sets (tests and teaching only).
    """

    def __init__(self, bundle_bytes: bytes, allow_insecure: bool = False):
        self.bundle_bytes = bytes(bundle_bytes)
        self.allow_insecure = bool(allow_insecure)
        self.name = plugin_name(self.bundle_bytes, self.allow_insecure)
        self.server: InferenceServer | None = None
        self._lock = threading.Lock()
        self._keys: dict[str, PublicKeys] = {}

    def __getstate__(self) -> dict:
        # only the bundle crosses: the server, its keys and the lock are built on the worker
        return {"bundle_bytes": self.bundle_bytes, "allow_insecure": self.allow_insecure, "name": self.name}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["bundle_bytes"], state["allow_insecure"])

    def setup(self, worker: Any = None) -> None:
        """Build the server (Dask calls this on each worker, new ones included).

        Args:
            worker: the Dask worker (unused: the server lives on this plugin).
        """
        if self.allow_insecure:  # only ever switched on: other jobs on this worker may have asked for it
            wire.accept_insecure(True)
        self.server = InferenceServer(ServerBundle.from_bytes(self.bundle_bytes), allow_insecure=self.allow_insecure)

    def answer(self, public: PublicKeys, query: Ciphertext, count: int) -> Ciphertext:
        """One sanitised answer; evaluations on a worker run one at a time.

        The lock is there because a scheme instance reuses scratch buffers (as
        ``henn serve`` evaluates one query at a time): a worker's extra threads would
        wait, not compute.

        Raises:
            DeployError: the server refuses the keys or the query.
        """
        if self.server is None:
            raise DeployError("cannot answer: the worker's inference server was not set up")
        with self._lock:
            if self._keys.get(public.key_id) is not public:  # the same dependency object: registered already
                self.server.register(public)
                self._keys[public.key_id] = public
            return self.server.answer(query, count)


def plugin_name(bundle_bytes: bytes, allow_insecure: bool) -> str:
    """The plugin's name on the cluster: one per bundle (and insecure setting)."""
    digest = hashlib.sha256(bytes(bundle_bytes)).hexdigest()[:16]
    return f"{PLUGIN_PREFIX}{digest}{'-insecure' if allow_insecure else ''}"


def _open_public(sealed: wire.Wire) -> PublicKeys:
    return sealed.open()


def _answer(name: str, public: PublicKeys, sealed: wire.Wire, count: int) -> Ciphertext:
    plugin = get_worker().plugins.get(name)
    if plugin is None:
        raise DeployError(f"cannot answer: this worker has no {name} plugin")
    return plugin.answer(public, sealed.open(), count)


class ClusterServer:
    """The server role on a cluster: one task per encrypted batch, the answer budget kept here.

    Args:
        cluster: the :class:`~henn.distributed.cluster.Cluster` to run on.
        bundle: the owner's bundle.
        allow_insecure: accept insecure parameter sets (tests and teaching only).
        answered_before: batches this bundle answered before (its state file), counted
            against ``bundle.queries_per_key``.

    Raises:
        DeployError: an insecure bundle without ``allow_insecure``.
    """

    def __init__(self, cluster: Cluster, bundle: ServerBundle, *, allow_insecure: bool = False,
                 answered_before: int = 0):
        check_security(bundle, allow_insecure)
        if isinstance(answered_before, bool) or not isinstance(answered_before, int) or answered_before < 0:
            raise DeployError(f"cannot serve on the cluster: answered_before must be a count, got {answered_before!r}")
        self.cluster, self.bundle = cluster, bundle
        self._answered = answered_before
        if allow_insecure:  # this process receives the answers; never switched off under another job's feet
            wire.accept_insecure(True)
        plugin = InferencePlugin(bundle.to_bytes(), allow_insecure)
        self.plugin = plugin.name
        cluster.client.register_plugin(plugin, name=plugin.name)

    def answered(self) -> int:
        """Batches counted against the bundle's budget, earlier runs included."""
        return self._answered

    def answer(self, public: PublicKeys, queries: Sequence[Query]) -> list[Ciphertext]:
        """The sanitised answers of ``queries``, in order, computed on the workers.

        Args:
            public: the client's public keys (each worker fetches them once).
            queries: encrypted batches under those keys.

        Returns:
            One answer per query.

        Raises:
            DeployError: the budget would be exceeded (nothing is dispatched), a query
                that is not a batch under ``public``'s key, a worker's refusal, or a batch
                that killed its workers more often than Dask allows
                (``distributed.scheduler.allowed-failures``).
            ClusterError: the cluster has no workers (instead of waiting for one).
        """
        if not isinstance(public, PublicKeys):
            raise DeployError(f"cannot answer: expected the client's public keys, got {type(public).__name__}")
        queries = list(queries)
        batch = self.bundle.batch
        for q in queries:
            if not isinstance(q, Query) or not isinstance(q.ciphertext, Ciphertext):
                raise DeployError(f"cannot answer: expected henn.deploy.Query batches, got {type(q).__name__}")
            if q.ciphertext.key_id != public.key_id:
                raise DeployError("cannot answer: a query is not under the public keys sent with it")
            if isinstance(q.count, bool) or not isinstance(q.count, int) or not 1 <= q.count <= batch:
                raise DeployError(f"cannot answer: count must lie in 1..{batch}, got {q.count!r}")
        limit = self.bundle.queries_per_key
        if self._answered + len(queries) > limit:
            raise DeployError(f"cannot answer: {len(queries)} more batches would pass the {limit} the answers' "
                              f"flooding is sized for ({self._answered} answered); the owner must issue a new bundle")
        if not queries:
            return []
        if not self.cluster.workers():
            raise ClusterError(f"cannot answer: the cluster at {self.cluster.address} has no workers")
        self._answered += len(queries)  # counted before dispatch: a batch lost on the way still counts
        client = self.cluster.client
        with warnings.catch_warnings():  # the queries ride in the graph on purpose: a re-run needs them
            warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
            keys, futures = self._submit(public, queries)
        try:
            return _checked(client.gather(futures), public)
        except KilledWorker as exc:
            raise DeployError(f"cannot answer: Dask gave up on a batch after it took down workers repeatedly "
                              f"({exc})") from exc
        finally:
            client.cancel(futures + [keys])

    def _submit(self, public: PublicKeys, queries: list[Query]) -> tuple[Any, list[Any]]:
        client, run = self.cluster.client, uuid.uuid4().hex[:12]
        keys = client.submit(_open_public, wire.Wire(public), key=f"henn-public-{public.key_id[:12]}-{run}",
                             pure=False)
        futures = [client.submit(_answer, self.plugin, keys, wire.Wire(q.ciphertext), q.count,
                                 key=f"henn-answer-{run}-{i}", pure=False) for i, q in enumerate(queries)]
        return keys, futures


def _checked(answers: list, public: PublicKeys) -> list[Ciphertext]:
    """The workers' answers if each is a ciphertext under the client's key (a worker may send anything)."""
    for i, a in enumerate(answers):
        if not isinstance(a, Ciphertext):
            raise DeployError(f"cannot answer: a worker's answer to batch {i} is a {type(a).__name__}, not a ciphertext")
        if a.key_id != public.key_id:
            raise DeployError(f"cannot answer: a worker's answer to batch {i} is not under the client's key")
    return answers


@dataclasses.dataclass
class ClusterReport:
    """What one :func:`~henn.distributed.isolation.predict_on_cluster` run cost.

    Attributes:
        outputs: ``(n, outputs)`` decrypted answers.
        workers, threads: the cluster's workers and their threads in all, at the start.
        batches: encrypted batches (tasks).
        seconds_keygen, seconds_encrypt, seconds_evaluate, seconds_decrypt, seconds_total:
            the client's key generation and encryption, dispatch to the last answer
            gathered, decryption, the whole run.
        key_bytes, query_bytes, answer_bytes: the public keys, the queries and the answers
            in the project's format (what crosses to and from the workers).
    """

    outputs: np.ndarray
    workers: int
    threads: int
    batches: int
    seconds_keygen: float
    seconds_encrypt: float
    seconds_evaluate: float
    seconds_decrypt: float
    seconds_total: float
    key_bytes: int
    query_bytes: int
    answer_bytes: int

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.pop("outputs")
        out["rows"] = int(self.outputs.shape[0])
        return out


def audit_worker(dask_worker: Any = None) -> dict[str, int]:
    """What key material this process holds: run it on every worker (``client.run(audit_worker)``).

    Args:
        dask_worker: the worker (``client.run`` passes it); ``None`` off a worker.

    Returns:
        ``secret_keys``: live :class:`he_core.SecretKey` objects; ``schemes``: live
        scheme instances; ``schemes_with_secret``: those of them that reach a secret key
        through their instance data; ``servers``: inference servers held by henn plugins;
        ``answered``: batches those servers answered.
    """
    gc.collect()
    objects = gc.get_objects()
    schemes = [o for o in objects if isinstance(o, he_core.Scheme)]
    plugins = [] if dask_worker is None else \
        [p for p in dask_worker.plugins.values() if isinstance(p, InferencePlugin)]
    return {"secret_keys": sum(isinstance(o, he_core.SecretKey) for o in objects), "schemes": len(schemes),
            "schemes_with_secret": sum(_reaches_secret(s) for s in schemes),
            "servers": sum(p.server is not None for p in plugins),
            "answered": sum(p.server.answered() for p in plugins if p.server is not None)}


def _reaches_secret(root: Any) -> bool:
    """Whether instance data reachable from ``root`` holds a secret key (modules and functions not followed)."""
    seen, stack = set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, np.ndarray, type)) \
                or inspect.ismodule(obj) or inspect.isroutine(obj):
            continue
        seen.add(id(obj))
        if isinstance(obj, he_core.SecretKey):
            return True
        stack.extend(gc.get_referents(obj))
    return False


__all__ = ["ClusterReport", "ClusterServer", "InferencePlugin", "PLUGIN_PREFIX", "audit_worker", "check_security",
           "plugin_name"]
