"""The batched CKKS step's prototype (ckks_packed_step.py) computes the NumPy mini-batch SGD.

Small, insecure parameters (N = 1024, the protocol set's prime shape) and synthetic
reviews: two batches of eight through real masked refreshes, against the reference by the
same batches and schedule. Run: ``pytest benchmarks/henn/training/test_ckks_packed_step.py``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import he_core
from he_core import KeyRequirements, SeededRandom
from he_core.schemes.ckks import CkksParams
from he_core.schemes.ckks.scheme import CkksScheme
from henn.data.synthetic import make_reviews
from henn.data.text import TextConfig
from henn.keyholder import KeyHolder
from henn.tasks import sentiment as T

from .ckks_packed_step import REQUESTS_PER_BATCH, PackedTrainer, job_terms, reference


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_two_batches_are_the_reference_mini_batch_sgd(schedule):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        scheme = CkksScheme(CkksParams(poly_degree=1024, levels=5, first_bits=60, scale_bits=54, special_bits=60,
                                       floor_levels=1, floor_bits=61, allow_insecure=True))
    secret, _ = scheme.keygen(KeyRequirements(sizes=(1, 8), coefficient_moves=True), rng=SeededRandom(3))
    data = T.prepare(make_reviews(60, seed=5, purity=0.8), validation=10, seed=1,
                     text=TextConfig(min_count=1, polarity_cutoff=0.0))
    ids, labels = data.train_ids[:16], data.train_labels[:16]
    config = T.SentimentConfig(lr=0.05, schedule=schedule)
    W01 = np.random.default_rng(2).normal(0, 0.05, (len(data.vocab), 8))
    w12 = np.random.default_rng(3).normal(0, 1.0, 8)
    holder = KeyHolder(scheme, secret, terms=job_terms(len(data.vocab), 16, 8, 1024))
    trainer = PackedTrainer(scheme, holder, config, W01, w12)
    run = trainer.train(ids, labels, 8)
    ref_W, ref_w = reference(W01, w12, ids, labels, config, 8)
    assert np.max(np.abs(ref_w - w12)) > 1e-3  # it trained
    np.testing.assert_allclose(scheme.decrypt_exact_local(trainer.W, secret), ref_W, rtol=0, atol=1e-8)
    np.testing.assert_allclose(scheme.decrypt_exact_local(trainer.w, secret)[0], ref_w, rtol=0, atol=1e-8)
    assert run.reviews == 16 and run.rounds == 2 * REQUESTS_PER_BATCH
    assert scheme.level(trainer.W) == scheme.level(scheme.encrypt(W01, layout="table"))  # never lowered
