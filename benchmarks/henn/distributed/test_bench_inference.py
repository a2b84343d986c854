"""Encrypted batch inference on a local Dask cluster, per layout (workers x threads), pytest-benchmark style.

::

    pytest benchmarks/henn/distributed/test_bench_inference.py --benchmark-only

Four full batches of the deploy tests' 30 -> 16 -> 2 MLP on its 128-bit CKKS bundle
(8,192 queries each), encrypted outside the timed region; each round times
``ClusterServer.answer`` over the four after a warm-up round (each worker builds its
server and fetches the client's keys once). The layouts: one worker with one thread,
one worker with two threads (the fair baseline on two cores), two workers with one
thread. ``benchmarks/distributed_inference.py`` prints the same with the cost model
of docs/scaling.md beside it.
"""
from __future__ import annotations

import numpy as np
import pytest

import he_core

distributed = pytest.importorskip("distributed")

from henn import activations  # noqa: E402
from henn.deploy import Circuit, InferenceClient, ServerBundle  # noqa: E402
from henn.distributed import Cluster, ClusterServer, cores  # noqa: E402

BATCHES = 4
pytestmark = pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(3)
    circuit = Circuit([("linear", rng.normal(0, 0.3, (30, 16)), rng.normal(0, 0.1, 16)),
                       ("poly", activations.square()), ("linear", rng.normal(0, 0.3, (16, 2)), rng.normal(0, 0.1, 2))],
                      shift=np.zeros(30), scale=np.full(30, 2.0), clip=2.0)
    bundle = ServerBundle.create(circuit, "ckks")
    client = InferenceClient(bundle.client_info())
    return bundle, client, client.encrypt(rng.normal(0, 2, (BATCHES * bundle.batch, 30)))


@pytest.mark.parametrize("workers,threads", [(1, 1), (1, 2), (2, 1)], ids=["1x1", "1x2", "2x1"])
def test_answer_batches_on_a_local_cluster(benchmark, case, workers, threads):
    if workers * threads > cores():
        pytest.skip(f"{workers} x {threads} needs more than the {cores()} cores here")
    bundle, client, queries = case
    with Cluster("local", workers=workers, threads_per_worker=threads) as cluster:
        server = ClusterServer(cluster, bundle)
        answers = benchmark.pedantic(server.answer, args=(client.public, queries), rounds=3, warmup_rounds=1)
    assert len(answers) == BATCHES
    benchmark.extra_info.update({"workers": workers, "threads": threads, "batches": BATCHES,
                                 "queries_per_batch": bundle.batch})
