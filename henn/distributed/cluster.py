"""Which Dask cluster a job runs on: a local one on the loopback interface, or an existing one over TLS.

A Dask scheduler runs whatever code its clients send, on workers that hold the job's
public keys, the server's weights and the clients' ciphertexts. So an existing cluster
is reached only over ``tls://`` with Dask's own security configuration
(:class:`distributed.security.Security`: the CA, the client certificate and key the
user was given, from ``distributed.comm.tls.*`` in Dask's configuration or passed in),
and plain ``tcp://`` only to a loopback address (any local user can join such a
cluster: see docs/threat_model.md). The default is a :class:`distributed.LocalCluster`
on 127.0.0.1 over TLS with a throwaway CA and certificate made for it
(:meth:`Security.temporary`, held in memory by this process and its workers only), so
other local users cannot join it; no dashboard, one single-threaded worker process per
core: ``workers x threads`` never exceeds the cores.

Whatever the cluster, the client reads results with Dask's and msgpack's deserializers
only (no pickle). That does not make the scheduler harmless: Dask's wire protocol
unpickles some message parts whatever the client asks (errors among them), so the
process that runs a :class:`Cluster` must hold no secret: :mod:`.isolation` runs it in a
child process of the key holder.

Scheduling, retries and data movement are Dask's; this module only chooses and checks.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from typing import Any

import dask
import distributed
from distributed.comm import parse_address
from distributed.comm.addressing import parse_host_port
from distributed.security import Security

import he_core
from he_core import threads as native_threads

#: Seconds to wait for a scheduler before calling it unreachable.
CONNECT_TIMEOUT = 10.0
LOCAL = "local"
#: What the local cluster's HTTP servers answer: a health check.
HTTP_ROUTES = ["distributed.http.health"]
#: The glibc setting Dask's nanny puts in its workers' environment; henn's local workers keep glibc's default.
TRIM_VARIABLE = "MALLOC_TRIM_THRESHOLD_"
#: How the client reads results: Dask's own serializers (henn's registered ones) and msgpack, never pickle.
DESERIALIZERS = ["dask", "msgpack"]


class ClusterError(he_core.HEError, ValueError):
    """A cluster that cannot be used: a bad address, an unprotected one, more workers than cores."""


class ClusterUnreachableError(he_core.HEError, ConnectionError):
    """The scheduler did not answer (or refused the TLS handshake) within the timeout."""


def cores() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve(spec: str | None) -> str:
    """The cluster to use: ``"local"`` or a scheduler address.

    Args:
        spec: ``"local"``, an address (``tls://HOST:PORT``, ``tcp://127.0.0.1:PORT``), or
            ``None`` for Dask's ``scheduler-address`` setting (``DASK_SCHEDULER_ADDRESS``),
            else ``"local"``.

    Returns:
        ``"local"`` or the checked address.

    Raises:
        ClusterError: an address that is neither TLS nor loopback TCP, or malformed.
    """
    if spec is None:
        spec = dask.config.get("scheduler-address", None) or LOCAL
    if not isinstance(spec, str) or not spec.strip():
        raise ClusterError(f"cannot use the cluster {spec!r}: expected 'local' or a scheduler address")
    spec = spec.strip()
    if spec == LOCAL:
        return spec
    if "://" not in spec:
        raise ClusterError(f"cannot use the cluster {spec!r}: name the protocol (tls://HOST:PORT, or tcp:// to a "
                           "loopback address)")
    protocol, location = parse_address(spec)
    try:
        host, port = parse_host_port(location)
    except ValueError as exc:
        raise ClusterError(f"cannot use the cluster {spec!r}: expected {protocol}://HOST:PORT ({exc})") from None
    if not host or not port:
        raise ClusterError(f"cannot use the cluster {spec!r}: expected {protocol}://HOST:PORT")
    if protocol == "tls":
        return spec
    if protocol == "tcp":
        if is_loopback(host):
            return spec
        raise ClusterError(f"cannot use the cluster {spec!r}: plain tcp:// is accepted to a loopback address only; "
                           "anyone who reaches an unauthenticated scheduler runs code on its workers (use tls://)")
    raise ClusterError(f"cannot use the cluster {spec!r}: protocol {protocol!r} is not tls:// or loopback tcp://")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface (by literal address, or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def tls_security(security: Security | None = None) -> Security:
    """The TLS configuration for a ``tls://`` scheduler: ``security``, else Dask's configured one.

    Raises:
        ClusterError: no CA file, client certificate or key is configured.
    """
    security = Security(require_encryption=True) if security is None else security
    missing = [name for name, value in (("distributed.comm.tls.ca-file", security.tls_ca_file),
                                        ("distributed.comm.tls.client.cert", security.tls_client_cert))
               if not value]
    if missing:
        raise ClusterError("cannot connect over TLS: Dask's security configuration lacks " + ", ".join(missing) +
                           " (set them in Dask's configuration, e.g. DASK_DISTRIBUTED__COMM__TLS__CA_FILE, or pass "
                           "the files: --tls-ca, --tls-cert, --tls-key)")
    return security


class Cluster:
    """A Dask client on a local cluster it owns, or on an existing scheduler; a context manager.

    Args:
        spec: see :func:`resolve`.
        workers: worker processes of a local cluster (default: one per core).
        threads_per_worker: threads of each local worker (default 1).
        security: TLS configuration for a ``tls://`` scheduler (default: Dask's configuration).
        timeout: seconds to wait for the scheduler.

    Raises:
        ClusterError: a bad address, ``workers`` for an existing cluster, or more
            ``workers x threads_per_worker`` than cores.
        ClusterUnreachableError: the scheduler did not answer within ``timeout``.
    """

    def __init__(self, spec: str | None = LOCAL, *, workers: int | None = None, threads_per_worker: int = 1,
                 security: Security | None = None, timeout: float = CONNECT_TIMEOUT):
        self.address = resolve(spec)
        self.local = self.address == LOCAL
        self._cluster: Any = None
        if self.local:
            self._cluster = _local_cluster(workers, threads_per_worker)
            target, security = self._cluster, self._cluster.security
        else:
            if workers is not None:
                raise ClusterError(f"cannot choose the workers of the existing cluster at {self.address}: the number "
                                   "of workers applies to a local cluster")
            security = tls_security(security) if self.address.startswith("tls://") else None
            target = self.address
        try:
            if not self.local:
                probe(self.address, security, timeout)
            self.client = distributed.Client(target, security=security, timeout=timeout, set_as_default=False,
                                             deserializers=DESERIALIZERS)
        except (OSError, TimeoutError) as exc:
            self._close_cluster()
            raise ClusterUnreachableError(f"cannot reach the Dask scheduler at {self.address} within {timeout:g} s: "
                                          f"{exc}") from None
        except BaseException:
            self._close_cluster()
            raise

    def workers(self) -> dict[str, int]:
        """Worker address -> its threads, as the scheduler sees them now."""
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return {address: int(w.get("nthreads", 1)) for address, w in info.items()}

    def close(self) -> None:
        """Close the client, then the local cluster if this object made it."""
        try:
            self.client.close()
        finally:
            self._close_cluster()

    def _close_cluster(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Cluster({self.address!r})"


def probe(address: str, security: Security | None, timeout: float) -> None:
    """Open one connection to the scheduler and complete Dask's handshake within ``timeout``, then close it.

    Dask's own connect timeout ends with the TCP (and TLS) connection: its handshake
    read waits forever on a listener that accepts and stays silent.

    Raises:
        TimeoutError, OSError: no scheduler answered in time.
    """
    args = security.get_connection_args("client") if security is not None else {}

    async def handshake() -> None:
        comm = await distributed.comm.connect(address, timeout=timeout, **args)
        await comm.close()

    async def bounded() -> None:
        await asyncio.wait_for(handshake(), timeout)

    asyncio.run(bounded())


def _local_cluster(workers: int | None, threads_per_worker: int) -> distributed.LocalCluster:
    available = cores()
    if isinstance(threads_per_worker, bool) or not isinstance(threads_per_worker, int) or threads_per_worker < 1:
        raise ClusterError(f"cannot start a local cluster: threads per worker must be a positive integer, got "
                           f"{threads_per_worker!r}")
    if workers is None:
        workers = max(1, available // threads_per_worker)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ClusterError(f"cannot start a local cluster: workers must be a positive integer, got {workers!r}")
    if workers * threads_per_worker > available:
        raise ClusterError(f"cannot start a local cluster: {workers} workers x {threads_per_worker} threads exceed "
                           f"the {available} cores this process may use")
    # The native kernels and the numeric libraries get the worker's threads, no more: he_core would
    # otherwise size its pool by the machine's cores in every worker (2 workers x 2 threads on 2 cores).
    env = {native_threads.ENV: str(threads_per_worker), "NUMBA_NUM_THREADS": str(threads_per_worker),
           "OMP_NUM_THREADS": str(threads_per_worker)}
    # Dask's HTTP servers always listen; on loopback, on a free port, and serving a health check only (no
    # task or worker pages for other local users to read, no fight over port 8787).
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers (and its own environment), which turns off
    # glibc's adaptive mmap threshold: every fresh ciphertext-sized array is then a new mapping whose pages
    # fault in again, and the answers ran ~1.6x slower in a worker than in one process (docs/scaling.md).
    with dask.config.set({"distributed.scheduler.http.routes": HTTP_ROUTES,
                          "distributed.worker.http.routes": HTTP_ROUTES,
                          f"distributed.nanny.pre-spawn-environ.{TRIM_VARIABLE}": None}):
        # TLS with a CA and certificate made now, in memory: only this process and its workers hold them
        return distributed.LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                                        host="127.0.0.1", protocol="tls://", security=Security.temporary(),
                                        dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR, env=env)


__all__ = ["CONNECT_TIMEOUT", "Cluster", "ClusterError", "ClusterUnreachableError", "DESERIALIZERS", "LOCAL", "cores",
           "is_loopback", "probe", "resolve", "tls_security"]
