"""The sentiment network on CKKS: packed tables, scheme-requested refreshes, same learning as the twin.

The model code is the one every scheme runs (:func:`henn.tasks.sentiment.build_model`
trained by :func:`henn.training.fit.fit`); CKKS keeps ``W01`` coefficient-packed (a
table: gathers and scatters cost no level) and names, through ``RefreshRequired``, the
three values per review that the fit's refresh policy moves through the key holder
(the logit into a constant for the sigmoid, and the two updates into the weights'
packing and level). Parameters: the 128-bit set ``params_for_depth(4)`` picks
(N = 16384, 5 levels of 54-bit primes: one level below the tables stays free so every
refresh has room for its mask).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import he_core
from henn.data.synthetic import make_reviews
from henn.data.text import TextConfig
from henn.embedding import Bags
from henn.keyholder import KeyHolder
from henn.tasks import sentiment as T
from henn.tasks.sentiment import SentimentConfig, init_weights
from henn.tasks.sentiment.batched import fit_batched
from he_core.schemes.ckks.coeff import TABLE_LEVEL

from .test_training import reference_errors

CONFIG = SentimentConfig(hidden=4, lr=0.02, init_scale=0.5, degree=5, interval=8.0)
TEXT = TextConfig(min_count=3, polarity_cutoff=0.3)




@pytest.fixture(scope="module")
def data():
    return T.prepare(make_reviews(360, seed=11, purity=0.75), validation=100, seed=4, text=TEXT)


@pytest.fixture(scope="module")
def ckks():
    scheme, keyholder = T.setup("ckks", CONFIG.hidden, terms=T.terms_for(400, 1, CONFIG.hidden, validation=100,
                                                                           monitor_every=65))
    return scheme, keyholder


def _init(data):
    return init_weights(len(data.vocab), CONFIG, he_core.SeededRandom(1))


def _model(scheme, data):
    return T.build_model(scheme, *_init(data))


def _exact(keyholder, tensor):
    return keyholder.scheme.decrypt_exact_local(tensor.ct, keyholder.export_secret_key())


def _reference(data, n=None):
    """``train_reference`` (the polynomial sigmoid, the same initial weights) on the first ``n`` reviews."""
    n = len(data.train_ids) if n is None else n
    part = T.Prepared(data.vocab, data.train_ids[:n], data.train_labels[:n], data.val_ids, data.val_labels)
    return T.train_reference(part, CONFIG, activation=CONFIG.make_activation().value, init=_init(data))


def test_setup_picks_a_secure_set_with_enough_levels(ckks):
    scheme, _ = ckks
    assert scheme.params.levels >= T.STEP_DEPTH and scheme.params.security_bits >= 128


def test_ckks_training_matches_the_plain_twin(ckks, data):
    scheme, keyholder = ckks
    model = _model(scheme, data)
    W01_ct = T.weights(model)["W01"].ct
    assert W01_ct.meta.get("coeff") and scheme.level(W01_ct) == TABLE_LEVEL  # a table
    before = keyholder.refresh_rounds
    n = len(data.train_ids)
    assert all(r.size for r in data.train_ids)  # every review a full step (an empty one skips W01's scatter)
    result = T.train(model, keyholder, data.train_ids, data.train_labels, CONFIG,
                     monitor_every=keyholder.terms.min_aggregate)
    rounds = keyholder.refresh_rounds - before
    # Three re-encryptions per review (logit, two updates), one to re-pack w12 at the start, and one per
    # released aggregate (the owner decrypts the key holder's fresh encryption, not the trainer's noise).
    assert rounds == result.refreshes == 3 * n + 1 + len(result.history), (rounds, n)
    W01_ct = T.weights(model)["W01"].ct
    assert scheme.level(W01_ct) == TABLE_LEVEL and W01_ct.meta.get("coeff")  # never dropped a level
    assert all(p.value.scheme is scheme for p in model.parameters())  # no refresh policy left attached
    ref = _reference(data)
    errors = reference_errors(data.vocab, data.train_ids, data.train_labels, CONFIG, _init(data))
    W01, w12 = _exact(keyholder, T.weights(model)["W01"]), _exact(keyholder, T.weights(model)["w12"])[0]
    # CKKS noise at 54-bit scales: below 2^-30 per step on the values a step touches.
    np.testing.assert_allclose(W01, ref["W01"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(w12, ref["w12"], rtol=0, atol=1e-6)
    assert not np.allclose(ref["w12"], _init(data)[1], atol=0.05)  # it learned
    # the owner saw only aggregates of 65 reviews: the released means match the reference's
    k = keyholder.terms.min_aggregate
    assert [r["reviews"] for r in result.history] == [k * (i + 1) for i in range(n // k)]
    np.testing.assert_allclose([r["mae"] for r in result.history],
                               [np.mean(errors[k * i: k * (i + 1)]) for i in range(n // k)], rtol=0, atol=1e-3)
    released = T.release_weights(model, keyholder)
    np.testing.assert_allclose(released[0], W01, rtol=0, atol=2.0**-16 * np.abs(W01).max())
    assert result.reviews == n
    ev = T.evaluate_encrypted(model, keyholder, data.val_ids, data.val_labels, CONFIG)
    ref_pred = (CONFIG.make_activation().value(T.reference_logits(ref["W01"], ref["w12"], data.val_ids)) > 0.5)
    assert np.mean(ev["predictions"] == ref_pred.astype(int)) >= 0.98 and ev["accuracy"] > 0.8


def test_without_a_key_holder_the_first_review_stops_with_a_clear_error(ckks, data):
    scheme, _ = ckks
    model = _model(scheme, data)
    before = T.weights(model)["W01"].ct.data.copy()
    with pytest.raises(he_core.RefreshRequired, match="without a key holder") as info:
        T.train_public(model, data.train_ids[:5], data.train_labels[:5], CONFIG)
    assert "serve-keys" in str(info.value) and "review 1 of 5" in str(info.value)
    np.testing.assert_array_equal(T.weights(model)["W01"].ct.data, before)  # nothing half-applied
    with pytest.raises(he_core.RefreshRequired):  # stop_when_exhausted: no review trained is no chunk
        T.train_public(model, data.train_ids[:5], data.train_labels[:5], CONFIG, stop_when_exhausted=True)


def test_public_trainer_with_a_key_holder_refreshes_as_asked(ckks, data):
    scheme, keyholder = ckks
    model = _model(scheme, data)
    ids, labels = data.train_ids[:20], data.train_labels[:20]
    before = keyholder.refresh_rounds
    assert T.train_public(model, ids, labels, CONFIG, keyholder=keyholder, monitor_every=None) == 20
    assert keyholder.refresh_rounds - before == 3 * sum(1 for r in ids if r.size) + 1
    np.testing.assert_allclose(_exact(keyholder, T.weights(model)["W01"]), _reference(data, 20)["W01"],
                               rtol=0, atol=1e-6)


def test_refresh_keeps_a_table_a_table(ckks, data):
    scheme, keyholder = ckks
    W01 = T.weights(_model(scheme, data))["W01"]
    fresh = keyholder.refresh(W01, layout=scheme.layout_of(W01.ct), value_bound=4.0)
    assert fresh.ct.meta.get("coeff") and scheme.level(fresh.ct) == TABLE_LEVEL
    np.testing.assert_allclose(_exact(keyholder, fresh), _exact(keyholder, W01), atol=1e-9)
    assert isinstance(keyholder, KeyHolder)


# ---------------------------------------------------------------- mini-batches (train(..., batch_size=B))
# Against the NumPy reference run by the same mini-batches, and the refresh rounds each batch
# costs, from the key holder's own counter: per review the logit (into the polynomial's
# constant) and the W01 row (into the table's level); per batch ceil(B / K) moves of w12's
# summed update, K being how many reviews' sum the floor level's mask still covers.
BATCH_REVIEWS = 8
B = 4


def test_ckks_batched_training_matches_the_batched_reference(ckks, data):
    scheme, keyholder = ckks
    model = _model(scheme, data)
    before = keyholder.refresh_rounds
    n = BATCH_REVIEWS
    _, _, stats = fit_batched(model, keyholder, Bags(data.train_ids[:n], len(data.vocab)), data.train_labels[:n],
                              CONFIG, B)
    part = T.Prepared(data.vocab, data.train_ids[:n], data.train_labels[:n], data.val_ids, data.val_labels)
    ref = T.train_reference(part, CONFIG, activation=CONFIG.make_activation().value, init=_init(data), batch_size=B)
    W01, w12 = _exact(keyholder, T.weights(model)["W01"]), _exact(keyholder, T.weights(model)["w12"])[0]
    # Measured: 7e-8 on both weights after 4 batches of 4 (CKKS noise at 54-bit scales and the
    # refreshes' one-unit roundings); the bound is the per-review test's.
    np.testing.assert_allclose(W01, ref["W01"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(w12, ref["w12"], rtol=0, atol=1e-6)
    assert np.max(np.abs(ref["W01"])) > 1e-3  # W01 (from zero) moved by 1000x the tolerance
    W01_ct = T.weights(model)["W01"].ct
    assert scheme.level(W01_ct) == TABLE_LEVEL and W01_ct.meta.get("coeff")  # never lowered
    k = stats["w12_reviews_per_refresh"]
    assert 2 <= k <= B  # a real sum: fewer w12 refreshes than reviews
    expected = [2 * B + math.ceil(B / k)] * (n // B)
    expected[0] += 1  # w12 re-packed once, at the start, for the logit's inner product
    assert stats["rounds_per_batch"] == expected
    assert keyholder.refresh_rounds - before == sum(expected)


def test_ckks_batch_of_one_refreshes_as_per_review_sgd(ckks, data):
    scheme, keyholder = ckks
    a, b = _model(scheme, data), _model(scheme, data)
    r0 = keyholder.refresh_rounds
    T.train(a, keyholder, data.train_ids[:3], data.train_labels[:3], CONFIG, monitor_every=None)
    r1 = keyholder.refresh_rounds
    _, _, stats = fit_batched(b, keyholder, Bags(data.train_ids[:3], len(data.vocab)), data.train_labels[:3],
                              CONFIG, 1)
    assert r1 - r0 == keyholder.refresh_rounds - r1 == 3 * 3 + 1
    assert stats["rounds_per_batch"] == [4, 3, 3]
    for name in ("W01", "w12"):
        np.testing.assert_allclose(_exact(keyholder, T.weights(a)[name]), _exact(keyholder, T.weights(b)[name]),
                                   rtol=0, atol=1e-7)


@pytest.mark.parametrize("bad", [0, 2.5])
def test_ckks_batched_refuses_a_bad_batch_size(ckks, data, bad):
    scheme, keyholder = ckks
    with pytest.raises(ValueError, match="batch_size"):
        fit_batched(_model(scheme, data), keyholder, Bags(data.train_ids[:2], len(data.vocab)),
                    data.train_labels[:2], CONFIG, bad)


def test_ckks_batched_refreshes_are_ones_the_job_allows(ckks, data):
    """The owner's job learns its allowed refreshes from a per-review dry run: a batched trainer asks for no other.

    (The summed ``w12`` update is the per-review update's signature: same shape, layout and
    levels; only its mask is wider, sized on the trainer's side.)
    """
    from henn import jobs
    from henn.training.targets import RecordingKeyHolder

    scheme, keyholder = ckks
    secret = keyholder.export_secret_key()
    model = _model(scheme, data)
    w = T.weights(model)
    allowed = T.learn_targets(scheme, secret, w["W01"].ct, w["w12"].ct, CONFIG, keyholder.terms)
    spec = jobs.JobSpec(job_id=jobs.new_job_id(), key_id=secret.key_id, scheme=scheme.name,
                        params_id=scheme.params_id, terms=keyholder.terms, targets=allowed,
                        scale_log2=math.log2(scheme.params.default_scale), model={"task": "test"})
    recording = RecordingKeyHolder(scheme, secret, terms=keyholder.terms)
    _, _, stats = fit_batched(model, recording, Bags(data.train_ids[:B], len(data.vocab)), data.train_labels[:B],
                              CONFIG, B)
    # logits and rows, the w12 sums, w12's first re-packing
    assert len(recording.signatures) == 2 * B + math.ceil(B / stats["w12_reviews_per_refresh"]) + 1
    assert all(spec.allows(sig) for sig in recording.signatures), [s for s in recording.signatures
                                                                   if not spec.allows(s)]
