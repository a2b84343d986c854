"""Train the IMDB network on ``ckks`` for a slice under :class:`~.counter.Counter`; write the counts as JSON.

The run is the task's own configuration (:func:`henn.tasks.sentiment.setup` with the
128-bit protocol set, :func:`henn.tasks.sentiment.train`), with job terms sized as for
the full 20,000-review run (so the masks are as wide as in that run) and the vocabulary
of the full training part (so the table has as many ciphertexts). The first ``warmup``
reviews are trained but not counted (the first step moves ``w12`` into the order its
inner product needs, and caches fill).
"""
from __future__ import annotations

import collections
import json
import os
import pathlib
import platform
import time
import warnings

import numpy as np

import he_core
import he_core.native  # used below for the build and CPU path; the package does not import it

from .counter import Counter

DATA = pathlib.Path(os.environ.get("HENN_IMDB", "/work/shared/data/imdb"))


def run(limit: int, warmup: int = 10, full_reviews: int = 20000, monitor_every: int | None = None,
        bare: bool = False) -> dict:
    from henn.data.imdb import load_imdb
    from henn.tasks import sentiment as T

    warnings.simplefilter("ignore", he_core.SecurityWarning)
    config = T.SentimentConfig()
    t0 = time.perf_counter()
    data = T.prepare(load_imdb(DATA, "train"), validation=5000, seed=0)
    prep = time.perf_counter() - t0
    every = monitor_every or T.MONITOR_EVERY
    terms = T.terms_for(full_reviews, 1, config.hidden, vocab=len(data.vocab), monitor_every=every)
    scheme, holder = T.setup("ckks", config.hidden, terms=terms)
    model = T.build_model(scheme, *T.init_weights(len(data.vocab), config))
    ids, labels = data.train_ids[:warmup + limit], data.train_labels[:warmup + limit]
    W01 = model[0].weight.value.ct
    counter = Counter(bare)
    marks = {}

    def on_step(c: Counter) -> None:
        if not marks and c.steps == warmup:
            c.reset()
            marks.update(rounds=holder.refresh_rounds, bytes=holder.bytes_exchanged, t=time.perf_counter())

    counter.on_step = on_step
    if warmup == 0:
        marks.update(rounds=holder.refresh_rounds, bytes=holder.bytes_exchanged, t=time.perf_counter())
    with counter:
        result = T.train(model, holder, ids, labels, config, monitor_every=every)
    end = time.perf_counter()
    stride = W01.meta.get("stride")
    rows_per_ct = scheme.params.poly_degree // stride
    touched = [len(set((np.asarray(b) // rows_per_ct).tolist())) for b in ids[warmup:]]
    words = [len(set(np.asarray(b).tolist())) for b in ids[warmup:]]
    return {
        "reviews": counter.steps, "warmup": warmup, "bare": bare, "prepare_seconds": prep,
        "params": {"poly_degree": scheme.params.poly_degree, "q_bits": [int(q).bit_length() for q in
                                                                       scheme.params.q_primes],
                   "p_bits": [int(p).bit_length() for p in scheme.params.p_primes],
                   "levels": scheme.params.levels, "alpha": scheme.params.alpha,
                   "security_bits": scheme.params.security_bits},
        "table": {"rows": len(data.vocab), "ciphertexts": int(W01.data.shape[0]), "stride": stride,
                  "rows_per_ct": rows_per_ct, "limbs": int(W01.data.shape[2]),
                  "touched_mean": float(np.mean(touched)), "words_mean": float(np.mean(words))},
        "measured": {"step_seconds": counter.step_seconds, "step_cpu": counter.step_cpu,
                     "reviews_per_s_cpu": counter.steps / counter.step_cpu, "wall_seconds": end - marks["t"],
                     "reviews_per_s_steps": counter.steps / counter.step_seconds,
                     "reviews_per_s_run": result.reviews_per_s,
                     "refresh_rounds": holder.refresh_rounds - marks["rounds"],
                     "bytes_exchanged": holder.bytes_exchanged - marks["bytes"]},
        "phase_seconds": dict(counter.phase_seconds), "phase_cpu": dict(counter.phase_cpu), "phase_entries": dict(counter.phase_entries),
        "rng_seconds": dict(counter.rng_seconds), "encode_seconds": dict(counter.encode_seconds),
        "rounds": counter.rounds, "ring": counter.table(),
        "machine": {"cpu": platform.processor() or platform.machine(), "cpu_path": he_core.native.cpu_path()
                    if hasattr(he_core.native, "cpu_path") else None,
                    "affinity": sorted(os.sched_getaffinity(0)), "loadavg": os.getloadavg()},
    }


def main(limit: int, warmup: int, out: str | None, bare: bool = False) -> dict:
    res = run(limit, warmup, bare=bare)
    text = json.dumps(res, indent=1)
    if out:
        pathlib.Path(out).write_text(text)
    return res


def run_vhe(limit: int = 2000, warmup: int = 100) -> dict:
    """The same phases on ``vhe`` (no ring counting: its kernels are not the CKKS ring's): times only."""
    from henn.data.imdb import load_imdb
    from henn.tasks import sentiment as T

    warnings.simplefilter("ignore", he_core.SecurityWarning)
    config = T.SentimentConfig()
    data = T.prepare(load_imdb(DATA, "train"), validation=5000, seed=0)
    scheme, holder = T.setup("vhe", config.hidden)
    model = T.build_model(scheme, *T.init_weights(len(data.vocab), config))
    ids, labels = data.train_ids[:warmup + limit], data.train_labels[:warmup + limit]
    counter = Counter()
    marks = {}

    def on_step(c: Counter) -> None:
        if not marks and c.steps == warmup:
            c.reset()
            marks.update(rounds=holder.refresh_rounds, bytes=holder.bytes_exchanged)

    counter.on_step = on_step
    with counter:
        T.train(model, holder, ids, labels, config)
    from .units import vhe_table_ops
    bags = [np.sort(np.asarray(b, dtype=np.int64)) for b in ids[warmup:]]
    return {"scheme": "vhe", "reviews": counter.steps, "warmup": warmup,
            "table_ops": vhe_table_ops(bags, len(data.vocab), config.hidden, repeats=5),
            "measured": {"step_seconds": counter.step_seconds, "step_cpu": counter.step_cpu,
                         "reviews_per_s_cpu": counter.steps / counter.step_cpu,
                         "reviews_per_s_steps": counter.steps / counter.step_seconds,
                         "refresh_rounds": holder.refresh_rounds - marks["rounds"],
                         "bytes_exchanged": holder.bytes_exchanged - marks["bytes"]},
            "phase_seconds": dict(counter.phase_seconds), "phase_cpu": dict(counter.phase_cpu),
            "phase_entries": dict(counter.phase_entries), "rng_seconds": dict(counter.rng_seconds),
            "round_bytes": {"sent": sum(r["sent"] for r in counter.rounds),
                            "received": sum(r["received"] for r in counter.rounds)},
            "rounds_asked_by": dict(collections.Counter(r["asked_by"] for r in counter.rounds)),
            "loadavg": os.getloadavg()}
