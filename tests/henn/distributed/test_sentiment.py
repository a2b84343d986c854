"""henn.distributed.sentiment without a cluster: the per-task settings are the one-process trainer's, the job
served beside the driver, the one-process run at the cluster's effective batch, and the batch trial.
(The cluster runs themselves: test_training.py.)"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("distributed")

import he_core  # noqa: E402
from henn.data.text import Vocabulary  # noqa: E402
from henn.distributed.sentiment import (batches_train, fit_args, sentiment_key_job, train_same_batch,  # noqa: E402
                                       train_sentiment_on_cluster)
from henn.tasks import sentiment as T  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")
VOCAB, HIDDEN = 30, 4
CONFIG = T.SentimentConfig(hidden=HIDDEN, lr=0.05, interval=8.0)


def reviews(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    polarity = np.random.default_rng(7).normal(0, 1, VOCAB)
    ids = [np.sort(rng.choice(VOCAB, rng.integers(2, 7), replace=False)) for _ in range(n)]
    return ids, np.array([float(polarity[r].sum() > 0) for r in ids])


def start(seed: int = 0):
    scheme, holder = T.setup("plain", HIDDEN, terms=T.terms_for(40, 1, HIDDEN, vocab=VOCAB, monitor_every=10),
                             rng=he_core.SeededRandom(seed))
    init = T.init_weights(VOCAB, CONFIG, he_core.SeededRandom(seed + 1))
    return holder, init, T.build_model(scheme, *init)


def test_each_task_trains_with_the_one_process_settings():
    args = fit_args(CONFIG)
    assert args["lr"] == CONFIG.lr and args["batch_size"] == 1 and args["shuffle"] is False
    assert args["value_bound"] == T.VALUE_BOUND and args["update_bound"] == T.update_bound(CONFIG)
    assert type(args["loss"]) is type(CONFIG.make_loss())


def test_batch_one_is_the_one_process_trainer_and_batch_two_is_not():
    ids, labels = reviews(20)
    holder, init, model = start()
    T.train(model, holder, ids, labels, CONFIG, monitor_every=None)
    holder1, _, one = start()
    assert train_same_batch(one, holder1, ids, labels, CONFIG, workers=1) > 0
    for a, b in zip(T.release_weights(model, holder), T.release_weights(one, holder1)):
        np.testing.assert_array_equal(a, b)  # the plain twin: exactly the same steps
    holder2, _, two = start()
    train_same_batch(two, holder2, ids, labels, CONFIG, workers=2)
    assert not np.allclose(T.release_weights(two, holder2)[0], T.release_weights(one, holder1)[0])


def test_the_job_beside_the_driver_serves_the_key_holders_key_for_the_learnt_targets():
    holder, _, model = start(3)
    w = T.weights(model)
    want = T.learn_targets(holder.scheme, holder.export_secret_key(), w["W01"].ct, w["w12"].ct, CONFIG,
                           holder.terms)
    with sentiment_key_job(holder, model, CONFIG, holder.terms, shared=False) as job:
        assert job.job["key_id"] == holder.key_id
        assert job.service.spec.model == {"task": "sentiment", "distributed": True}
        assert job.service.spec.targets == want
        assert type(job.service).__name__ == "KeyService"  # shared=False: served one connection at a time


def test_the_batch_trial_runs_on_a_copy():
    ids, labels = reviews(6)
    holder, init, _model = start(5)
    data = T.Prepared(Vocabulary([f"w{i}" for i in range(VOCAB)]), ids, labels, ids[:2], labels[:2])
    assert batches_train(holder, init, data, CONFIG, 1)
    assert batches_train(holder, init, data, CONFIG, 2)  # the plain twin trains mini-batches
    assert holder.refresh_rounds == 0 and holder.releases == 0  # the trial used its own key holder


def test_labels_must_match_the_reviews_before_any_cluster_is_asked():
    ids, labels = reviews(5)
    _, _, model = start()
    with pytest.raises(ValueError, match="5 reviews but 4 labels"):
        train_sentiment_on_cluster(None, model, ids, labels[:4], CONFIG, keyservice="unix:/nonexistent",
                                   round_reviews=1)
