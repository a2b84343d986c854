"""Training the encrypted sentiment network on a synthetic corpus (fast; every scheme)."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

import he_core
from henn.data.synthetic import make_reviews
from henn.data.text import TextConfig
from henn.models.sentiment import EncSentimentNet, PlainSentimentNet, SentimentConfig, init_weights
from henn.training import sentiment as T

HIDDEN = 4
CONFIG = SentimentConfig(hidden=HIDDEN, lr=0.02, init_scale=0.5, degree=5, interval=8.0, seed=1)
TEXT = TextConfig(min_count=3, polarity_cutoff=0.3)


@pytest.fixture(scope="module")
def data():
    return T.prepare(make_reviews(500, seed=11, purity=0.75), validation=150, seed=4, text=TEXT)


def _encrypted(env, data):
    W01, w12 = init_weights(len(data.vocab), CONFIG)
    return EncSentimentNet.encrypt(env.scheme, W01, w12, CONFIG.make_activation())


def test_prepare_splits_and_builds_the_vocabulary_on_training_reviews_only():
    reviews = make_reviews(60, seed=2)
    reviews.texts[0] = reviews.texts[0] + " zzzonlyhere " * 10   # review 0 ends up held out or not
    data = T.prepare(reviews, validation=20, seed=0, text=TextConfig(min_count=5, polarity_cutoff=0.0))
    assert len(data.train_ids) == 40 and len(data.val_ids) == 20
    train_idx, val_idx = T.split_validation(60, 20, 0)
    assert ("zzzonlyhere" in data.vocab.index) == (0 in train_idx)
    assert all(ids.dtype == np.int64 and np.all(np.diff(ids) > 0) for ids in data.train_ids + data.val_ids)
    limited = T.prepare(reviews, validation=20, limit=10, seed=0, text=TextConfig(min_count=1))
    assert len(limited.train_ids) == 10
    with pytest.raises(ValueError, match="limit must be positive"):
        T.prepare(reviews, validation=20, limit=0)


def test_training_learns_and_matches_the_reference(env, data):
    net = _encrypted(env, data)
    result = T.train_encrypted(net, env.keyholder, data.train_ids, data.train_labels, lr=CONFIG.lr, epochs=2,
                               monitor_every=100)
    assert result.reviews == 2 * len(data.train_ids) and len(result.history) == 8
    assert result.history[-1]["reviews"] == result.reviews
    assert result.final_loss < result.history[0]["loss"]
    ev = T.evaluate_encrypted(net, env.keyholder, data.val_ids, data.val_labels)
    assert ev["accuracy"] > 0.85

    act = CONFIG.make_activation()
    ref = PlainSentimentNet(*init_weights(len(data.vocab), CONFIG), act.value)
    running = []
    for _ in range(2):
        for r, y in zip(data.train_ids, data.train_labels):
            running.append((ref.train_step(r, int(y), CONFIG.lr) > 0.5) == (y == 1))
    ref_pred = (act.value(ref.logits(data.val_ids)) > 0.5).astype(int)
    if env.unit == 0:  # float twin: identical arithmetic
        assert result.train_accuracy == pytest.approx(np.mean(running))
        assert np.array_equal(ev["predictions"], ref_pred)
    else:  # fixed point: a few borderline reviews may flip
        assert abs(result.train_accuracy - np.mean(running)) <= 0.02
        assert np.mean(ev["predictions"] == ref_pred) >= 0.97

    W01, w12 = T.decrypt_weights(net, env.keyholder)
    clear = T.clear_predictions(W01, w12, data.val_ids, act.value)
    assert np.mean(clear == ev["predictions"]) >= (1.0 if env.unit == 0 else 0.98)


def test_refreshes_only_when_the_scheme_has_a_budget(env, data):
    net = _encrypted(env, data)
    before = env.keyholder.refresh_rounds
    result = T.train_encrypted(net, env.keyholder, data.train_ids[:60], data.train_labels[:60], lr=CONFIG.lr)
    rounds = env.keyholder.refresh_rounds - before
    if env.name == "plain":
        assert rounds == 0 and result.refreshes == 0
    else:
        assert rounds >= 60  # the scalar step of every review at least
        assert net.W01.budget().remaining >= T.RefreshPolicy().w01_reserve
    assert net.refresh is None  # the hook is removed after training


def test_a_step_that_runs_out_of_budget_is_refreshed_and_retried(data, monkeypatch):
    scheme = he_core.get_scheme("plain")
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, HIDDEN)))
    from henn.keyholder import KeyHolder
    keyholder = KeyHolder(scheme, secret)
    W01, w12 = init_weights(len(data.vocab), CONFIG)
    net = EncSentimentNet.encrypt(scheme, W01, w12, CONFIG.make_activation())
    trainer = T._BoundedTrainer(net, keyholder, T.RefreshPolicy())
    real, calls = net.train_step, []

    def flaky(ids, y, lr):
        calls.append(1)
        if len(calls) == 1:
            raise he_core.NoiseBudgetExhausted("cannot inner: test")
        return real(ids, y, lr)

    monkeypatch.setattr(net, "train_step", flaky)
    trainer.step(data.train_ids[0], 1, CONFIG.lr)
    assert len(calls) == 2 and trainer.refreshes == 2 and keyholder.refresh_rounds == 2


def test_monitor_recovers_p_from_the_step(env):
    scheme = env.scheme
    lr = 0.5
    p = np.array([0.9, 0.2, 0.6, 0.4])
    y = [1, 0, 0, 1]
    steps = [scheme.encrypt([[-lr * (pi - yi)]]) for pi, yi in zip(p, y)]
    net = type("N", (), {"scheme": scheme, "coeffs": (0.5,)})()
    record, correct = T._monitor(net, env.keyholder, steps + [None], y + [1], lr)
    assert correct == 2  # 0.9 -> 1 ok, 0.2 -> 0 ok, 0.6 -> 1 wrong, 0.4 -> 0 wrong, empty -> 0.5 wrong
    expected = np.mean(T.cross_entropy(np.append(p, 0.5), np.array(y + [1], dtype=float)))
    assert record["loss"] == pytest.approx(expected, abs=1e-3)


def test_training_argument_errors(data):
    net = type("N", (), {})()
    with pytest.raises(ValueError, match="epochs and monitor_every"):
        T.train_encrypted(net, None, data.train_ids, data.train_labels, lr=0.1, epochs=0)
    scheme, keyholder = T.setup("plain", HIDDEN)
    enc = EncSentimentNet.encrypt(scheme, *init_weights(len(data.vocab), CONFIG), CONFIG.make_activation())
    with pytest.raises(ValueError, match="reviews but"):
        T.train_encrypted(enc, keyholder, data.train_ids, data.train_labels[:3], lr=0.1)


def test_empty_reviews_train_nothing_and_predict_s0(data):
    scheme, keyholder = T.setup("plain", HIDDEN)
    enc = EncSentimentNet.encrypt(scheme, *init_weights(len(data.vocab), CONFIG), CONFIG.make_activation())
    empty = np.zeros(0, dtype=np.int64)
    result = T.train_encrypted(enc, keyholder, [empty, empty], np.array([1, 0]), lr=0.1)
    assert result.history[0]["accuracy"] == 0.5  # p = s(0) = 0.5 is read as negative
    assert not keyholder.decrypt(enc.W01).any()
    p = T.predict_encrypted(enc, keyholder, [empty, data.val_ids[0]])
    assert p[0] == pytest.approx(enc.coeffs[0])


def test_save_and_load_round_trip(env, data, tmp_path):
    net = _encrypted(env, data)
    T.train_encrypted(net, env.keyholder, data.train_ids[:100], data.train_labels[:100], lr=CONFIG.lr)
    before = T.predict_encrypted(net, env.keyholder, data.val_ids)
    T.save_sentiment(tmp_path / "m", net, env.keyholder, data.vocab, CONFIG, {"note": 1})
    assert stat.S_IMODE(os.stat(tmp_path / "m" / "secret.key").st_mode) == 0o600
    net2, keyholder2, vocab2, config2 = T.load_sentiment(tmp_path / "m")
    assert vocab2.words == data.vocab.words and config2 == CONFIG and net2.scheme.name == env.name
    after = T.predict_encrypted(net2, keyholder2, data.val_ids)
    tol = 1e-12 if env.unit == 0 else 300 * env.unit
    assert np.max(np.abs(after - before)) <= tol


def test_loading_another_task_is_refused(tmp_path, data):
    from henn import io

    scheme, keyholder = T.setup("plain", HIDDEN)
    enc = EncSentimentNet.encrypt(scheme, *init_weights(len(data.vocab), CONFIG), CONFIG.make_activation())
    io.save_model(tmp_path, enc, scheme, meta={"task": "xor"}, secret=keyholder.export_secret_key())
    with pytest.raises(ValueError, match="holds a 'xor' model"):
        T.load_sentiment(tmp_path)
    with pytest.raises(FileNotFoundError):
        T.load_sentiment(tmp_path / "missing")


def test_step_refresher_keeps_the_value_and_resets_the_noise(env):
    scheme, keyholder = env.scheme, env.keyholder
    worn = scheme.polyval(scheme.encrypt([[0.3]]), [0.1, 0.5, 0.0, 0.2])
    refresher = T.StepRefresher(scheme, keyholder, rng=he_core.SeededRandom(3))
    before = keyholder.refresh_rounds
    fresh = [refresher(worn) for _ in range(3)]
    assert keyholder.refresh_rounds == before + 3  # the key holder's re-encryption, counted
    exact = env.name == "vhe"  # an integer scheme: masks on its grid make mask-then-unmask exact
    for ct in fresh:
        np.testing.assert_allclose(keyholder.decrypt(ct), keyholder.decrypt(worn), rtol=0,
                                   atol=0.0 if exact else 1e-12)
        if env.name == "vhe":
            assert ct.meta["noise"] < worn.meta["noise"]
    masks = refresher._masks[-3:]
    bound = keyholder.mask_bound
    assert all(-bound <= m <= bound for m in masks) and len(set(masks)) == 3
    # anything but one number takes the key holder's own refresh
    row = scheme.encrypt([[0.5, -0.25, 1.0, 0.0][:HIDDEN]])
    np.testing.assert_allclose(keyholder.decrypt(refresher(row)), keyholder.decrypt(row), rtol=0,
                               atol=0.0 if exact else 1e-12)
