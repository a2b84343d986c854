"""Mini-batch sentiment training on ckks: the figures of docs/performance.md, "Batched training on ckks".

Never imported by the package or the test suite; run from the repository root with the
IMDB data at ``$HENN_IMDB`` (default ``../shared/data/imdb``)::

    python -m benchmarks.henn.training.sentiment_batches reference 1 8 64 256
    taskset -c 0 python -m benchmarks.henn.training.sentiment_batches speed 200 1 8
    taskset -c 1 python -m benchmarks.henn.training.sentiment_batches reviews-per-refresh 20000
    taskset -c 1 python -m benchmarks.henn.training.sentiment_batches validate 2000 8

Each prints one JSON line per result: reviews/s of CPU (``time.process_time``: the machine
is shared, wall clock is printed beside it with the load average), refresh rounds and
ciphertext bytes per review from the in-process key holder's counters, the table's tracked
noise, and for ``validate`` the validation accuracy of the released weights on the split's
5,000 held-out reviews next to the NumPy reference run by the same batches from the same
initial weights.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import time
import warnings

import numpy as np

import he_core
from henn.data.imdb import load_imdb
from henn.embedding import Bags
from henn.tasks import sentiment as T
from henn.tasks.sentiment.batched import fit_batched

CONFIG = T.SentimentConfig()
NOISE_KEYS = ("variance", "coeff_bound", "slot_bound")


def _data() -> T.Prepared:
    root = pathlib.Path(__file__).resolve().parents[3]
    path = pathlib.Path(os.environ.get("HENN_IMDB", root.parent / "shared" / "data" / "imdb"))
    return T.prepare(load_imdb(path, "train"), validation=5000, seed=0)


def _emit(**fields) -> None:
    print(json.dumps({**fields, "load": [round(x, 2) for x in os.getloadavg()]}), flush=True)


def reference(data: T.Prepared, sizes: list[int], lr: float | None = None, schedule: str = "constant",
              inits: int = 3) -> None:
    config = dataclasses.replace(CONFIG, lr=CONFIG.lr if lr is None else lr, schedule=schedule)
    act = config.make_activation().value
    for b in sizes:
        accs = [T.train_reference(data, config, activation=act, batch_size=b,
                                  init=T.init_weights(len(data.vocab), config, he_core.SeededRandom(seed)))
                ["validation_accuracy"] for seed in range(inits)]
        _emit(kind="reference", batch_size=b, lr=config.lr, schedule=schedule, validation_accuracy=accs)


def speed(data: T.Prepared, reviews: int, sizes: list[int]) -> None:
    terms = T.terms_for(4 * reviews, 1, CONFIG.hidden, vocab=len(data.vocab), monitor_every=reviews)
    scheme, keyholder = T.setup("ckks", CONFIG.hidden, terms=terms)
    for b in sizes:
        model = T.build_model(scheme, *T.init_weights(len(data.vocab), CONFIG))
        noise0 = scheme.noise_estimate(T.weights(model)["W01"].ct)
        rounds, sent = keyholder.refresh_rounds, keyholder.bytes_exchanged
        cpu = time.process_time()
        result = T.train(model, keyholder, data.train_ids[:reviews], data.train_labels[:reviews], CONFIG,
                         monitor_every=reviews, batch_size=b)
        cpu = time.process_time() - cpu
        noise1 = scheme.noise_estimate(T.weights(model)["W01"].ct)
        _emit(kind="speed", batch_size=b, reviews=reviews, reviews_per_s_cpu=reviews / cpu,
              reviews_per_s_wall=result.reviews_per_s,
              refresh_rounds_per_review=(keyholder.refresh_rounds - rounds) / reviews,
              mb_per_review=(keyholder.bytes_exchanged - sent) / reviews / 1e6,
              W01_noise_before={k: noise0[k] for k in NOISE_KEYS}, W01_noise_after={k: noise1[k] for k in NOISE_KEYS})


def reviews_per_refresh(data: T.Prepared, job_reviews: int) -> None:
    """``K`` on a job's terms: one batch of 16 reviews, its rounds from the key holder's counter."""
    scheme, keyholder = T.setup("ckks", CONFIG.hidden, terms=T.terms_for(job_reviews, 1, CONFIG.hidden,
                                                                          vocab=len(data.vocab)))
    model = T.build_model(scheme, *T.init_weights(len(data.vocab), CONFIG))
    _, _, stats = fit_batched(model, keyholder, Bags(data.train_ids[:16], len(data.vocab)), data.train_labels[:16],
                              CONFIG, 16)
    _emit(kind="reviews_per_refresh", job_reviews=job_reviews, entries_budget=keyholder.terms.entries_budget,
          w12_reviews_per_refresh=stats["w12_reviews_per_refresh"], rounds_per_batch=stats["rounds_per_batch"])


def validate(data: T.Prepared, reviews: int, b: int) -> None:
    scheme, keyholder = T.setup("ckks", CONFIG.hidden, terms=T.terms_for(20000, 1, CONFIG.hidden,
                                                                          vocab=len(data.vocab)))
    init = T.init_weights(len(data.vocab), CONFIG, he_core.SeededRandom(0))
    model = T.build_model(scheme, *init)
    rounds, sent = keyholder.refresh_rounds, keyholder.bytes_exchanged
    cpu, wall = time.process_time(), time.perf_counter()
    T.train(model, keyholder, data.train_ids[:reviews], data.train_labels[:reviews], CONFIG, monitor_every=500,
            batch_size=b)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    W01, w12 = T.release_weights(model, keyholder)
    act = CONFIG.make_activation().value
    part = T.Prepared(data.vocab, data.train_ids[:reviews], data.train_labels[:reviews], data.val_ids,
                      data.val_labels)
    ref = T.train_reference(part, CONFIG, activation=act, init=init, batch_size=b)
    _emit(kind="validate", batch_size=b, reviews=reviews, reviews_per_s_cpu=reviews / cpu,
          reviews_per_s_wall=reviews / wall, refresh_rounds_per_review=(keyholder.refresh_rounds - rounds) / reviews,
          mb_per_review=(keyholder.bytes_exchanged - sent) / reviews / 1e6,
          validation_accuracy=float(np.mean(T.clear_predictions(W01, w12, data.val_ids, act) == data.val_labels)),
          reference_validation_accuracy=ref["validation_accuracy"],
          max_abs_W01_vs_reference=float(np.max(np.abs(W01 - ref["W01"]))),
          max_abs_w12_vs_reference=float(np.max(np.abs(w12.reshape(-1) - ref["w12"]))))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.henn.training.sentiment_batches")
    parser.add_argument("what", choices=("reference", "speed", "reviews-per-refresh", "validate"))
    parser.add_argument("numbers", type=int, nargs="+")
    parser.add_argument("--lr", type=float, default=None, help="reference: the learning rate per review")
    parser.add_argument("--schedule", choices=("constant", "linear"), default="constant",
                        help="reference: the rate's schedule (linear: towards lr / 10)")
    parser.add_argument("--inits", type=int, default=3, help="reference: initialisations (SeededRandom(0..))")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the in-process key holder's single-party warning
    data = _data()
    if args.what == "reference":
        reference(data, args.numbers, args.lr, args.schedule, args.inits)
    elif args.what == "speed":
        speed(data, args.numbers[0], args.numbers[1:] or [1, 8])
    elif args.what == "reviews-per-refresh":
        reviews_per_refresh(data, args.numbers[0])
    else:
        validate(data, args.numbers[0], args.numbers[1] if len(args.numbers) > 1 else 8)


if __name__ == "__main__":
    main()
