"""What keeping the secret key out of the Dask process costs: one predict run in-process vs through a child process.

Run from the repository root (pinned, as the project's figures are)::

    taskset -c 0 python benchmarks/distributed_isolation.py --scheme ckks --batches 2 --repeats 3

Both arms start a local cluster of one worker (the cores this process may use), register
the bundle, answer ``--batches`` encrypted batches (made once, outside the timed
region) and close the cluster:

* ``in-process``: :class:`~henn.distributed.Cluster` + :class:`~henn.distributed.ClusterServer`
  in this process (what ``predict_on_cluster`` did before the split);
* ``child``: :class:`~henn.distributed.ClusterProcess` (a spawned child runs the same two;
  the queries and answers cross the pipe as henn-format bytes, loaded and checked here).

Rounds alternate between the arms; medians (and the fastest) are printed with the load
average. The difference is what the split adds to one ``henn predict --cluster`` run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.distributed_inference import circuit  # noqa: E402
from henn.deploy import InferenceClient, ServerBundle  # noqa: E402
from henn.distributed import Cluster, ClusterProcess, ClusterServer  # noqa: E402


def in_process(bundle: ServerBundle, client: InferenceClient, queries: list, insecure: bool) -> float:
    start = time.perf_counter()
    with Cluster("local", workers=1) as cluster:
        ClusterServer(cluster, bundle, allow_insecure=insecure).answer(client.public, queries)
    return time.perf_counter() - start


def child(bundle: ServerBundle, client: InferenceClient, queries: list, insecure: bool) -> float:
    start = time.perf_counter()
    with ClusterProcess(bundle, "local", workers=1, allow_insecure=insecure) as cluster:
        cluster.answer(client.public, queries)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", default="ckks")
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    insecure = args.scheme != "ckks"
    bundle = ServerBundle.create(circuit(), args.scheme)
    client = InferenceClient(bundle.client_info())
    X = np.random.default_rng(0).normal(0, 2, (args.batches * bundle.batch, 30))
    queries = [q for lo in range(0, len(X), bundle.batch) for q in client.encrypt(X[lo:lo + bundle.batch])]
    times: dict[str, list[float]] = {"in-process": [], "child": []}
    for _ in range(args.repeats):
        times["in-process"].append(in_process(bundle, client, queries, insecure))
        times["child"].append(child(bundle, client, queries, insecure))
    out = {name: {"median": statistics.median(t), "min": min(t), "runs": t} for name, t in times.items()}
    out["added_median"] = out["child"]["median"] - out["in-process"]["median"]
    out.update(scheme=args.scheme, batches=len(queries), load=os.getloadavg(), cores=len(os.sched_getaffinity(0)))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
