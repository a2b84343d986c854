"""The sentiment network on CKKS: packed tables, scheme-requested refreshes, same learning as the twin.

The model code is the one every scheme runs; CKKS keeps ``W01`` coefficient-packed (a
table: gathers and scatters cost no level) and names, through ``RefreshRequired``, the
three values per review that must be re-encrypted by the key holder (the logit into a
constant for the sigmoid, and the two updates into the weights' packing and level).
Parameters: the 128-bit set ``params_for_depth(4)`` picks (N = 8192, scale 2^32).
"""
from __future__ import annotations

import numpy as np
import pytest

import he_core
from henn.data.synthetic import make_reviews
from henn.data.text import TextConfig
from henn.keyholder import KeyHolder
from henn.models.sentiment import EncSentimentNet, PlainSentimentNet, SentimentConfig, init_weights
from henn.training import sentiment as T

CONFIG = SentimentConfig(hidden=4, lr=0.02, init_scale=0.5, degree=5, interval=8.0, seed=1)
TEXT = TextConfig(min_count=3, polarity_cutoff=0.3)


def _ckks_built() -> bool:
    try:
        he_core.scheme_class("ckks")
    except Exception:  # noqa: BLE001 - not built here
        return False
    return True


pytestmark = pytest.mark.skipif(not _ckks_built(), reason="the ckks scheme is not built")


@pytest.fixture(scope="module")
def data():
    return T.prepare(make_reviews(360, seed=11, purity=0.75), validation=100, seed=4, text=TEXT)


@pytest.fixture(scope="module")
def ckks():
    scheme, keyholder = T.setup("ckks", CONFIG.hidden)
    return scheme, keyholder


def _net(scheme, data):
    W01, w12 = init_weights(len(data.vocab), CONFIG)
    return EncSentimentNet.encrypt(scheme, W01, w12, CONFIG.make_activation())


def test_setup_picks_a_secure_set_with_enough_levels(ckks):
    scheme, _ = ckks
    assert scheme.params.levels >= T.STEP_DEPTH and scheme.params.security_bits >= 128


def test_ckks_training_matches_the_plain_twin(ckks, data):
    scheme, keyholder = ckks
    net = _net(scheme, data)
    assert net.W01.ct.meta.get("coeff") and scheme.level(net.W01.ct) == 1  # a table
    before = keyholder.refresh_rounds
    n = len(data.train_ids)
    result = T.train_encrypted(net, keyholder, data.train_ids, data.train_labels, lr=CONFIG.lr, monitor_every=65)
    rounds = keyholder.refresh_rounds - before
    trained = sum(1 for r in data.train_ids if r.size)
    # Three re-encryptions per review (logit, two updates) and one to re-pack w12 at the start.
    assert rounds == 3 * trained + 1, (rounds, trained)
    assert scheme.level(net.W01.ct) == 1 and net.W01.ct.meta.get("coeff")  # the table never dropped a level
    assert net.refresh is None and net.refresh_to is None
    ref = PlainSentimentNet(*init_weights(len(data.vocab), CONFIG), CONFIG.make_activation().value)
    for r, y in zip(data.train_ids, data.train_labels):
        ref.train_step(r, int(y), CONFIG.lr)
    W01, w12 = T.decrypt_weights(net, keyholder)
    # CKKS noise: about 2^-20 per step on the values a step touches, over 260 steps.
    np.testing.assert_allclose(W01, ref.W01, rtol=0, atol=2e-3)
    np.testing.assert_allclose(w12, ref.w12, rtol=0, atol=2e-3)
    assert not np.allclose(ref.w12, init_weights(len(data.vocab), CONFIG)[1], atol=0.05)  # it learned
    assert result.reviews == n and result.final_loss < result.history[0]["loss"]
    ev = T.evaluate_encrypted(net, keyholder, data.val_ids, data.val_labels)
    ref_pred = (CONFIG.make_activation().value(ref.logits(data.val_ids)) > 0.5).astype(int)
    assert np.mean(ev["predictions"] == ref_pred) >= 0.98 and ev["accuracy"] > 0.8


def test_without_a_key_holder_the_first_review_stops_with_a_clear_error(ckks, data):
    scheme, _ = ckks
    net = _net(scheme, data)
    before = net.W01.ct.data.copy()
    with pytest.raises(he_core.RefreshRequired, match="without a key holder") as info:
        T.train_public(net, data.train_ids[:5], data.train_labels[:5], lr=CONFIG.lr)
    assert "serve-keys" in str(info.value)
    np.testing.assert_array_equal(net.W01.ct.data, before)  # nothing half-applied


def test_public_trainer_with_a_key_holder_refreshes_as_asked(ckks, data):
    scheme, keyholder = ckks
    net = _net(scheme, data)
    ids, labels = data.train_ids[:20], data.train_labels[:20]
    before = keyholder.refresh_rounds
    assert T.train_public(net, ids, labels, lr=CONFIG.lr, keyholder=keyholder) == 20
    assert keyholder.refresh_rounds - before == 3 * sum(1 for r in ids if r.size) + 1
    ref = PlainSentimentNet(*init_weights(len(data.vocab), CONFIG), CONFIG.make_activation().value)
    for r, y in zip(ids, labels):
        ref.train_step(r, int(y), CONFIG.lr)
    np.testing.assert_allclose(T.decrypt_weights(net, keyholder)[0], ref.W01, rtol=0, atol=1e-4)


def test_refresh_keeps_a_table_a_table(ckks, data):
    scheme, keyholder = ckks
    net = _net(scheme, data)
    fresh = keyholder.refresh(net.W01, layout=scheme.layout_of(net.W01.ct))
    assert fresh.ct.meta.get("coeff") and scheme.level(fresh.ct) == 1
    np.testing.assert_allclose(keyholder.decrypt(fresh), keyholder.decrypt(net.W01), atol=1e-5)
    assert isinstance(keyholder, KeyHolder)
