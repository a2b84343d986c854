"""Encrypted batch inference on a real LocalCluster: answers as in one process, one budget, no secret on workers.

The killed-worker test runs a second cluster of its own: it SIGKILLs a worker process
while it evaluates, and every batch must still come back once, correct.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import he_core  # noqa: E402
from henn.deploy import DeployError, InferenceClient, InferenceServer, ServerBundle  # noqa: E402
from henn.distributed import Cluster, ClusterProcess, ClusterServer, audit_worker, predict_on_cluster  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")


@pytest.fixture(scope="module")
def cluster():
    with Cluster("local", workers=2) as c:
        yield c


def encrypt_batches(client: InferenceClient, X: np.ndarray, rows: int):
    return [q for lo in range(0, len(X), rows) for q in client.encrypt(X[lo:lo + rows])]


def one_process(bundle: ServerBundle, client: InferenceClient, queries, allow_insecure=False) -> np.ndarray:
    server = InferenceServer(bundle, allow_insecure=allow_insecure)
    server.register(client.public)
    return np.vstack([client.decrypt(server.answer(q.ciphertext, q.count), q.rows) for q in queries])


def chain(exc: BaseException) -> list[type]:
    seen = []
    while exc is not None and type(exc) not in seen:
        seen.append(type(exc))
        exc = exc.__cause__ or exc.__context__
    return seen


@pytest.mark.parametrize("scheme,layout", [("plain", "columns"), ("vhe", "columns"), ("plain", "rows")])
def test_exact_schemes_answer_exactly_as_one_process(cluster, circuit, scheme, layout):
    bundle = ServerBundle.create(circuit, scheme, layout=layout)
    client = InferenceClient(bundle.client_info())
    X = np.random.default_rng(7).normal(0, 2, (200, 30))
    queries = encrypt_batches(client, X, 25)
    answers = ClusterServer(cluster, bundle, allow_insecure=True).answer(client.public, queries)
    assert len(answers) == len(queries) == 8
    got = np.vstack([client.decrypt(a, q.rows) for a, q in zip(answers, queries)])
    np.testing.assert_array_equal(got, one_process(bundle, client, queries, allow_insecure=True))
    np.testing.assert_allclose(got, circuit.evaluate(X), atol=1e-2 if scheme == "vhe" else 1e-9, rtol=0)


@pytest.fixture(scope="module")
def ckks_case(ckks_bundle):
    """A CKKS client and three encrypted batches of 20 rows (encryption is the slow part: done once)."""
    client = InferenceClient(ckks_bundle.client_info())
    X = np.random.default_rng(8).normal(0, 2, (60, 30))
    return client, X, encrypt_batches(client, X, 20)


@pytest.mark.slow  # the default run checks the same on the killed-worker test's answers
def test_ckks_answers_match_the_clear_model_and_one_process(cluster, circuit, ckks_bundle, ckks_case):
    client, X, queries = ckks_case
    answers = ClusterServer(cluster, ckks_bundle).answer(client.public, queries[:2])
    got = np.vstack([client.decrypt(a, q.rows) for a, q in zip(answers, queries)])
    clear = circuit.evaluate(X[:40])
    # the answers' flooding is random: both runs lie within test_deploy's bound of the clear model
    np.testing.assert_allclose(got, clear, atol=1e-2, rtol=0)
    np.testing.assert_allclose(got[:20], one_process(ckks_bundle, client, queries[:1]), atol=2e-2, rtol=0)
    assert (got.argmax(1) == clear.argmax(1)).sum() >= 39


@pytest.mark.slow  # a cluster process of its own (~10-30 s under load); test_serve's CLI run covers the path by default
def test_predict_on_cluster_reports_its_costs(circuit):
    """The key holder and the cluster's client in two processes: the same answers as one process, the same report."""
    bundle = ServerBundle.create(circuit, "vhe")
    X = np.random.default_rng(10).normal(0, 2, (90, 30))
    with pytest.raises(DeployError, match="give no security"):
        ClusterProcess(bundle, "local", workers=2)
    with ClusterProcess(bundle, "local", workers=2, allow_insecure=True) as cluster:
        report = predict_on_cluster(cluster, X, batch_rows=30)
        assert report.batches == 3 and report.workers == 2 and report.threads == 2 and report.outputs.shape == (90, 2)
        np.testing.assert_allclose(report.outputs, circuit.evaluate(X), atol=1e-2, rtol=0)
        assert report.query_bytes > report.answer_bytes > 0 and report.key_bytes > 0
        assert set(report.to_dict()) >= {"rows", "seconds_evaluate", "seconds_encrypt", "query_bytes"}
        with pytest.raises(DeployError, match="batch_rows must lie"):
            predict_on_cluster(cluster, X, batch_rows=bundle.batch + 1)
        client = InferenceClient(bundle.client_info())
        queries = encrypt_batches(client, X[:40], 20)
        answers = cluster.answer(client.public, queries)  # bytes across the pipe, loaded and checked here
        got = np.vstack([client.decrypt(a, q.rows) for a, q in zip(answers, queries)])
        np.testing.assert_array_equal(got, one_process(bundle, client, queries, allow_insecure=True))
        assert cluster.answered() == 5
        with pytest.raises(DeployError, match="not under the public keys"):  # the child's refusal, by name
            cluster.answer(InferenceClient(bundle.client_info()).public, queries[:1])
        assert len(cluster.workers()) == 2


def test_the_answer_budget_is_counted_once_for_all_workers(cluster, circuit):
    bundle = ServerBundle.create(circuit, "vhe", queries_per_key=3)
    client = InferenceClient(bundle.client_info())
    queries = encrypt_batches(client, np.zeros((4, 30)), 1)
    server = ClusterServer(cluster, bundle, allow_insecure=True)
    before = sum(a["answered"] for a in cluster.client.run(audit_worker).values())
    assert len(server.answer(client.public, queries[:2])) == 2
    # two workers with a per-worker count would answer two more each: the driver refuses before dispatch
    with pytest.raises(DeployError, match="2 more batches would pass the 3"):
        server.answer(client.public, queries[2:])
    after = sum(a["answered"] for a in cluster.client.run(audit_worker).values())
    assert after - before == 2 and server.answered() == 2
    assert len(server.answer(client.public, queries[2:3])) == 1
    with pytest.raises(DeployError, match="would pass"):
        server.answer(client.public, queries[3:])
    with pytest.raises(DeployError, match="would pass"):  # the count of earlier runs (the state file) carries over
        ClusterServer(cluster, bundle, allow_insecure=True, answered_before=3).answer(client.public, queries[:1])
    other = InferenceClient(bundle.client_info())
    with pytest.raises(DeployError, match="not under the public keys"):
        server.answer(other.public, queries[:1])


def test_workers_hold_no_secret_and_a_secret_cannot_be_sent(cluster, circuit):
    bundle = ServerBundle.create(circuit, "vhe")
    client = InferenceClient(bundle.client_info())
    ClusterServer(cluster, bundle, allow_insecure=True).answer(client.public, client.encrypt(np.ones((3, 30))))
    audits = cluster.client.run(audit_worker)
    assert len(audits) == 2
    for audit in audits.values():
        assert audit["servers"] >= 1  # every worker's plugin built its server
        assert audit["secret_keys"] == 0 and audit["schemes_with_secret"] == 0
    # one batch: the worker that answered it holds the client's scheme (which of the two is Dask's choice)
    assert max(audit["schemes"] for audit in audits.values()) >= 1
    assert audit_worker()["secret_keys"] >= 1  # the audit finds one where there is one: this process, the client's
    with pytest.raises(TypeError) as info:
        cluster.client.scatter(client._secret)
    assert he_core.KeyExportError in chain(info.value)
    with pytest.raises(TypeError) as info:
        cluster.client.submit(repr, {"inside": [client._secret]}).result(timeout=30)
    assert he_core.KeyExportError in chain(info.value)
    assert all(a["secret_keys"] == 0 for a in cluster.client.run(audit_worker).values())


def test_a_worker_killed_mid_batch_loses_and_repeats_nothing(circuit, ckks_bundle, ckks_case):
    client, X, queries = ckks_case
    with Cluster("local", workers=2) as cl:
        server = ClusterServer(cl, ckks_bundle)
        pids = cl.client.run(os.getpid)
        result: dict = {}
        worker = threading.Thread(target=lambda: result.update(answers=server.answer(client.public, queries)))
        worker.start()
        victim, deadline = None, time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            busy = [w for w, keys in cl.client.processing().items() if any("henn-answer" in k for k in keys)]
            if busy:  # a worker evaluating a batch (a few hundred ms since stop 26): kill it mid-batch
                time.sleep(0.05)
                victim = busy[-1]
            time.sleep(0.02)
        assert victim is not None, "no worker ever ran an answer"
        os.kill(pids[victim], signal.SIGKILL)
        worker.join(timeout=120)
        assert not worker.is_alive()
        assert victim not in cl.workers()  # the dead worker left; its batch ran again elsewhere
        answers = result["answers"]
    assert len(answers) == len(queries) == 3 and server.answered() == 3
    got = np.vstack([client.decrypt(a, q.rows) for a, q in zip(answers, queries)])
    clear = circuit.evaluate(X)
    np.testing.assert_allclose(got, clear, atol=1e-2, rtol=0)  # each batch answered, in its place
    assert (got.argmax(1) == clear.argmax(1)).sum() >= 59
    # the flooding is random: one process's answer to the first batch lies within the same bound
    np.testing.assert_allclose(got[:20], one_process(ckks_bundle, client, queries[:1]), atol=2e-2, rtol=0)


def test_a_cluster_without_workers_is_an_error_not_a_wait(circuit):
    from henn.distributed import ClusterError

    bundle = ServerBundle.create(circuit, "vhe")
    client = InferenceClient(bundle.client_info())
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0") as empty:
        with Cluster(empty.scheduler_address, timeout=5) as cluster:
            server = ClusterServer(cluster, bundle, allow_insecure=True)
            with pytest.raises(ClusterError, match="has no workers"):
                server.answer(client.public, client.encrypt(np.ones((2, 30))))
            assert server.answered() == 0  # nothing was dispatched, nothing spent
