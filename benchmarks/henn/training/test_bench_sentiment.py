"""Training throughput of the IMDB sentiment network: reviews/s, vhe vs plain (vs NumPy), side by side.

Each round trains fresh weights (encrypted outside the timed region) for one pass
over the same fixed 2,000-review slice of the IMDB training split, with the default
configuration (hidden 8, degree-5 sigmoid, refresh policy included)::

    pytest benchmarks/henn/training/test_bench_sentiment.py --benchmark-only

reviews/s = 2000 / mean round time; it is stored in ``extra_info`` too. The encrypted
runs are :func:`henn.tasks.sentiment.train` (the general trainer ``fit``, one review
per step); the NumPy row is :func:`henn.tasks.sentiment.train_reference`. Needs the
IMDB data (``$HENN_IMDB`` or ``../shared/data/imdb``); skips without it.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import time
import warnings

import numpy as np
import pytest

import he_core
from henn.data.imdb import load_imdb
from henn.tasks import sentiment as T
from henn.tasks.sentiment import SentimentConfig, init_weights

ROOT = pathlib.Path(__file__).resolve().parents[3]
DATA = pathlib.Path(os.environ.get("HENN_IMDB", ROOT.parent / "shared" / "data" / "imdb"))
SLICE = 2000
CONFIG = SentimentConfig()

pytestmark = pytest.mark.data


def _loads(name: str) -> bool:
    try:
        he_core.scheme_class(name)
    except Exception:  # noqa: BLE001
        return False
    return True


@pytest.fixture(scope="module")
def slice_data():
    if not (DATA / "aclImdb" / "train").is_dir() and not (DATA / "train").is_dir():
        pytest.skip(f"IMDB data not found at {DATA} (set HENN_IMDB)")
    return T.prepare(load_imdb(DATA, "train"), validation=5000, limit=SLICE, seed=0)


def _seconds(benchmark, statistic: str, measured: list[float]) -> float:
    """The benchmark's ``statistic`` of the round times, or (``--benchmark-disable``: no statistics) the rounds' own."""
    stats = getattr(benchmark, "stats", None)
    return getattr(stats.stats, statistic) if stats else float(np.mean(measured))


def _train_accuracy(model, keyholder, data) -> float:
    """Accuracy of the trained (released) weights on the slice they were trained on (outside the timing)."""
    W01, w12 = T.release_weights(model, keyholder)
    pred = T.clear_predictions(W01, w12, data.train_ids, CONFIG.make_activation().value)
    return float(np.mean(pred == data.train_labels))


@pytest.mark.parametrize("scheme_name", [n for n in ("plain", "vhe") if _loads(n)])
def test_train_reviews_per_s(benchmark, slice_data, scheme_name):
    warnings.simplefilter("ignore", he_core.SecurityWarning)
    scheme, keyholder = T.setup(scheme_name, CONFIG.hidden)
    models, results = [], []

    def fresh():  # keygen and weight encryption stay out of the timed region
        models.append(T.build_model(scheme, *init_weights(len(slice_data.vocab), CONFIG)))
        return (models[-1],), {}

    def run(model):
        results.append(T.train(model, keyholder, slice_data.train_ids, slice_data.train_labels, CONFIG))

    benchmark.group = f"sentiment training, {SLICE} IMDB reviews"
    benchmark.pedantic(run, setup=fresh, rounds=3, iterations=1, warmup_rounds=0)
    accuracy = _train_accuracy(models[-1], keyholder, slice_data)
    benchmark.extra_info.update(scheme=scheme_name, reviews=SLICE,
                                reviews_per_s=SLICE / _seconds(benchmark, "mean", [r.seconds for r in results]),
                                refreshes_per_round=results[-1].refreshes,
                                final_mae=results[-1].final_mae, train_accuracy=accuracy)
    assert results[-1].reviews == SLICE and accuracy > 0.7
    assert [r["reviews"] for r in results[-1].history] == [500, 1000, 1500, 2000]
    assert results[-1].final_mae < results[-1].history[0]["mae"]  # it learned while it was timed


def test_train_reviews_per_s_numpy_reference(benchmark, slice_data):
    act = CONFIG.make_activation()
    # the slice only: the reference's report on held-out reviews stays out of the timed region
    train_only = T.Prepared(slice_data.vocab, slice_data.train_ids, slice_data.train_labels,
                            slice_data.train_ids[:1], slice_data.train_labels[:1])
    results, measured = [], []

    def fresh():
        return (init_weights(len(slice_data.vocab), CONFIG),), {}

    def run(init):
        start = time.perf_counter()
        results.append(T.train_reference(train_only, CONFIG, activation=act.value, init=init))
        measured.append(time.perf_counter() - start)

    benchmark.group = f"sentiment training, {SLICE} IMDB reviews"
    benchmark.pedantic(run, setup=fresh, rounds=3, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(scheme="numpy-float64", reviews=SLICE,
                                reviews_per_s=SLICE / _seconds(benchmark, "mean", measured),
                                train_accuracy=results[-1]["train_accuracy"])
    assert results[-1]["train_accuracy"] > 0.7


#: (batch, lr per review, schedule) whose NumPy references keep >= 0.875 for three initialisations (eight for
#: batch 64; docs/performance.md): linear falls from lr towards lr / 10 over the run
BATCHES = [(8, 0.002, "constant"), (16, 0.0025, "constant"), (64, 0.004, "linear")]


@pytest.fixture(scope="module")
def full_split():
    if not (DATA / "aclImdb" / "train").is_dir() and not (DATA / "train").is_dir():
        pytest.skip(f"IMDB data not found at {DATA} (set HENN_IMDB)")
    return T.prepare(load_imdb(DATA, "train"), validation=5000, seed=0)  # 20,000 / 5,000, split seed 0


@pytest.mark.parametrize("batch, lr, schedule", BATCHES)
@pytest.mark.parametrize("scheme_name", [n for n in ("vhe",) if _loads(n)])
def test_train_reviews_per_s_batched_key_service_apart(benchmark, full_split, scheme_name, batch, lr, schedule):
    """Issue #13's figure: the whole 20,000-review split in mini-batches, the key service in its own process.

    The trainer runs here (``taskset -c 0`` pins it, as the issue asks); the owner's key
    service is a forked process pinned to the other core
    (:func:`henn.keyservice.local_job.serve_apart`), so each batch's landing refresh pays a
    real round trip. The learning rate is per review, constant or falling linearly
    (``schedule``). Reported: reviews/s (the rounds' median), refresh rounds per review,
    the service's share of the time and the validation accuracy of the released weights on the 5,000 held-out reviews (outside the timing).
    """
    from henn.keyholder import KeyHolder
    from henn.keyservice.local_job import other_core, serve_apart

    warnings.simplefilter("ignore", he_core.SecurityWarning)
    config = dataclasses.replace(CONFIG, lr=lr, schedule=schedule)
    data = full_split
    n = len(data.train_ids) // batch * batch  # a job allows batches of its size only
    scheme = T.scheme_for(scheme_name)  # as T.setup chooses
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, config.hidden)))
    terms = T.terms_for(3 * n, 1, config.hidden, vocab=len(data.vocab), monitor_every=n)
    probe = T.build_model(scheme, *init_weights(len(data.vocab), config))
    targets = T.learn_targets(scheme, secret, probe[0].weight.value.ct, probe[1].weight.value.ct, config, terms,
                              batch_size=batch)
    models, results, waits = [], [], []
    with serve_apart(scheme, secret, terms, targets, core=other_core()) as keyholder:
        def fresh():
            models.append(T.build_model(scheme, *init_weights(len(data.vocab), config)))
            waits.append(keyholder.seconds_waiting)
            return (models[-1],), {}

        def run(model):
            results.append(T.train(model, keyholder, data.train_ids[:n], data.train_labels[:n], config,
                                   monitor_every=n, batch_size=batch))
            waits[-1] = keyholder.seconds_waiting - waits[-1]

        benchmark.group = f"sentiment training, the {n:,}-review split in batches, key service apart"
        benchmark.pedantic(run, setup=fresh, rounds=3, iterations=1, warmup_rounds=0)
    W01, w12 = T.release_weights(models[-1], KeyHolder(scheme, secret, terms=terms))
    pred = T.clear_predictions(W01, w12, data.val_ids, config.make_activation().value)
    accuracy = float(np.mean(pred == data.val_labels))
    seconds = _seconds(benchmark, "median", [r.seconds for r in results])
    benchmark.extra_info.update(scheme=scheme_name, reviews=n, batch_size=batch, lr=lr, schedule=schedule,
                                reviews_per_s=n / seconds,
                                refresh_rounds_per_review=results[-1].refreshes / n,
                                key_service_share=float(np.median(waits)) / seconds,
                                validation_accuracy=accuracy, service_core=other_core())
    print(f"\n{scheme_name}, batch {batch}, lr {lr} {schedule}, key service apart: {n / seconds:,.0f} reviews/s, "
          f"{results[-1].refreshes / n:.3f} refresh rounds per review, {np.median(waits) / seconds:.0%} of the time "
          f"waiting for the service, validation {accuracy:.4f}")
    # one landing refresh per batch, not per review, plus the rarer refreshes of w12 and the logits
    # (measured 0.02-0.03 per review whatever the batch; per-review training takes 1.0)
    assert results[-1].reviews == n and results[-1].refreshes <= n / batch + 0.05 * n
    assert accuracy > 0.85  # it learned while it was timed (the figure itself is reported, not asserted)


CKKS_SLICE = 400


@pytest.mark.skipif(not _loads("ckks"), reason="ckks not built")
@pytest.mark.parametrize("batch_size", [1, 8])
def test_train_reviews_per_s_ckks(benchmark, slice_data, batch_size):
    """CKKS on its 128-bit training set (N = 16384), one thread, refreshes through an in-process key holder.

    The first 400 reviews of the same slice (CKKS is ~100x slower than vhe here: a
    review costs six ciphertext products and three masked re-encryptions). Reported:
    reviews/s, refresh rounds and ciphertext bytes (both ways) per review. ``batch_size``
    8 is the mini-batch step (:mod:`henn.tasks.sentiment.batched`): per review the logit's
    and the ``W01`` row's refreshes stay, ``w12``'s summed update is moved once per as
    many reviews as its mask covers. Run it on one core to check the figure the issue
    names: ``taskset -c 0 pytest benchmarks/henn/training/test_bench_sentiment.py -k ckks
    --benchmark-only``.
    """
    terms = T.terms_for(4 * CKKS_SLICE, 1, CONFIG.hidden, vocab=len(slice_data.vocab), monitor_every=CKKS_SLICE)
    scheme, keyholder = T.setup("ckks", CONFIG.hidden, terms=terms)  # a job's terms, as the CLI sizes them
    ids, labels = slice_data.train_ids[:CKKS_SLICE], slice_data.train_labels[:CKKS_SLICE]
    seen = []

    def fresh():
        model = T.build_model(scheme, *init_weights(len(slice_data.vocab), CONFIG))
        seen.append((keyholder.refresh_rounds, keyholder.bytes_exchanged))
        return (model,), {}

    results = []

    def run(model):
        results.append(T.train(model, keyholder, ids, labels, CONFIG, monitor_every=CKKS_SLICE,
                               batch_size=batch_size))

    benchmark.group = f"sentiment training on ckks, {CKKS_SLICE} IMDB reviews"
    benchmark.pedantic(run, setup=fresh, rounds=3, iterations=1, warmup_rounds=0)
    per_review = (keyholder.refresh_rounds - seen[-1][0]) / CKKS_SLICE
    kb_per_review = (keyholder.bytes_exchanged - seen[-1][1]) / CKKS_SLICE / 1e3
    seconds = _seconds(benchmark, "median", [r.seconds for r in results])
    benchmark.extra_info.update(scheme="ckks", reviews=CKKS_SLICE, batch_size=batch_size,
                                poly_degree=scheme.params.poly_degree, levels=scheme.params.levels,
                                reviews_per_s=CKKS_SLICE / seconds, refresh_rounds_per_review=per_review,
                                refresh_kb_per_review=kb_per_review)
    print(f"\nckks, batch {batch_size}: {CKKS_SLICE / seconds:.1f} reviews/s (median of {len(results)} rounds), "
          f"{per_review:.3f} refresh rounds and {kb_per_review:.0f} KB per review")
    assert results[-1].reviews == CKKS_SLICE
    if batch_size == 1:
        assert 2.9 <= per_review <= 3.1
    else:  # the logit and the W01 row per review; w12's sum at most every other review
        assert 2.0 < per_review <= 2.5 + 1.0 / CKKS_SLICE
