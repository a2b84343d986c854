"""Data-parallel encrypted training on a real LocalCluster: FedAvg rounds, replayed retries, no secret on workers.

The sentiment network on synthetic reviews (a vocabulary of 40 words, each word's
polarity fixed): the plain scheme's run must equal a NumPy simulation of the same
rounds exactly, ``vhe``'s within its fixed-point rounding; a task re-run with its seed
repeats its key-service requests byte for byte (answered from the cache, nothing
counted twice); a worker killed mid-round loses and repeats nothing.
"""
from __future__ import annotations

import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import he_core  # noqa: E402
from henn.distributed import Cluster, audit_worker, wire  # noqa: E402
from henn.distributed.sentiment import (fit_args, sentiment_key_job, train_same_batch,  # noqa: E402
                                       train_sentiment_on_cluster)
from henn.distributed.training import (DistributedTrainingError, round_weights, shards,  # noqa: E402
                                       train_on_cluster)
from henn.distributed.training_worker import RoundSpec, local_round  # noqa: E402
from henn.embedding import Bags  # noqa: E402
from henn.keyservice import KeyServiceError  # noqa: E402
from henn.tasks import sentiment as T  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::he_core.SecurityWarning"),
              pytest.mark.filterwarnings("ignore::henn.training.fit.SinglePartyWarning")]

VOCAB, HIDDEN = 40, 4
CONFIG = T.SentimentConfig(hidden=HIDDEN, lr=0.05, interval=8.0)


def reviews(n: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` synthetic reviews: 2-8 distinct words each, labelled by the sign of their words' fixed polarity."""
    rng = np.random.default_rng(seed)
    polarity = np.random.default_rng(99).normal(0, 1, VOCAB)
    ids = [np.sort(rng.choice(VOCAB, rng.integers(2, 9), replace=False)) for _ in range(n)]
    return ids, np.array([float(polarity[r].sum() > 0) for r in ids])


def sgd(W01: np.ndarray, w12: np.ndarray, ids, labels, act) -> None:
    """The one-process per-review step (henn.tasks.sentiment.reference), in place."""
    for review, y in zip(ids, labels):
        h = W01[review].sum(axis=0)
        step = -CONFIG.lr * (float(act(np.array(h @ w12))) - y)
        g1 = step * w12
        w12 += step * h
        np.add.at(W01, review, g1)


def fedavg(W01, w12, ids, labels, workers: int, round_rows: int, epochs: int = 1):
    """NumPy simulation of the cluster's rounds: W <- sum_k (n_k / N) W_k."""
    act = CONFIG.make_activation().value
    W01, w12 = np.array(W01, dtype=float), np.array(w12, dtype=float)
    parts = shards(len(ids), workers)
    per_epoch = max(-(-len(p) // round_rows) for p in parts)
    for _ in range(epochs):
        for r in range(per_epoch):
            chunks = [c for c in (p[r * round_rows:(r + 1) * round_rows] for p in parts) if c.size]
            new01, new12 = W01.copy(), w12.copy()
            for chunk, weight in zip(chunks, round_weights([c.size for c in chunks])):
                a, b = W01.copy(), w12.copy()
                sgd(a, b, [ids[i] for i in chunk], labels[chunk], act)
                new01 += weight * (a - W01)
                new12 += weight * (b - w12)
            W01, w12 = new01, new12
    return W01, w12


def start(scheme_name: str, n_reviews: int, seed: int = 0):
    """Keys, a key holder sized for the run, the initial weights and the encrypted network."""
    terms = T.terms_for(n_reviews, 1, HIDDEN, vocab=VOCAB, monitor_every=10)
    scheme, keyholder = T.setup(scheme_name, HIDDEN, terms=terms, rng=he_core.SeededRandom(seed))
    W01, w12 = T.init_weights(VOCAB, CONFIG, he_core.SeededRandom(seed + 1))
    return scheme, keyholder, (W01, w12), T.build_model(scheme, W01, w12, rng=he_core.SeededRandom(seed + 2))


def released(keyholder, model) -> tuple[np.ndarray, np.ndarray]:
    return T.release_weights(model, keyholder)

def assert_fedavg(keyholder, model, init, ids, labels, *, round_rows: int, atol: float) -> None:
    """The released weights equal the clear simulation of 2-worker rounds within ``atol``."""
    W01, w12 = released(keyholder, model)
    want01, want12 = fedavg(*init, ids, labels, workers=2, round_rows=round_rows)
    np.testing.assert_allclose(W01, want01, atol=atol, rtol=0)
    np.testing.assert_allclose(w12, want12, atol=atol, rtol=0)



def _warm() -> None:
    import henn.distributed.training_worker  # noqa: F401 - the first task's imports, paid here


@pytest.fixture(scope="module")
def cluster():
    with Cluster("local", workers=2) as c:
        c.client.run(_warm)
        yield c


def test_one_worker_rounds_are_one_process_sgd():
    """FedAvg with one worker is per-review SGD: the simulation the cluster is checked against is anchored."""
    ids, labels = reviews(60)
    W01, w12 = np.zeros((VOCAB, HIDDEN)), np.random.default_rng(1).normal(0, 1, HIDDEN)
    a, b = W01.copy(), w12.copy()
    sgd(a, b, ids, labels, CONFIG.make_activation().value)
    got01, got12 = fedavg(W01, w12, ids, labels, workers=1, round_rows=7)
    np.testing.assert_allclose(got01, a, atol=1e-12)
    np.testing.assert_allclose(got12, b, atol=1e-12)
    assert round_weights([5, 5]) == [0.5, 0.5] and round_weights([3, 1]) == [0.75, 0.25]


@pytest.mark.parametrize("scheme_name,atol", [("plain", 1e-9), ("vhe", 2e-3)])
def test_rounds_on_the_cluster_equal_the_simulated_rounds(cluster, scheme_name, atol):
    ids, labels = reviews(90)  # shards of 45: rounds of 20, 20 and 5 per worker
    scheme, keyholder, init, model = start(scheme_name, len(ids))
    with sentiment_key_job(keyholder, model, CONFIG, keyholder.terms) as job:
        report = train_sentiment_on_cluster(cluster, model, ids, labels, CONFIG, keyservice=job.address,
                                            round_reviews=20, job=job.job, connection_per_request=False,
                                            allow_insecure=True)
        journal = job.service.journal.refreshes
    assert report.rounds == 3 and report.rows == 90 and report.workers == 2
    assert journal == report.requests == report.refreshes  # every refresh went through the job, once
    if scheme_name == "vhe":
        assert report.refreshes > 0
    W01, w12 = released(keyholder, model)
    want01, want12 = fedavg(*init, ids, labels, workers=2, round_rows=20)
    np.testing.assert_allclose(W01, want01, atol=atol, rtol=0)
    np.testing.assert_allclose(w12, want12, atol=atol, rtol=0)
    # and the weights did move: a round that summed nothing would fail the line above only by the steps' size
    assert np.abs(want01).max() > 20 * atol


@pytest.mark.slow  # ckks keys for training (650 MB sealed) and N = 16384 steps: minutes
def test_ckks_rounds_equal_the_simulated_rounds(cluster):
    """Each worker's share is re-encrypted at the round's level and scale, so the sums cost no level."""
    ids, labels = reviews(8)
    _scheme, keyholder, init, model = start("ckks", len(ids))
    with sentiment_key_job(keyholder, model, CONFIG, keyholder.terms) as job:
        report = train_sentiment_on_cluster(cluster, model, ids, labels, CONFIG, keyservice=job.address,
                                            round_reviews=2, job=job.job, connection_per_request=False)
        assert job.service.journal.refreshes == report.requests
    assert report.rounds == 2
    # measured 2.6e-9 and 1.4e-9 (the weights moved by 3e-3)
    assert_fedavg(keyholder, model, init, ids, labels, round_rows=2, atol=1e-6)


def test_unequal_chunks_are_weighted_by_their_size(cluster):
    ids, labels = reviews(7)  # shards of 3 and 4: one round, weights 3/7 and 4/7
    scheme, keyholder, init, model = start("vhe", len(ids))
    with sentiment_key_job(keyholder, model, CONFIG, keyholder.terms) as job:
        train_sentiment_on_cluster(cluster, model, ids, labels, CONFIG, keyservice=job.address, round_reviews=10,
                                   job=job.job, allow_insecure=True)
    assert_fedavg(keyholder, model, init, ids, labels, round_rows=10, atol=2e-3)


def test_a_service_serving_one_connection_at_a_time_gets_one_per_request(cluster):
    """Against the stock service (as henn serve-keys runs it) each request has its own connection: no stall."""
    ids, labels = reviews(40)
    _scheme, keyholder, init, model = start("vhe", len(ids))
    with sentiment_key_job(keyholder, model, CONFIG, keyholder.terms, shared=False) as job:
        report = train_sentiment_on_cluster(cluster, model, ids, labels, CONFIG, keyservice=job.address,
                                            round_reviews=10, job=job.job, allow_insecure=True)
        served, connections = job.service.journal.refreshes, job.service.connections
    assert served == report.requests > 0
    assert connections >= served + 2 * report.rounds  # a connection per request, and per task's greeting
    assert_fedavg(keyholder, model, init, ids, labels, round_rows=10, atol=2e-3)


def test_one_review_rounds_are_one_process_batches_of_two(cluster):
    """The effective batch: rounds of one review on each of 2 workers = one process's mini-batches of 2 reviews."""
    ids, labels = reviews(30)
    _scheme, keyholder, init, model = start("plain", len(ids))
    with sentiment_key_job(keyholder, model, CONFIG, keyholder.terms) as job:
        train_sentiment_on_cluster(cluster, model, ids, labels, CONFIG, keyservice=job.address, round_reviews=1,
                                   job=job.job, connection_per_request=False, allow_insecure=True)
    _scheme, keyholder2, _init, single = start("plain", len(ids))
    seconds = train_same_batch(single, keyholder2, ids, labels, CONFIG, workers=2)
    assert seconds > 0
    for a, b in zip(released(keyholder, model), released(keyholder2, single)):
        np.testing.assert_allclose(a, b, atol=1e-12, rtol=0)
    assert not np.allclose(released(keyholder2, single)[1], init[1])


def test_workers_hold_no_secret_while_they_train(cluster):
    ids, labels = reviews(240)
    _scheme, keyholder, _init, model = start("vhe", len(ids))
    audits: list[dict] = []
    with sentiment_key_job(keyholder, model, CONFIG, keyholder.terms) as job:
        trainer = threading.Thread(target=train_sentiment_on_cluster, args=(cluster, model, ids, labels, CONFIG),
                                   kwargs=dict(keyservice=job.address, round_reviews=120, job=job.job,
                                               connection_per_request=False, allow_insecure=True))
        trainer.start()
        deadline = time.monotonic() + 60
        while trainer.is_alive() and time.monotonic() < deadline:
            busy = [w for w, keys in cluster.client.processing().items() if any("henn-train-round" in k for k in keys)]
            if len(busy) == 2 and job.service.journal.refreshes > 10:  # mid-round on both workers: look inside
                audits.append(cluster.client.run(audit_worker))
                break
            time.sleep(0.02)
        trainer.join(120)
    assert audits, "the round never ran on both workers"
    for audit in audits[0].values():
        assert audit["schemes"] >= 1  # the worker holds the job's scheme, its public keys and ciphertexts ...
        assert audit["secret_keys"] == 0 and audit["schemes_with_secret"] == 0  # ... and no secret
    assert all(a["secret_keys"] == 0 for a in cluster.client.run(audit_worker).values())
    assert audit_worker()["secret_keys"] >= 1  # the audit finds the one there is: the driver's (single party)


def test_insecure_schemes_and_bad_settings_are_refused(cluster):
    ids, labels = reviews(10)
    _scheme, keyholder, _init, model = start("vhe", len(ids))
    X, y = Bags(ids, VOCAB), labels
    common = dict(keyservice="unix:/nonexistent/keys.sock", build=T.model_from, fit_args=fit_args(CONFIG))
    with pytest.raises(ValueError, match="give no security"):
        train_on_cluster(cluster, model, X, y, round_rows=5, **common)
    with pytest.raises(ValueError, match="round_rows must be a positive integer"):
        train_on_cluster(cluster, model, X, y, round_rows=0, allow_insecure=True, **common)
    with pytest.raises(ValueError, match="may not set keyholder"):
        train_on_cluster(cluster, model, X, y, round_rows=5, allow_insecure=True,
                         **{**common, "fit_args": {**fit_args(CONFIG), "keyholder": keyholder}})
    with pytest.raises(ValueError, match="X has 10 rows, y has 9"):
        train_on_cluster(cluster, model, X, y[:9], round_rows=5, allow_insecure=True, **common)


def run_task(job, model, ids, labels, seed: bytes) -> dict:
    """One worker's task, run in this process as Dask would run it (and re-run it)."""
    sealed = [wire.Wire(p.value.ct) for p in model.parameters()]
    spec = RoundSpec(job.address, job.job, None, T.model_from, {**fit_args(CONFIG), "epochs": 1}, False, True)
    public = wire.Wire(model.parameters()[0].value.scheme.public_keys).open()
    return local_round(spec, public, sealed, Bags(ids, VOCAB), labels, seed)


def test_a_rerun_task_replays_its_requests_and_spends_nothing(tmp_path):
    wire.accept_insecure(True)
    ids, labels = reviews(30)
    _scheme, keyholder, _init, model = start("vhe", len(ids))
    with sentiment_key_job(keyholder, model, CONFIG, keyholder.terms) as job:
        first = run_task(job, model, ids, labels, b"s" * 32)
        spent = job.service.journal.refreshes
        assert first["requests"] == spent > 0 and job.service.replays == 0
        again = run_task(job, model, ids, labels, b"s" * 32)
        # the same requests under the same ids: all answered from the cache, none counted, no new masked view
        assert job.service.replays == first["requests"] == again["requests"]
        assert job.service.journal.refreshes == spent
        assert [w.data for w in again["trained"]] == [w.data for w in first["trained"]]
        other = run_task(job, model, ids, labels, b"t" * 32)  # another task's seed: new requests, counted
        assert job.service.journal.refreshes == spent + other["requests"]
        # a seed reused for other work sends other bytes under the same ids: refused, not answered
        with pytest.raises(KeyServiceError, match="used for another request"):
            run_task(job, model, ids[::-1], labels[::-1], b"s" * 32)


def test_a_worker_killed_mid_round_loses_and_repeats_nothing():
    ids, labels = reviews(600, seed=5)
    _scheme, keyholder, init, model = start("vhe", len(ids), seed=11)
    with Cluster("local", workers=2) as cl, sentiment_key_job(keyholder, model, CONFIG, keyholder.terms) as job:
        pids = cl.client.run(os.getpid)
        result: dict = {}

        def train():
            try:
                result["report"] = train_sentiment_on_cluster(
                    cl, model, ids, labels, CONFIG, keyservice=job.address, round_reviews=150, job=job.job,
                    connection_per_request=False, allow_insecure=True)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
                result["error"] = exc

        trainer = threading.Thread(target=train)
        trainer.start()
        victim, deadline = None, time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            busy = [w for w, keys in cl.client.processing().items() if any("henn-train-round" in k for k in keys)]
            if len(busy) == 2 and job.service.journal.refreshes > 20:  # both training, requests made: kill one
                victim = busy[0]
            time.sleep(0.02)
        assert victim is not None, "the rounds never ran on both workers"
        os.kill(pids[victim], signal.SIGKILL)
        trainer.join(timeout=180)
        assert not trainer.is_alive()
        if "error" in result:
            raise result["error"]
        report = result["report"]
        assert victim not in cl.workers()
        replays, spent = job.service.replays, job.service.journal.refreshes
    assert report.rows == 600 and report.rounds == 2
    assert replays > 0  # the killed task had asked the service; its re-run was answered from the cache
    assert spent == report.requests  # ... so the job's budget counted each request once
    assert_fedavg(keyholder, model, init, ids, labels, round_rows=150, atol=5e-3)  # every update added once: none lost, none twice


def test_a_round_dask_gives_up_on_leaves_the_model_as_it_was(cluster):
    ids, labels = reviews(12)
    _scheme, keyholder, _init, model = start("vhe", len(ids))
    before = [p.value.ct for p in model.parameters()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((DistributedTrainingError, KeyServiceError)):
            # no service at that address: every task fails; the weights are left untouched
            train_sentiment_on_cluster(cluster, model, ids, labels, CONFIG, keyservice="unix:/nonexistent/k.sock",
                                       round_reviews=3, allow_insecure=True)
    assert all(p.value.ct is ct for p, ct in zip(model.parameters(), before))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from henn.data.synthetic import make_reviews, write_aclimdb

    root = tmp_path_factory.mktemp("imdb")
    write_aclimdb(root, make_reviews(200, seed=21, purity=0.75))
    return root


CLI_TRAIN = ["--hidden", "4", "--validation", "60", "--min-count", "3", "--polarity-cutoff", "0.3", "--lr", "0.02",
             "--interval", "8", "--init-scale", "0.5", "--json", "--quiet"]


def test_cli_options_are_checked_before_any_cluster_starts(corpus, capsys):
    from henn.cli import main

    assert main(["train", "sentiment", "--data", str(corpus), "--workers", "2", *CLI_TRAIN]) != 0
    assert "--workers without --cluster" in capsys.readouterr().err
    assert main(["train", "sentiment", "--data", str(corpus), "--cluster", "local", "--reference", "sigmoid",
                 *CLI_TRAIN]) != 0
    assert "cannot use --cluster with" in capsys.readouterr().err
    # the secret key is in this process: a cluster whose workers it does not own is refused
    assert main(["train", "sentiment", "--data", str(corpus), "--cluster", "tls://10.0.0.5:8786", *CLI_TRAIN]) != 0
    assert "holds the secret key beside its Dask client" in capsys.readouterr().err


@pytest.mark.slow  # a cluster of its own, and the one-process comparison: about 10 s
def test_cli_cluster_run_equals_one_process_with_the_same_batch(corpus, capsys):
    import json

    from henn.cli import main

    code = main(["train", "sentiment", "--data", str(corpus), "--scheme", "plain", "--cluster", "local",
                 "--workers", "2", "--round-reviews", "1", "--limit", "40", *CLI_TRAIN])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    cluster, one = summary["cluster"], summary["one_process"]
    assert cluster["workers"] == 2 and cluster["rows"] == 40 and cluster["rounds"] == 20 and one["batch"] == 2
    # one review per worker and round: the same weights as one process's batches of two, so the same accuracy
    assert summary["validation_accuracy"] == one["validation_accuracy"] > 0.55
    assert summary["speedup"] > 0 and cluster["worker_cpu_seconds"] > 0
