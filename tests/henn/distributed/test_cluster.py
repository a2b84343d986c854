"""Which clusters henn runs on: local on loopback, TLS with Dask's security, nothing unprotected, clear errors."""
from __future__ import annotations

import socket
import time

import pytest

distributed = pytest.importorskip("distributed")
import dask  # noqa: E402
from distributed.security import Security  # noqa: E402

import he_core  # noqa: E402
from henn.distributed import cluster as C  # noqa: E402


def test_addresses_are_checked():
    assert C.resolve("local") == "local"
    assert C.resolve("tls://scheduler.example:8786") == "tls://scheduler.example:8786"
    assert C.resolve("tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    assert C.resolve("tcp://localhost:8786") == "tcp://localhost:8786"
    assert C.resolve("tcp://[::1]:8786") == "tcp://[::1]:8786"
    with pytest.raises(C.ClusterError, match="loopback address only"):
        C.resolve("tcp://10.0.0.5:8786")
    with pytest.raises(C.ClusterError, match="loopback address only"):
        C.resolve("tcp://0.0.0.0:8786")  # every interface is not loopback
    with pytest.raises(C.ClusterError, match="not tls:// or loopback"):
        C.resolve("ws://127.0.0.1:8786")
    with pytest.raises(C.ClusterError, match="name the protocol"):
        C.resolve("10.0.0.5:8786")
    with pytest.raises(C.ClusterError, match="HOST:PORT"):
        C.resolve("tls://scheduler.example")
    assert issubclass(C.ClusterError, he_core.HEError) and issubclass(C.ClusterError, ValueError)


def test_dasks_scheduler_address_setting_is_the_default():
    with dask.config.set({"scheduler-address": None}):
        assert C.resolve(None) == "local"
    with dask.config.set({"scheduler-address": "tls://sched.example:8786"}):
        assert C.resolve(None) == "tls://sched.example:8786"
    with dask.config.set({"scheduler-address": "tcp://192.168.1.9:8786"}):
        with pytest.raises(C.ClusterError, match="loopback"):
            C.Cluster(None)


def test_local_clusters_never_oversubscribe_the_cores():
    with pytest.raises(C.ClusterError, match="exceed the"):
        C.Cluster("local", workers=C.cores() + 1)
    with pytest.raises(C.ClusterError, match="exceed the"):
        C.Cluster("local", workers=1, threads_per_worker=C.cores() + 1)
    with pytest.raises(C.ClusterError, match="positive integer"):
        C.Cluster("local", workers=0)
    with pytest.raises(C.ClusterError, match="applies to a local cluster"):
        C.Cluster("tls://sched.example:8786", workers=2)


def test_tls_needs_certificates_from_dasks_configuration():
    with dask.config.set({"distributed.comm.tls.ca-file": None, "distributed.comm.tls.client.cert": None}):
        with pytest.raises(C.ClusterError, match="lacks distributed.comm.tls.ca-file"):
            C.Cluster("tls://127.0.0.1:8786", timeout=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_is_a_clear_error_not_a_hang():
    start = time.perf_counter()
    with pytest.raises(C.ClusterUnreachableError, match="cannot reach the Dask scheduler at tcp://127.0.0.1"):
        C.Cluster(f"tcp://127.0.0.1:{free_port()}", timeout=1)
    assert time.perf_counter() - start < 10
    assert issubclass(C.ClusterUnreachableError, he_core.HEError)


def test_a_tls_cluster_is_reached_with_its_certificates_only():
    """A scheduler that speaks TLS only: the right certificates connect, a plain client does not."""
    security = Security.temporary()  # a throwaway CA and certificate, as a user's TLS files would be
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tls://",
                                  host="127.0.0.1", security=security, dashboard_address=None) as local:
        assert local.scheduler_address.startswith("tls://127.0.0.1:")
        with C.Cluster(local.scheduler_address, security=security, timeout=5) as cluster:
            assert len(cluster.workers()) == 1
            assert cluster.client.submit(sum, [1, 2]).result(timeout=10) == 3
        port = local.scheduler_address.rsplit(":", 1)[1]
        with pytest.raises(C.ClusterUnreachableError):  # a plaintext client gets no answer from it
            C.Cluster(f"tcp://127.0.0.1:{port}", timeout=1)


def test_a_local_cluster_listens_on_loopback_only():
    psutil = pytest.importorskip("psutil")
    import os

    with C.Cluster("local", workers=1) as cluster:
        pids = {os.getpid(), *cluster.client.run(os.getpid).values()}
        listening = [c.laddr for c in psutil.net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN and c.pid in pids]
        assert len(listening) >= 3  # scheduler, nanny, worker (and their HTTP health checks)
        assert all(C.is_loopback(addr.ip) for addr in listening), listening


def test_local_workers_keep_glibcs_adaptive_allocator(monkeypatch):
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_, which made answers ~1.6x slower in a worker; henn's workers
    (and the driver's own environment, where the nanny would leak it) go without it."""
    import os

    monkeypatch.delenv(C.TRIM_VARIABLE, raising=False)
    with C.Cluster("local", workers=1) as cluster:
        seen = cluster.client.run(lambda: os.environ.get(C.TRIM_VARIABLE))
        assert list(seen.values()) == [None]
        assert C.TRIM_VARIABLE not in os.environ


def test_local_workers_run_the_native_kernels_on_their_own_threads_only():
    """Each worker's he_core pool gets the worker's threads, not the machine's cores (no oversubscription)."""
    if C.cores() < 2:
        pytest.skip("one core: a worker's pool has one thread whatever the setting")
    with C.Cluster("local", workers=1, threads_per_worker=1) as cluster:
        seen = cluster.client.run(_native_threads)
        assert list(seen.values()) == [1]


def _native_threads() -> int:
    from he_core import threads

    return threads.get_threads()
