"""Mini-batch training of the sentiment network (``train(..., batch_size=B)``) on the exact schemes.

The oracle is the NumPy reference run by the same mini-batches
(:func:`henn.tasks.sentiment.train_reference` with ``batch_size``): every review of a
batch at the batch's starting weights, the updates summed. CKKS is in
``test_training_ckks.py``.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import he_core
from henn.embedding import Bags
from henn.tasks import sentiment as T
from henn.tasks.sentiment.batched import fit_batched

from henn.data.synthetic import make_reviews

from .test_training import CONFIG, TEXT, _holder, _init, _model, _weights

N = 60


@pytest.fixture(scope="module")
def data():
    return T.prepare(make_reviews(500, seed=11, purity=0.75), validation=150, seed=4, text=TEXT)


def _reference(data, n, batch_size):
    part = T.Prepared(data.vocab, data.train_ids[:n], data.train_labels[:n], data.val_ids, data.val_labels)
    return T.train_reference(part, CONFIG, activation=CONFIG.make_activation().value, init=_init(data),
                             batch_size=batch_size)


@pytest.mark.parametrize("batch_size", [4, 7])
def test_batched_training_is_the_batched_reference(env, data, batch_size):
    env.only_without(he_core.Capability.LEVELS, "tests/henn/tasks/sentiment/test_training_ckks.py")
    model, holder = _model(env, data), _holder(env, data)
    result = T.train(model, holder, data.train_ids[:N], data.train_labels[:N], CONFIG, monitor_every=None,
                     batch_size=batch_size)
    assert result.reviews == N and result.refreshes == holder.refresh_rounds
    ref = _reference(data, N, batch_size)
    W01, w12 = _weights(env, model)
    # A different algorithm from per-review SGD: the reference of batch 1 is measurably elsewhere.
    assert np.max(np.abs(_reference(data, N, 1)["w12"] - ref["w12"])) > 1e-4
    if env.unit == 0:  # the float twin: the same arithmetic
        np.testing.assert_allclose(W01, ref["W01"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(w12, ref["w12"], rtol=0, atol=1e-12)
    else:  # fixed point: the per-review tests' bound (n reviews, ~200 roundings each of magnitude < 8)
        tol = N * 200 * env.unit * 8
        assert np.max(np.abs(W01 - ref["W01"])) <= tol and np.max(np.abs(w12 - ref["w12"])) <= tol


def test_a_batch_of_one_is_per_review_sgd(env, data):
    """``fit_batched`` with batches of one review computes what ``fit`` does, review by review."""
    env.only_without(he_core.Capability.LEVELS, "tests/henn/tasks/sentiment/test_training_ckks.py")
    a, b = _model(env, data), _model(env, data)
    ha, hb = _holder(env, data), _holder(env, data)
    T.train(a, ha, data.train_ids[:N], data.train_labels[:N], CONFIG, monitor_every=None)
    fit_batched(b, hb, Bags(data.train_ids[:N], len(data.vocab)), data.train_labels[:N], CONFIG, 1)
    for x, y in zip(_weights(env, a), _weights(env, b)):
        assert np.array_equal(x, y)


def test_batched_monitoring_releases_the_same_aggregates(env, data):
    env.only_without(he_core.Capability.LEVELS, "tests/henn/tasks/sentiment/test_training_ckks.py")
    model, holder = _model(env, data), _holder(env, data)
    result = T.train(model, holder, data.train_ids, data.train_labels, CONFIG, monitor_every=100, batch_size=5)
    assert [r["reviews"] for r in result.history] == [100, 200, 300] and holder.releases == 3
    assert result.history[-1]["mae"] < result.history[0]["mae"]


def test_batched_argument_errors(env, data):
    model, holder = _model(env, data), _holder(env, data)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            fit_batched(model, holder, Bags(data.train_ids[:4], len(data.vocab)), data.train_labels[:4], CONFIG, bad)
    with pytest.raises(ValueError, match="without a key holder"):
        T.train(model, None, data.train_ids[:4], data.train_labels[:4], CONFIG, batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        T.train_reference(T.Prepared(data.vocab, data.train_ids[:4], data.train_labels[:4], data.val_ids,
                                     data.val_labels), CONFIG, batch_size=0)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_a_linear_schedule_is_the_reference_run_by_the_same_schedule(env, data, batch_size):
    """Each step's rate follows the schedule, in the encrypted run and in the reference alike."""
    env.only_without(he_core.Capability.LEVELS, "tests/henn/tasks/sentiment/test_training_ckks.py")
    config = dataclasses.replace(CONFIG, schedule="linear", lr_end=0.1)
    model, holder = _model(env, data), _holder(env, data)
    T.train(model, holder, data.train_ids[:N], data.train_labels[:N], config, monitor_every=None,
            batch_size=batch_size)
    part = T.Prepared(data.vocab, data.train_ids[:N], data.train_labels[:N], data.val_ids, data.val_labels)
    ref = T.train_reference(part, config, activation=config.make_activation().value, init=_init(data),
                            batch_size=batch_size)
    # the constant rate lands measurably elsewhere: the schedule is applied, not ignored
    assert np.max(np.abs(_reference(data, N, batch_size)["w12"] - ref["w12"])) > 1e-3
    W01, w12 = _weights(env, model)
    tol = 1e-12 if env.unit == 0 else N * 200 * env.unit * 8  # as test_batched_training_is_the_batched_reference
    assert np.max(np.abs(W01 - ref["W01"])) <= tol and np.max(np.abs(w12 - ref["w12"])) <= tol


def test_the_packed_table_path_refuses_a_schedule(data):
    """CKKS's coefficient-packed mini-batches move updates at a scale fixed by lr: a schedule is refused by name."""
    if not _loads_ckks():
        pytest.skip("ckks not built")
    config = dataclasses.replace(CONFIG, schedule="linear")
    scheme, holder = T.setup("ckks", config.hidden)
    model = T.build_model(scheme, *_init(data))
    with pytest.raises(ValueError, match="schedule"):
        T.train(model, holder, data.train_ids[:4], data.train_labels[:4], config, monitor_every=None, batch_size=2)


def _loads_ckks() -> bool:
    try:
        he_core.scheme_class("ckks")
    except Exception:  # noqa: BLE001
        return False
    return True
