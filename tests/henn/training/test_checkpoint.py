"""henn.training.checkpoint: the trainer's checkpoint file, restored into a model and a key holder.

A restore puts every ciphertext back, returns the run's place, and never lowers the key
holder's counters (a stale or tampered file cannot reset the job's accounting).
"""
import math

import numpy as np
import pytest

import he_core
from henn.keyholder import KeyHolder
from henn.layers import Linear
from henn.module import Sequential
from henn.tensor import EncTensor
from henn.training import checkpoint


def setup(seed=1, shape=(3, 2)):
    s = he_core.get_scheme("plain")
    secret = s.keygen(rng=he_core.SeededRandom(seed)).secret
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=shape), rng.normal(size=(1, shape[1]))
    model = Sequential(Linear(EncTensor.encrypt(s, w), EncTensor.encrypt(s, b)))
    return s, model, KeyHolder(s, secret), (w, b)


def test_a_checkpoint_restores_weights_progress_and_counters(tmp_path):
    s, model, kh, (w, b) = setup()
    kh.refresh_rounds, kh.entries_read, kh.worst_margin_bits = 7, 123, 40.5
    order = np.random.default_rng(99)
    order.random(5)
    path = checkpoint.save(tmp_path / "run.henn", model, kh, epochs_done=3, records=[{"loss": 0.5}],
                           order_rng=order, policy={"next": 4})
    fresh_kh = KeyHolder(s, kh.export_secret_key())
    fresh_model = Sequential(Linear(EncTensor.encrypt(s, np.zeros((3, 2))), EncTensor.encrypt(s, np.zeros((1, 2)))))
    epochs, records, rng_state, policy = checkpoint.restore(path, fresh_model, fresh_kh)
    assert (epochs, records, policy) == (3, [{"loss": 0.5}], {"next": 4})
    resumed = np.random.default_rng()
    resumed.bit_generator.state = rng_state
    assert resumed.random() == order.random()
    values = {name: p.value.ct.data for name, p in fresh_model.named_parameters()}
    np.testing.assert_array_equal(values["0.weight"], w)
    np.testing.assert_array_equal(values["0.bias"], b)
    assert (fresh_kh.refresh_rounds, fresh_kh.entries_read, fresh_kh.worst_margin_bits) == (7, 123, 40.5)


def test_restoring_never_lowers_the_counters(tmp_path):
    s, model, kh, _ = setup()
    path = checkpoint.save(tmp_path / "old.henn", model, kh, epochs_done=1, records=[],
                           order_rng=np.random.default_rng(0))
    kh.refresh_rounds, kh.entries_read, kh.worst_margin_bits = 50, 500, 10.0
    checkpoint.restore(path, model, kh)
    assert (kh.refresh_rounds, kh.entries_read, kh.worst_margin_bits) == (50, 500, 10.0)
    assert math.isinf(KeyHolder(s, kh.export_secret_key()).worst_margin_bits)


def test_another_models_checkpoint_is_refused(tmp_path):
    s, model, kh, _ = setup()
    path = checkpoint.save(tmp_path / "run.henn", model, kh, epochs_done=1, records=[],
                           order_rng=np.random.default_rng(0))
    wider = Sequential(Linear(EncTensor.encrypt(s, np.zeros((3, 4))), EncTensor.encrypt(s, np.zeros((1, 4)))))
    with pytest.raises(he_core.FormatError, match="has shape"):
        checkpoint.restore(path, wider, kh)
    deeper = Sequential(Linear(EncTensor.encrypt(s, np.zeros((3, 2))), None))
    with pytest.raises(he_core.FormatError, match="the model has"):
        checkpoint.restore(path, deeper, kh)
    _, other_model, other_kh, _ = setup(seed=5)
    with pytest.raises(he_core.FormatError):
        checkpoint.restore(path, other_model, other_kh)  # another key


def test_a_bundle_that_is_not_a_checkpoint_is_refused(tmp_path):
    s, model, kh, _ = setup()
    bundle = he_core.serialization.Bundle({n: p.value.ct for n, p in model.named_parameters()}, {"format": "x"})
    path = he_core.serialization.save(bundle, tmp_path / "b.henn")
    with pytest.raises(he_core.FormatError, match="not a henn fit checkpoint"):
        checkpoint.restore(path, model, kh)
