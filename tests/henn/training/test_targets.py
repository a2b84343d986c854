"""Refresh targets learnt by a dry run cover every refresh a real run of the same model asks for."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import he_core
from henn import activations
from henn.embedding import Bags, EmbeddingBag
from henn.jobs import JobSpec
from henn.keyholder import RefreshTerms
from henn.layers import Linear
from henn.losses import MSELoss, PolyLogisticLoss
from henn.module import Sequential
from henn.tensor import EncTensor
from henn.training.fit import SinglePartyWarning, fit, in_process_keyholder
from henn.training.targets import RecordingKeyHolder, learn_targets


def _spec(targets, terms) -> JobSpec:
    return JobSpec(job_id="t", key_id="k", scheme="ckks", params_id="p", terms=terms, targets=targets,
                   scale_log2=0.0, model={})


@pytest.fixture(scope="module")
def ckks():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SinglePartyWarning)
        scheme = he_core.get_scheme("ckks", he_core.scheme_class("ckks").params_for_depth(4))
        terms = RefreshTerms(min_aggregate=4)
        _, holder = in_process_keyholder(scheme, [1, 2, 4], terms=terms, rng=he_core.SeededRandom(8))
    return scheme, holder.export_secret_key(), terms


def _run_signatures(scheme, secret, terms, model, X, y, **fit_args) -> list[dict]:
    recorder = RecordingKeyHolder(scheme, secret, terms=terms)
    fit(model, X, y, keyholder=recorder, **fit_args)
    return recorder.signatures


def test_a_table_model_asks_only_for_learnt_targets(ckks):
    scheme, secret, terms = ckks
    rng = np.random.default_rng(1)
    table, w = rng.normal(0, 0.3, (10, 4)), rng.normal(0, 1.0, 4)
    loss = PolyLogisticLoss(activations.make("sigmoid_lsq", 5, 8.0))

    def build(s):
        return Sequential(EmbeddingBag.init(s, 10, 4, values=table),
                          Linear(EncTensor.encrypt(s, w.reshape(1, -1), layout="table"), None, encrypted_input=True))

    args = dict(lr=0.1, batch_size=1, loss=loss, shuffle=False, value_bound=16.0)
    learnt = learn_targets(scheme, secret, terms, build, Bags([[0, 1, 2]] * 3, 10), np.array([1.0, 0.0, 1.0]),
                           **args)
    bags = Bags([rng.choice(10, size=rng.integers(1, 6), replace=False) for _ in range(12)], 10)
    used = _run_signatures(scheme, secret, terms, build(scheme), bags, rng.integers(0, 2, 12).astype(float),
                           **args)
    spec = _spec(learnt, terms)
    assert used and all(spec.allows(sig) for sig in used)
    # and a job learnt for another model does not allow this one's moves
    other = learn_targets(scheme, secret, terms, lambda s: Sequential(Linear.init(s, 2, 1, init_scale=0.5)),
                          np.zeros((4, 2)), np.zeros((4, 1)), lr=0.1, batch_size=4, loss=MSELoss())
    assert not all(_spec(other, terms).allows(sig) for sig in used)


def test_the_dry_run_leaves_the_jobs_model_untouched(ckks):
    scheme, secret, terms = ckks
    weights = EncTensor.encrypt(scheme, np.ones((2, 1)))
    before = scheme.decrypt_exact_local(weights.ct, secret)

    def build(s):
        return Sequential(Linear(EncTensor(s, s.copy(weights.ct)), None))

    learn_targets(scheme, secret, terms, build, np.ones((4, 2)), np.zeros((4, 1)), lr=0.5, batch_size=2,
                  loss=MSELoss(), monitor_every=999)  # the trainer's monitoring settings are the dry run's own
    np.testing.assert_array_equal(scheme.decrypt_exact_local(weights.ct, secret), before)
