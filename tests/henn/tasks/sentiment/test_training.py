"""Training the encrypted sentiment network on a synthetic corpus (fast; every scheme).

The network is :func:`henn.tasks.sentiment.build_model` trained by the one trainer
(:func:`henn.training.fit.fit`, one review per step, in data order); the oracle is the
NumPy float64 reference :func:`henn.tasks.sentiment.train_reference` with the same
polynomial sigmoid and initial weights. Per-review values of the reference (each
review's ``p`` before its step) come from :func:`reference_run`, which runs
``train_reference`` on one review at a time.
"""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

import he_core
from henn.data.imdb import split_validation
from henn.data.synthetic import make_reviews
from henn.data.text import TextConfig, Vocabulary
from henn.keyholder import KeyHolder, RefreshTerms
from henn.tasks import sentiment as T
from henn.tasks.sentiment import SentimentConfig, init_weights

HIDDEN = 4
CONFIG = SentimentConfig(hidden=HIDDEN, lr=0.02, init_scale=0.5, degree=5, interval=8.0)
TEXT = TextConfig(min_count=3, polarity_cutoff=0.3)


def reference_run(vocab, ids, labels, config, init, *, epochs: int = 1, activation=None):
    """The NumPy reference review by review: each review's ``p`` before its step, and the weights after.

    Each step is :func:`T.train_reference` on a :class:`T.Prepared` holding that one
    review, started from the weights the previous step left.
    """
    activation = activation or config.make_activation().value
    W01, w12 = np.array(init[0], dtype=np.float64), np.array(init[1], dtype=np.float64).reshape(-1)
    ps = []
    for _ in range(epochs):
        for review, y in zip(ids, labels):
            ps.append(float(activation(T.reference_logits(W01, w12, [review]))[0]))
            one = T.Prepared(vocab, [review], np.array([y]), [review], np.array([y]))
            out = T.train_reference(one, config, activation=activation, init=(W01, w12))
            W01, w12 = out["W01"], out["w12"]
    return np.array(ps), W01, w12


def reference_errors(vocab, ids, labels, config, init, *, epochs: int = 1) -> np.ndarray:
    """Per review, ``(1 - 2y)(p - y)`` of the reference (``|p - y|`` for p in [0, 1]): what the aggregates sum."""
    ps, _, _ = reference_run(vocab, ids, labels, config, init, epochs=epochs)
    y = np.tile(np.asarray(labels, dtype=np.float64), epochs)
    return (1 - 2 * y) * (ps - y)


@pytest.fixture(scope="module")
def data():
    return T.prepare(make_reviews(500, seed=11, purity=0.75), validation=150, seed=4, text=TEXT)


def _init(data):
    return init_weights(len(data.vocab), CONFIG, he_core.SeededRandom(1))


def _model(env, data):
    return T.build_model(env.scheme, *_init(data), rng=he_core.SeededRandom(16))


def _holder(env, data, **terms):
    # seeded, as the model's encryption: two runs compared round for round see the same noise and masks
    # (on vhe a refresh decision can differ by one round between two draws: 3 of 30 unseeded pairs did)
    return KeyHolder(env.scheme, env.secret, terms=RefreshTerms(**{"min_aggregate": 100, **terms}),
                     rng=he_core.SeededRandom(17))


def _weights(env, model):
    w = T.weights(model)
    return env.decrypt(w["W01"]), env.decrypt(w["w12"])[0]


def test_prepare_splits_and_builds_the_vocabulary_on_training_reviews_only():
    reviews = make_reviews(60, seed=2)
    reviews.texts[0] = reviews.texts[0] + " zzzonlyhere " * 10   # review 0 ends up held out or not
    data = T.prepare(reviews, validation=20, seed=0, text=TextConfig(min_count=5, polarity_cutoff=0.0))
    assert len(data.train_ids) == 40 and len(data.val_ids) == 20
    train_idx, val_idx = split_validation(60, 20, 0)
    assert ("zzzonlyhere" in data.vocab.index) == (0 in train_idx)
    assert all(ids.dtype == np.int64 and np.all(np.diff(ids) > 0) for ids in data.train_ids + data.val_ids)
    limited = T.prepare(reviews, validation=20, limit=10, seed=0, text=TextConfig(min_count=1))
    assert len(limited.train_ids) == 10
    with pytest.raises(ValueError, match="limit must be positive"):
        T.prepare(reviews, validation=20, limit=0)


def test_training_learns_and_matches_the_reference(env, data):
    env.only_without(he_core.Capability.LEVELS, "tests/henn/tasks/sentiment/test_training_ckks.py (the 128-bit protocol set)")
    model = _model(env, data)
    holder = _holder(env, data)
    result = T.train(model, holder, data.train_ids, data.train_labels, CONFIG, epochs=2, monitor_every=100)
    # 2 passes of 350 reviews: 3 aggregates of 100 per pass, never a per-review value. Each pass's tail of
    # 50 is dropped: a block straddling two passes would shift the windows over the same reviews.
    assert result.reviews == 2 * len(data.train_ids) and len(result.history) == 6
    assert [r["reviews"] for r in result.history] == [100, 200, 300, 450, 550, 650]
    assert holder.releases == 6
    assert result.history[-1]["mae"] < result.history[0]["mae"]
    ev = T.evaluate_encrypted(model, holder, data.val_ids, data.val_labels, CONFIG)
    assert ev["accuracy"] > 0.85

    act = CONFIG.make_activation()
    errors = reference_errors(data.vocab, data.train_ids, data.train_labels, CONFIG, _init(data), epochs=2)
    ref = T.train_reference(data, CONFIG, epochs=2, activation=act.value, init=_init(data))
    per_pass = len(data.train_ids)  # 350: the blocks restart with each pass
    ref_mae = [np.mean(errors[p * per_pass + 100 * k: p * per_pass + 100 * (k + 1)]) for p in (0, 1) for k in range(3)]
    ref_pred = (act.value(T.reference_logits(ref["W01"], ref["w12"], data.val_ids)) > 0.5).astype(int)
    if env.unit == 0:  # float twin: identical arithmetic
        np.testing.assert_allclose([r["mae"] for r in result.history], ref_mae, rtol=0, atol=1e-9)
        assert np.array_equal(ev["predictions"], ref_pred)
        W01, w12 = _weights(env, model)
        np.testing.assert_allclose(W01, ref["W01"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(w12, ref["w12"], rtol=0, atol=1e-12)
    else:  # fixed point: a few borderline reviews may flip
        np.testing.assert_allclose([r["mae"] for r in result.history], ref_mae, rtol=0, atol=0.01)
        assert np.mean(ev["predictions"] == ref_pred) >= 0.97

    W01, w12 = T.release_weights(model, holder)
    clear = T.clear_predictions(W01, w12, data.val_ids, act.value)
    assert np.mean(clear == ev["predictions"]) >= (1.0 if env.unit == 0 else 0.98)


def test_refreshes_only_when_the_scheme_has_a_budget(env, data):
    """The budget policy: never on the plaintext twin; on vhe as the noise asks, within the terms' sizing.

    (The network no longer refreshes a fixed value per review: the one policy inside
    ``fit`` refreshes whatever operand's budget is too low for the next operation.)
    """
    env.only_without(he_core.Capability.LEVELS, "tests/henn/tasks/sentiment/test_training_ckks.py (the 128-bit protocol set)")
    model = _model(env, data)
    holder = _holder(env, data)
    n = 60
    result = T.train(model, holder, data.train_ids[:n], data.train_labels[:n], CONFIG)
    assert result.refreshes == holder.refresh_rounds
    if env.name == "plain":
        assert holder.refresh_rounds == 0 and result.refreshes == 0
    else:
        # terms_for sizes a job for REFRESHES_PER_REVIEW per review: the policy stays within it.
        assert 0 < holder.refresh_rounds <= T.REFRESHES_PER_REVIEW * n
        # and the budget never ran out: the weights are the reference's within fixed-point error
        _, W01_ref, w12_ref = reference_run(data.vocab, data.train_ids[:n], data.train_labels[:n], CONFIG,
                                            _init(data))
        W01, w12 = _weights(env, model)
        tol = n * 200 * env.unit * 8
        assert np.max(np.abs(W01 - W01_ref)) <= tol and np.max(np.abs(w12 - w12_ref)) <= tol
        for tensor in T.weights(model).values():
            assert env.scheme.budget(tensor.ct)["remaining"] > 0
    # detached after training: the weights are on the raw scheme, no refresh policy around them
    assert all(p.value.scheme is env.scheme for p in model.parameters())


def test_train_is_fit_with_one_review_per_step_in_data_order(env, data):
    """``T.train`` is :func:`fit` configured so (batch 1, data order, the config's loss, the task's bounds);
    the policy's estimate is never too optimistic and every refresh round is one of its decisions."""
    env.only_without(he_core.Capability.LEVELS, "tests/henn/tasks/sentiment/test_training_ckks.py (the 128-bit protocol set)")
    from henn.embedding import Bags
    from henn.training.fit import fit

    n = 60
    ids, labels = data.train_ids[:n], data.train_labels[:n]
    a, b = _model(env, data), _model(env, data)
    ha, hb = _holder(env, data), _holder(env, data)
    T.train(a, ha, ids, labels, CONFIG, monitor_every=None)
    history = fit(b, Bags(ids, len(data.vocab)), labels.astype(np.float64), keyholder=hb, lr=CONFIG.lr,
                  batch_size=1, loss=CONFIG.make_loss(), shuffle=False, value_bound=T.VALUE_BOUND,
                  update_bound=T.update_bound(CONFIG), monitor=False)
    assert history.policy["retry_refreshes"] == 0
    policy = history.policy
    assert policy["op_refreshes"] + policy["layout_refreshes"] + policy["landing_refreshes"] == hb.refresh_rounds
    assert ha.refresh_rounds == hb.refresh_rounds
    if env.name != "vhe":  # deterministic arithmetic: the same weights bit for bit
        for x, y in zip(_weights(env, a), _weights(env, b)):
            assert np.array_equal(x, y)


def test_vhe_spends_about_one_refresh_round_per_review(data):
    """Each review's table update is refreshed before it lands (one round of ``hidden`` entries) and the
    scheme's noise forecast spares every other refresh: about one round per review, where charging
    8 bits a level gave about two (docs/performance.md, "Refresh rounds per review on vhe")."""
    from henn.training.fit import fit
    from henn.embedding import Bags

    scheme = he_core.get_scheme("vhe")
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, HIDDEN)), rng=he_core.SeededRandom(6))
    n = 300
    ids, labels = data.train_ids[:n], data.train_labels[:n]
    holder = KeyHolder(scheme, secret, terms=RefreshTerms(min_aggregate=100))
    history = fit(T.build_model(scheme, *_init(data)), Bags(ids, len(data.vocab)), labels.astype(np.float64),
                  keyholder=holder, lr=CONFIG.lr, batch_size=1, loss=CONFIG.make_loss(), shuffle=False,
                  value_bound=T.VALUE_BOUND, update_bound=T.update_bound(CONFIG), monitor=False)
    assert history.policy["retry_refreshes"] == 0
    assert history.policy["landing_refreshes"] >= 0.9 * n
    assert holder.refresh_rounds <= 1.1 * n, history.policy


def test_a_step_the_scheme_refuses_is_refreshed_and_retried(data, monkeypatch):
    """An operation the budget estimate allowed but the scheme refuses (before computing) is retried once
    from a refreshed operand (a fresh one's headroom), and the review trains to the same weights."""
    scheme = he_core.get_scheme("vhe")
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, HIDDEN)))
    ids, labels = data.train_ids[:1], data.train_labels[:1]

    steady = KeyHolder(scheme, secret)
    reference = T.build_model(scheme, *_init(data))
    T.train(reference, steady, ids, labels, CONFIG, monitor_every=None)

    keyholder = KeyHolder(scheme, secret)
    model = T.build_model(scheme, *_init(data))
    real, calls = scheme.polyval, []

    def flaky(a, *args, **kwargs):
        calls.append(scheme.budget(a)["remaining"])
        if len(calls) == 1:
            raise he_core.NoiseBudgetExhausted("cannot polyval: test")
        return real(a, *args, **kwargs)

    monkeypatch.setattr(scheme, "polyval", flaky)
    T.train(model, keyholder, ids, labels, CONFIG, monitor_every=None)
    fresh = scheme.budget(scheme.encrypt(np.zeros((1, 1))))["remaining"]
    # The refused operand came back refreshed: a fresh ciphertext's headroom, where it had less.
    assert len(calls) == 2 and calls[0] < fresh - 1 and calls[1] >= fresh - 1
    assert keyholder.refresh_rounds >= 1
    for name, tensor in T.weights(model).items():
        got = scheme.decrypt_exact_local(tensor.ct, secret)
        want = scheme.decrypt_exact_local(T.weights(reference)[name].ct, secret)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-3, err_msg=name)


class _ExactReleases(KeyHolder):
    """Releases aggregates by exact decryption (no flooding), noting each one's count."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.released = []

    def release_aggregate(self, x, count, *, value_bound=None, scale=1.0):
        self.released.append((count, scale))
        return float(self.scheme.decrypt_exact_local(getattr(x, "ct", x), self.export_secret_key())[0, 0])


def test_the_monitored_aggregate_is_the_mean_absolute_error(env):
    """(1 - 2y)(p - y) = |p - y| for p in [0, 1]: summed encrypted, released once per k reviews.

    An empty review (no vocabulary word) is a review like any other for the aggregate:
    it is predicted s(0) = 1/2 and its |s(0) - y| counts (it changes no weight).
    """
    vocab = Vocabulary(["a", "b", "c", "d", "e", "f"])
    rng = np.random.default_rng(2)
    W01, w12 = rng.normal(0, 0.4, (6, HIDDEN)), rng.normal(0, 0.8, HIDDEN)
    ids = [np.array([0, 2], dtype=np.int64), np.array([1, 3, 5], dtype=np.int64), np.zeros(0, dtype=np.int64),
           np.array([4], dtype=np.int64)]
    y = np.array([1, 0, 0, 1])
    holder = _ExactReleases(env.scheme, env.secret, terms=RefreshTerms(min_aggregate=4))
    model = T.build_model(env.scheme, W01, w12)
    result = T.train(model, holder, ids, y, CONFIG, monitor_every=4)
    p, _, _ = reference_run(vocab, ids, y, CONFIG, (W01, w12))
    assert np.all((p >= 0) & (p <= 1)) and p[2] == pytest.approx(0.5)
    assert holder.released == [(4, 0.25)] and [r["reviews"] for r in result.history] == [4]
    assert result.history[0]["mae"] == pytest.approx(np.mean(np.abs(p - y)), abs=4 * env.tol(2, 4.0))


def test_training_argument_errors(data):
    scheme, keyholder = T.setup("plain", HIDDEN)
    model = T.build_model(scheme, *_init(data))
    with pytest.raises(ValueError, match="epochs must be a positive"):
        T.train(model, keyholder, data.train_ids, data.train_labels, CONFIG, epochs=0)
    with pytest.raises(ValueError, match="reviews but"):
        T.train(model, keyholder, data.train_ids, data.train_labels[:3], CONFIG)


def test_empty_reviews_train_nothing_and_predict_s0(data):
    scheme, keyholder = T.setup("plain", HIDDEN)
    W01, w12 = _init(data)
    model = T.build_model(scheme, W01, w12)
    empty = np.zeros(0, dtype=np.int64)
    result = T.train(model, keyholder, [empty, empty], np.array([1, 0]), CONFIG)
    assert result.history == []  # two reviews: no aggregate of 500 to release
    secret = keyholder.export_secret_key()
    assert not scheme.decrypt_exact_local(T.weights(model)["W01"].ct, secret).any()
    np.testing.assert_array_equal(scheme.decrypt_exact_local(T.weights(model)["w12"].ct, secret)[0], w12)
    p = T.predict_encrypted(model, keyholder, [empty, data.val_ids[0]], CONFIG)
    assert p[0] == pytest.approx(CONFIG.make_activation().coeffs[0])
    assert p[0] == pytest.approx(float(CONFIG.make_activation().value(np.array(0.0))))


def test_save_and_load_round_trip(env, data, tmp_path):
    env.only_without(he_core.Capability.LEVELS, "tests/henn/tasks/sentiment/test_training_ckks.py (the 128-bit protocol set)")
    model = _model(env, data)
    holder = _holder(env, data)
    T.train(model, holder, data.train_ids[:100], data.train_labels[:100], CONFIG)
    before = T.predict_encrypted(model, holder, data.val_ids, CONFIG)
    T.save_sentiment(tmp_path / "m", model, holder, data.vocab, CONFIG, {"note": 1})
    assert stat.S_IMODE(os.stat(tmp_path / "m" / "secret.key").st_mode) == 0o600
    model2, keyholder2, vocab2, config2 = T.load_sentiment(tmp_path / "m", allow_insecure=True)
    assert vocab2.words == data.vocab.words and config2 == CONFIG
    assert T.weights(model2)["W01"].scheme.name == env.name
    after = T.predict_encrypted(model2, keyholder2, data.val_ids, config2)
    tol = 1e-12 if env.unit == 0 else 300 * env.unit
    assert np.max(np.abs(after - before)) <= tol


def test_loading_another_task_is_refused(tmp_path, data):
    from henn import io

    scheme, keyholder = T.setup("plain", HIDDEN)
    model = T.build_model(scheme, *_init(data))
    io.save_model(tmp_path, model, scheme, meta={"task": "xor"}, secret=keyholder.export_secret_key())
    with pytest.raises(ValueError, match="holds a 'xor' model"):
        T.load_sentiment(tmp_path, allow_insecure=True)
    with pytest.raises(FileNotFoundError):
        T.load_sentiment(tmp_path / "missing", allow_insecure=True)
