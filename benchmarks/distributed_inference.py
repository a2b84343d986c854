"""Encrypted batch inference on a local Dask cluster: 1 worker vs 2, and what the cost model predicts.

Run from the repository root::

    python benchmarks/distributed_inference.py --batches 8 --repeats 3 --json scaling.json

It builds the 30 -> 16 -> 2 MLP's 128-bit CKKS bundle (the deploy tests' circuit), one
client's keys and ``--batches`` full encrypted batches (outside every timed region),
then starts one ``LocalCluster`` per layout (workers x threads: 1x1, 1x2, 2x1; idle
workers cost no CPU), answers one warm-up round on each (each worker builds its server
and fetches the keys) and times ``ClusterServer.answer`` over all batches, the layouts'
rounds interleaved, ``--repeats`` rounds each (median, and the fastest round: on a
machine shared with other jobs the fastest rounds are the ones the others left alone).
Alongside:

* one process: ``InferenceServer.answer`` per batch (the work of one task), and the
  driver's own per-batch costs: sealing a query in henn's format (``Wire``), opening
  an answer;
* per task, from Dask's task stream: compute seconds on the worker; per round, the
  cores the workers actually got (their CPU seconds over the wall time: on a shared
  machine, what the other jobs left);
* the cost model of docs/scaling.md, ``T(w) = D + ceil(B / w) * t``, with ``D`` the
  driver's serial time (seal B queries, open B answers) and ``t`` the median task
  compute time measured in the same run (divided by the threads of a worker, whose
  threads take turns), printed beside each measured time.

The machine's load average is printed too: other jobs on a shared machine slow the
workers down.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import he_core  # noqa: E402
from henn import activations  # noqa: E402
from henn.deploy import Circuit, InferenceClient, InferenceServer, ServerBundle  # noqa: E402
from henn.distributed import Cluster, ClusterServer, wire  # noqa: E402

LAYOUTS = ((1, 1), (1, 2), (2, 1))


def circuit() -> Circuit:
    rng = np.random.default_rng(3)
    return Circuit([("linear", rng.normal(0, 0.3, (30, 16)), rng.normal(0, 0.1, 16)), ("poly", activations.square()),
                    ("linear", rng.normal(0, 0.3, (16, 2)), rng.normal(0, 0.1, 2))],
                   shift=np.zeros(30), scale=np.full(30, 2.0), clip=2.0)


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def one_process(bundle: ServerBundle, client: InferenceClient, queries: list, repeats: int) -> dict:
    server = InferenceServer(bundle)
    server.register(client.public)
    q = queries[0]
    answer = server.answer(q.ciphertext, q.count)
    sealed = wire.to_bytes(answer)
    return {"seconds_answer": median_time(lambda: server.answer(q.ciphertext, q.count), repeats),
            "seconds_seal_query": median_time(lambda: wire.Wire(q.ciphertext), repeats),
            "seconds_open_answer": median_time(lambda: wire.from_bytes(sealed, "ciphertext"), repeats),
            "query_bytes": len(wire.to_bytes(q.ciphertext)), "answer_bytes": len(sealed),
            "key_bytes": len(wire.to_bytes(client.public))}


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system) the worker processes have used so far."""
    import psutil

    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


def time_round(cluster: Cluster, server: ClusterServer, client: InferenceClient, queries: list) -> tuple:
    """One timed round: wall seconds, the cores the workers got (their CPU seconds / wall), and each
    answer task's compute seconds from Dask's task stream."""
    from distributed import get_task_stream

    pids = list(cluster.client.run(os.getpid).values())
    with get_task_stream(client=cluster.client) as stream:
        cpu, t = cpu_seconds(pids), time.perf_counter()
        answers = server.answer(client.public, queries)
        wall = time.perf_counter() - t
        cores = (cpu_seconds(pids) - cpu) / wall
    assert len(answers) == len(queries)
    return wall, cores, [sum(s["stop"] - s["start"] for s in task["startstops"] if s["action"] == "compute")
                         for task in stream.data if "henn-answer" in str(task["key"])]


def on_clusters(bundle: ServerBundle, client: InferenceClient, queries: list, repeats: int) -> list[dict]:
    """Every layout's cluster up at once, rounds interleaved (1x1, 1x2, 2x1, 1x1, ...): a change in the
    machine's load hits every layout alike."""
    with contextlib.ExitStack() as stack:
        runs = []
        for workers, threads in LAYOUTS:
            cluster = stack.enter_context(Cluster("local", workers=workers, threads_per_worker=threads))
            server = ClusterServer(cluster, bundle)
            server.answer(client.public, queries[:workers])  # warm-up: servers built, keys fetched
            runs.append((workers, threads, cluster, server, [], [], []))
        for _ in range(repeats):
            for workers, threads, cluster, server, walls, cores, computes in runs:
                wall, got, tasks = time_round(cluster, server, client, queries)
                walls.append(wall)
                cores.append(got)
                computes.extend(tasks)
    return [{"workers": w, "threads": th, "seconds": statistics.median(walls), "min_seconds": min(walls),
             "all_seconds": walls, "worker_cores": cores, "task_compute_median": statistics.median(computes)}
            for w, th, _, _, walls, cores, computes in runs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    bundle = ServerBundle.create(circuit(), "ckks")
    client = InferenceClient(bundle.client_info())
    X = np.random.default_rng(4).normal(0, 2, (args.batches * bundle.batch, 30))
    queries = client.encrypt(X)
    base = one_process(bundle, client, queries, args.repeats)
    drv = args.batches * (base["seconds_seal_query"] + base["seconds_open_answer"])
    print(f"{bundle.scheme} {bundle.params.param_id}: {args.batches} batches of {bundle.batch} queries; "
          f"one process: {base['seconds_answer']:.3f} s per batch; driver per batch: seal query "
          f"{base['seconds_seal_query']:.3f} s, open answer {base['seconds_open_answer']:.3f} s; "
          f"bytes per task: query {base['query_bytes'] / 1e6:.1f} MB, answer {base['answer_bytes'] / 1e6:.2f} MB; "
          f"keys {base['key_bytes'] / 1e6:.1f} MB per worker; load average {os.getloadavg()}")
    rows = on_clusters(bundle, client, queries, args.repeats)
    for r in rows:
        workers, threads = r["workers"], r["threads"]
        # a worker's threads take turns (one evaluation at a time): a task's compute time includes its wait
        r["model_seconds"] = drv + math.ceil(args.batches / workers) * r["task_compute_median"] / threads
        print(f"{workers} worker(s) x {threads} thread(s): {r['seconds']:.2f} s (median of {args.repeats}: "
              f"{', '.join(f'{s:.2f}' for s in r['all_seconds'])}), cores the workers got "
              f"{', '.join(f'{c:.2f}' for c in r['worker_cores'])}, task compute {r['task_compute_median']:.3f} s, "
              f"model {r['model_seconds']:.2f} s", flush=True)
    print(f"load average after: {os.getloadavg()}")
    t = {(r["workers"], r["threads"]): r["seconds"] for r in rows}
    m = {(r["workers"], r["threads"]): r["min_seconds"] for r in rows}
    print(f"speed-up 2x1 over 1x1: {t[(1, 1)] / t[(2, 1)]:.2f} (medians), {m[(1, 1)] / m[(2, 1)]:.2f} (fastest "
          f"rounds); over 1x2 (the fair baseline): {t[(1, 2)] / t[(2, 1)]:.2f} (medians), "
          f"{m[(1, 2)] / m[(2, 1)]:.2f} (fastest rounds)")
    if args.json:
        args.json.write_text(json.dumps({"batches": args.batches, "batch": bundle.batch, "one_process": base,
                                         "driver_seconds": drv, "layouts": rows, "cores": len(os.sched_getaffinity(0)),
                                         "he_core": he_core.__version__}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
