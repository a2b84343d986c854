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
CONFIG = SentimentConfig(hidden=HIDDEN, lr=0.02, init_scale=0.5, degree=5, interval=8.0)
TEXT = TextConfig(min_count=3, polarity_cutoff=0.3)


@pytest.fixture(scope="module")
def data():
    return T.prepare(make_reviews(500, seed=11, purity=0.75), validation=150, seed=4, text=TEXT)


def _init(data):
    return init_weights(len(data.vocab), CONFIG, he_core.SeededRandom(1))


def _encrypted(env, data):
    return EncSentimentNet.encrypt(env.scheme, *_init(data), CONFIG.make_activation())


def _holder(env, data, **terms):
    from henn.keyholder import KeyHolder, RefreshTerms
    return KeyHolder(env.scheme, env.secret, terms=RefreshTerms(**{"min_aggregate": 100, **terms}))


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
    holder = _holder(env, data)
    result = T.train_encrypted(net, holder, data.train_ids, data.train_labels, lr=CONFIG.lr, epochs=2,
                               monitor_every=100)
    # 2 passes of 350 reviews: 3 aggregates of 100 per pass, never a per-review value. Each pass's tail of
    # 50 is dropped: a block straddling two passes would shift the windows over the same reviews.
    assert result.reviews == 2 * len(data.train_ids) and len(result.history) == 6
    assert [r["reviews"] for r in result.history] == [100, 200, 300, 450, 550, 650]
    assert result.history[-1]["mae"] < result.history[0]["mae"]
    ev = T.evaluate_encrypted(net, holder, data.val_ids, data.val_labels)
    assert ev["accuracy"] > 0.85

    act = CONFIG.make_activation()
    ref = PlainSentimentNet(*_init(data), act.value)
    errors = []
    for _ in range(2):
        for r, y in zip(data.train_ids, data.train_labels):
            errors.append((1 - 2 * y) * (ref.train_step(r, int(y), CONFIG.lr) - y))  # |p - y| for p in [0, 1]
    per_pass = len(data.train_ids)  # 350: the blocks restart with each pass
    ref_mae = [np.mean(errors[p * per_pass + 100 * k: p * per_pass + 100 * (k + 1)]) for p in (0, 1) for k in range(3)]
    ref_pred = (act.value(ref.logits(data.val_ids)) > 0.5).astype(int)
    if env.unit == 0:  # float twin: identical arithmetic
        np.testing.assert_allclose([r["mae"] for r in result.history], ref_mae, rtol=0, atol=1e-9)
        assert np.array_equal(ev["predictions"], ref_pred)
    else:  # fixed point: a few borderline reviews may flip
        np.testing.assert_allclose([r["mae"] for r in result.history], ref_mae, rtol=0, atol=0.01)
        assert np.mean(ev["predictions"] == ref_pred) >= 0.97

    W01, w12 = T.release_weights(net, holder)
    clear = T.clear_predictions(W01, w12, data.val_ids, act.value)
    assert np.mean(clear == ev["predictions"]) >= (1.0 if env.unit == 0 else 0.98)


def test_refreshes_only_when_the_scheme_has_a_budget(env, data):
    net = _encrypted(env, data)
    holder = _holder(env, data)
    result = T.train_encrypted(net, holder, data.train_ids[:60], data.train_labels[:60], lr=CONFIG.lr)
    if env.name == "plain":
        assert holder.refresh_rounds == 0 and result.refreshes == 0
    else:
        assert holder.refresh_rounds >= 60  # the scalar step of every review at least
        assert net.W01.budget().remaining >= T.RESERVES["noise"]["W01"]
    assert net.refresher is None and not net.refresh_step  # detached after training


def test_a_step_that_runs_out_of_budget_is_refreshed_and_retried(data, monkeypatch):
    from henn.keyholder import KeyHolder
    scheme = he_core.get_scheme("vhe")
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, HIDDEN)))
    keyholder = KeyHolder(scheme, secret)
    net = EncSentimentNet.encrypt(scheme, *_init(data), CONFIG.make_activation())
    trainer = T.SentimentTrainer(net, keyholder, monitor_every=None)
    real, calls = net.train_step, []

    def flaky(ids, y, lr):
        calls.append(1)
        if len(calls) == 1:
            raise he_core.NoiseBudgetExhausted("cannot inner: test")
        return real(ids, y, lr)

    monkeypatch.setattr(net, "train_step", flaky)
    trainer.step(data.train_ids[0], 1, CONFIG.lr)
    assert len(calls) == 2 and keyholder.refresh_rounds >= 2  # both weights, then the retried step's own


def test_the_monitored_aggregate_is_the_mean_absolute_error(env):
    """(2y - 1) step / lr = |p - y| for p in [0, 1]: summed encrypted, released once per k reviews."""
    from henn.training.monitor import AggregateMonitor
    scheme, lr = env.scheme, 0.5
    p = np.array([0.9, 0.2, 0.6, 0.4])
    y = [1, 0, 0, 1]
    holder = type("H", (), {"scheme": scheme, "released": [],
                            "release_aggregate": lambda self, ct, n, value_bound=None: self.released.append(n) or
                            float(scheme.decrypt_exact_local(ct, env.secret)[0, 0])})()
    monitor = AggregateMonitor(holder, k=4, name="mae")
    net = type("N", (), {"scheme": scheme})()
    trainer = T.SentimentTrainer.__new__(T.SentimentTrainer)
    trainer.net, trainer.monitor = net, monitor
    records = [trainer.observe(scheme.encrypt([[-lr * (pi - yi)]]), yi, lr) for pi, yi in zip(p, y)]
    assert records[:3] == [None, None, None] and holder.released == [4]
    assert records[3]["mae"] == pytest.approx(np.mean(np.abs(p - y)), abs=4 * env.tol(2, 4.0))
    assert trainer.observe(None, 1, lr) is None  # an empty review adds nothing


def test_training_argument_errors(data):
    net = type("N", (), {})()
    with pytest.raises(ValueError, match="epochs must be positive"):
        T.train_encrypted(net, None, data.train_ids, data.train_labels, lr=0.1, epochs=0)
    scheme, keyholder = T.setup("plain", HIDDEN)
    enc = EncSentimentNet.encrypt(scheme, *_init(data), CONFIG.make_activation())
    with pytest.raises(ValueError, match="reviews but"):
        T.train_encrypted(enc, keyholder, data.train_ids, data.train_labels[:3], lr=0.1)


def test_empty_reviews_train_nothing_and_predict_s0(data):
    scheme, keyholder = T.setup("plain", HIDDEN)
    enc = EncSentimentNet.encrypt(scheme, *_init(data), CONFIG.make_activation())
    empty = np.zeros(0, dtype=np.int64)
    result = T.train_encrypted(enc, keyholder, [empty, empty], np.array([1, 0]), lr=0.1)
    assert result.history == []  # two reviews: no aggregate of 500 to release
    assert not scheme.decrypt_exact_local(enc.W01.ct, keyholder.export_secret_key()).any()
    p = T.predict_encrypted(enc, keyholder, [empty, data.val_ids[0]])
    assert p[0] == pytest.approx(enc.coeffs[0])


def test_save_and_load_round_trip(env, data, tmp_path):
    net = _encrypted(env, data)
    holder = _holder(env, data)
    T.train_encrypted(net, holder, data.train_ids[:100], data.train_labels[:100], lr=CONFIG.lr)
    before = T.predict_encrypted(net, holder, data.val_ids)
    T.save_sentiment(tmp_path / "m", net, holder, data.vocab, CONFIG, {"note": 1})
    assert stat.S_IMODE(os.stat(tmp_path / "m" / "secret.key").st_mode) == 0o600
    net2, keyholder2, vocab2, config2 = T.load_sentiment(tmp_path / "m", allow_insecure=True)
    assert vocab2.words == data.vocab.words and config2 == CONFIG and net2.scheme.name == env.name
    after = T.predict_encrypted(net2, keyholder2, data.val_ids)
    tol = 1e-12 if env.unit == 0 else 300 * env.unit
    assert np.max(np.abs(after - before)) <= tol


def test_loading_another_task_is_refused(tmp_path, data):
    from henn import io

    scheme, keyholder = T.setup("plain", HIDDEN)
    enc = EncSentimentNet.encrypt(scheme, *_init(data), CONFIG.make_activation())
    io.save_model(tmp_path, enc, scheme, meta={"task": "xor"}, secret=keyholder.export_secret_key())
    with pytest.raises(ValueError, match="holds a 'xor' model"):
        T.load_sentiment(tmp_path, allow_insecure=True)
    with pytest.raises(FileNotFoundError):
        T.load_sentiment(tmp_path / "missing", allow_insecure=True)
