"""The IMDB sentiment network trained data-parallel: :func:`~henn.distributed.training.train_on_cluster` configured.

Each task runs the one-process trainer's settings (:func:`henn.tasks.sentiment.train`:
one review per SGD step, in data order, the network's bounds) on its chunk of reviews;
:func:`sentiment_key_job` serves the job's keys beside the driver for a single-party
run, and :func:`compare_on_cluster` is ``henn train sentiment --cluster``: the cluster run
beside one process with the same effective batch.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

import he_core

from ..embedding import Bags
from ..keyholder import KeyHolder, RefreshTerms
from ..module import Sequential
from ..tasks import sentiment as T
from .cluster import Cluster
from ..keyservice.local_job import LocalKeyJob
from ..training.fit import fit
from .training import ClusterTrainReport, same_batch_order, train_on_cluster


def fit_args(config: T.SentimentConfig) -> dict:
    """The per-task :func:`~henn.training.fit.fit` arguments: those of :func:`henn.tasks.sentiment.train`."""
    return {"lr": config.lr, "batch_size": 1, "loss": config.make_loss(), "shuffle": False,
            "value_bound": T.VALUE_BOUND, "update_bound": T.update_bound(config)}


def sentiment_key_job(keyholder: KeyHolder, model: Sequential, config: T.SentimentConfig,
                      terms: RefreshTerms, *, shared: bool = True) -> LocalKeyJob:
    """The owner's key service for this run's job, beside the driver (single party).

    Args:
        keyholder: the in-process key holder whose secret key the job serves.
        model: the encrypted network (its weights' layouts and levels decide the targets).
        config: the network's settings (the dry run that learns the targets uses them).
        terms: the job's terms, sized for every worker's reviews.
        shared: see :class:`~henn.keyservice.local_job.LocalKeyJob`.
    """
    scheme, secret = keyholder.scheme, keyholder.export_secret_key()
    w = T.weights(model)
    targets = T.learn_targets(scheme, secret, w["W01"].ct, w["w12"].ct, config, terms)
    return LocalKeyJob(scheme, secret, terms, targets, model={"task": "sentiment", "distributed": True},
                       shared=shared)


def train_sentiment_on_cluster(cluster: Cluster, model: Sequential, ids: Sequence[np.ndarray], labels: Any,
                               config: T.SentimentConfig, *, keyservice: str, round_reviews: int, epochs: int = 1,
                               job: dict | None = None, tls_dir: str | None = None,
                               connection_per_request: bool = True, allow_insecure: bool = False,
                               rng: he_core.RandomSource | None = None, on_round: Any = None) -> ClusterTrainReport:
    """Per-review SGD on each worker's shard, ``round_reviews`` reviews per worker per round.

    Args:
        model: the encrypted network (:func:`henn.tasks.sentiment.build_model`; updated in place).
        ids, labels: the training reviews' word indices and 1/0 labels.
        keyservice, job, tls_dir, connection_per_request, allow_insecure, rng, on_round: see
            :func:`~henn.distributed.training.train_on_cluster`.
    """
    if len(labels) != len(ids):
        raise ValueError(f"cannot train: {len(ids)} reviews but {len(labels)} labels")
    X = Bags(ids, model[0].in_features)
    return train_on_cluster(cluster, model, X, np.asarray(labels, dtype=np.float64), keyservice=keyservice,
                            build=T.model_from, fit_args=fit_args(config), round_rows=round_reviews, epochs=epochs,
                            job=job, tls_dir=tls_dir, connection_per_request=connection_per_request,
                            allow_insecure=allow_insecure, rng=rng, on_round=on_round)


def train_same_batch(model: Sequential, keyholder: Any, ids: Sequence[np.ndarray], labels: Any,
                     config: T.SentimentConfig, *, workers: int, epochs: int = 1) -> float:
    """One process, the cluster's effective batch: mini-batches of ``workers`` reviews in :func:`same_batch_order`.

    The one-process run a cluster run of ``workers`` workers is compared with (with one
    review per worker and round the two compute the same weights).

    Returns:
        The training loop's wall seconds.
    """
    order = same_batch_order(len(ids), workers)
    X = Bags([ids[i] for i in order], model[0].in_features)
    y = np.asarray(labels, dtype=np.float64)[order]
    history = fit(model, X, y, keyholder=keyholder, epochs=epochs, monitor=False,
                  **{**fit_args(config), "batch_size": workers})
    return history.seconds




def batches_train(keyholder: KeyHolder, init: tuple[np.ndarray, np.ndarray], data: T.Prepared,
                  config: T.SentimentConfig, k: int) -> bool:
    """Whether the scheme trains this network on mini-batches of ``k`` reviews: one trial step on a copy.

    CKKS does not (its tables' coefficient packing cannot be moved into slots for a batch):
    it trains one review at a time.
    """
    if k == 1:
        return True
    probe = KeyHolder(keyholder.scheme, keyholder.export_secret_key(), terms=keyholder.terms)
    try:
        train_same_batch(T.build_model(keyholder.scheme, *init), probe, data.train_ids[:k], data.train_labels[:k],
                         config, workers=k)
    except he_core.HEError:
        return False
    return True


def compare_on_cluster(spec: str | None, workers: int | None, round_reviews: int, keyholder: KeyHolder,
                       model: Sequential, init: tuple[np.ndarray, np.ndarray], data: T.Prepared,
                       config: T.SentimentConfig, *, epochs: int = 1) -> tuple[T.TrainResult, dict]:
    """``henn train sentiment --cluster``: train ``model`` on the cluster, and one process with the same batch.

    Single party, as the one-process command: ``keyholder`` holds the secret key in this
    process. The workers refresh through :func:`sentiment_key_job` (a job whose terms
    cover all of them); the one-process comparison trains a copy of the initial weights
    with mini-batches of as many reviews as there are workers (:func:`train_same_batch`,
    its own key holder on the same key) and is validated here. A scheme that trains this
    network one review at a time only (CKKS: its tables cannot be batched) is compared
    with one process at batch 1 instead (``one_process.same_batch`` is then false).

    Returns:
        The cluster run as a :class:`~henn.tasks.sentiment.TrainResult` (no released
        aggregates: workers do not monitor), and the report: ``cluster`` (the
        :class:`~henn.distributed.training.ClusterTrainReport` as a dict, the job's
        counts, the process CPU seconds), ``one_process`` (its accuracy, seconds, batch)
        and ``speedup`` (one-process seconds over cluster seconds).
    """
    scheme = keyholder.scheme
    with Cluster(spec, workers=workers) as cluster:
        k = len(cluster.workers())
        batch = k if batches_train(keyholder, init, data, config, k) else 1
        single = T.build_model(scheme, *init)
        own = KeyHolder(scheme, keyholder.export_secret_key(), terms=keyholder.terms)
        cpu = time.process_time()
        if batch > 1:
            one_seconds = train_same_batch(single, own, data.train_ids, data.train_labels, config, workers=k,
                                           epochs=epochs)
        else:
            one_seconds = T.train(single, own, data.train_ids, data.train_labels, config, epochs=epochs,
                                  monitor_every=None).seconds
        one_cpu = time.process_time() - cpu
        with sentiment_key_job(keyholder, model, config, keyholder.terms) as job:
            cpu = time.process_time()
            report = train_sentiment_on_cluster(cluster, model, data.train_ids, data.train_labels, config,
                                                keyservice=job.address, round_reviews=round_reviews, epochs=epochs,
                                                job=job.job, connection_per_request=False,
                                                allow_insecure=scheme.params.security_bits == 0)
            driver_cpu = time.process_time() - cpu
            served = {"job_refreshes": job.service.journal.refreshes, "job_replays": job.service.replays,
                      "job_masked_entries": job.service.journal.entries}
        address = cluster.address
    one = {"batch": batch, "same_batch": batch == k, "seconds": one_seconds, "cpu_seconds": one_cpu, "refreshes": own.refresh_rounds}
    if data.val_ids:
        ev = T.evaluate_encrypted(single, own, data.val_ids, data.val_labels, config)
        one["validation_accuracy"] = ev["accuracy"]
    details = {**report.to_dict(), **served, "address": address, "round_reviews": round_reviews,
               "driver_cpu_seconds": driver_cpu}
    result = T.TrainResult([], report.seconds, report.rows, report.refreshes)
    return result, {"cluster": details, "one_process": one, "speedup": one_seconds / report.seconds}


__all__ = ["compare_on_cluster", "fit_args", "sentiment_key_job", "train_same_batch", "train_sentiment_on_cluster"]
