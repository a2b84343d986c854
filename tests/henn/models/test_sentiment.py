"""The sentiment network: NumPy reference, and the encrypted network against it."""
from __future__ import annotations

import numpy as np
import pytest

import he_core
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.polynomial import polynomial as P

from henn.activations import sigmoid
from henn.data.synthetic import make_reviews
from henn.data.text import TextConfig, Vocabulary
from henn.models.sentiment import EncSentimentNet, PlainSentimentNet, SentimentConfig, init_weights
from henn.tensor import EncTensor

HIDDEN = 4
CONFIG = SentimentConfig(hidden=HIDDEN, lr=0.05, init_scale=0.5, degree=5, interval=8.0)


@pytest.fixture(scope="module")
def corpus():
    reviews = make_reviews(120, seed=5)
    vocab = Vocabulary.build(reviews.texts, reviews.labels, TextConfig(min_count=2, polarity_cutoff=0.0))
    return vocab, vocab.encode_all(reviews.texts), reviews.labels


def test_reference_step_is_the_tutorial_update():
    W01 = np.arange(12.0).reshape(4, 3) / 10 - 0.5
    w12 = np.array([0.3, -0.2, 0.5])
    net = PlainSentimentNet(W01, w12)
    ids = np.array([0, 2], dtype=np.int64)
    h = W01[0] + W01[2]
    p = 1 / (1 + np.exp(-(h @ w12)))
    got = net.train_step(ids, 1, 0.1)
    assert got == pytest.approx(p)
    delta = p - 1
    assert np.allclose(net.w12, w12 - 0.1 * delta * h)
    expected = W01.copy()
    expected[[0, 2]] -= 0.1 * delta * w12               # old w12
    assert np.allclose(net.W01, expected)
    assert np.array_equal(net.W01[[1, 3]], W01[[1, 3]])  # words not in the review stay


def test_reference_learns_the_synthetic_corpus(corpus):
    vocab, ids, labels = corpus
    W01, w12 = init_weights(len(vocab), CONFIG, he_core.SeededRandom(3))
    net = PlainSentimentNet(W01, w12, sigmoid)
    for _ in range(3):
        for r, y in zip(ids, labels):
            net.train_step(r, int(y), CONFIG.lr)
    assert np.mean((net.logits(ids) > 0) == (labels == 1)) > 0.9


def test_init_weights_come_from_the_csprng_unless_seeded_explicitly():
    a = init_weights(10, CONFIG)
    b = init_weights(10, CONFIG)
    assert not np.array_equal(a[1], b[1])  # no seed anywhere: two draws differ
    assert not a[0].any() and a[0].shape == (10, HIDDEN)
    c = init_weights(10, CONFIG, he_core.SeededRandom(4))
    d = init_weights(10, CONFIG, he_core.SeededRandom(4))
    assert np.array_equal(c[1], d[1])
    assert "seed" not in CONFIG.to_dict()  # a model file cannot tell a trainer how to replay them
    assert SentimentConfig.from_dict({**CONFIG.to_dict(), "seed": 3}) == CONFIG  # old files still load
    with pytest.raises(ValueError, match="vocabulary is empty"):
        init_weights(0, CONFIG)


@pytest.mark.parametrize("kwargs", [{"hidden": 0}, {"lr": 0.0}, {"lr": float("inf")}, {"init_scale": -1.0}])
def test_bad_config(kwargs):
    with pytest.raises(ValueError, match="cannot configure the sentiment network"):
        SentimentConfig(**kwargs)


@pytest.fixture(scope="module")
def plain_net():
    scheme = he_core.get_scheme("plain")
    scheme.keygen(he_core.KeyRequirements(sizes=(1, HIDDEN)))
    W01, w12 = init_weights(4, CONFIG, he_core.SeededRandom(3))
    return EncSentimentNet.encrypt(scheme, W01, w12, CONFIG.make_activation())


@settings(max_examples=40, deadline=None)
@given(z=st.floats(-30, 30), label=st.sampled_from([0, 1]), lr=st.floats(1e-4, 1.0))
def test_step_coefficients_are_the_scaled_polynomial(plain_net, z, label, lr):
    act = plain_net.activation
    expected = -lr * (act.value(z) - label)
    got = P.polyval(z * plain_net.z_scale, plain_net.step_coeffs(label, lr))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_encrypted_net_rejects_mismatched_shapes(env):
    act = CONFIG.make_activation()
    W = EncTensor.encrypt(env.scheme, np.zeros((3, HIDDEN)))
    w = EncTensor.encrypt(env.scheme, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="cannot build the encrypted network"):
        EncSentimentNet(env.scheme, W, w, act)


def _train_both(env, corpus, steps):
    vocab, ids, labels = corpus
    act = CONFIG.make_activation()
    W01, w12 = init_weights(len(vocab), CONFIG, he_core.SeededRandom(3))
    ref = PlainSentimentNet(W01, w12, act.value)
    enc = EncSentimentNet.encrypt(env.scheme, W01, w12, act)
    enc.refresher, enc.refresh_step = env.keyholder, env.name == "vhe"
    steps_out = []
    for r, y in list(zip(ids, labels))[:steps]:
        p = ref.train_step(r, int(y), CONFIG.lr)
        step = enc.train_step(r, int(y), CONFIG.lr)
        steps_out.append((env.decrypt(step)[0, 0], -CONFIG.lr * (p - y)))
        for name in ("W01", "w12"):  # the trainer's refresh policy, simplified: keep the budget wide
            t = getattr(enc, name)
            if t.budget().get("kind") != "unbounded" and t.budget().remaining < 16:
                setattr(enc, name, env.keyholder.refresh(t))
    return ref, enc, np.array(steps_out)


def test_encrypted_training_matches_the_reference(env, corpus):
    """Forward and backward on ciphertexts equal the NumPy network (within fixed-point error)."""
    steps = 40
    ref, enc, step_pairs = _train_both(env, corpus, steps)
    W01 = env.decrypt(enc.W01)
    w12 = env.decrypt(enc.w12)[0]
    if env.unit == 0:
        tol_w, tol_s = 1e-12, 1e-12
    else:
        # Per step: ~12 roundings of at most one unit, amplified by |w12|, |h| and the
        # polynomial's slope (all below ~8 here), accumulated over the steps so far.
        tol_s = 200 * env.unit * 8
        tol_w = steps * 200 * env.unit * 8
    assert np.max(np.abs(step_pairs[:, 0] - step_pairs[:, 1])) <= tol_s * steps
    assert np.max(np.abs(W01 - ref.W01)) <= tol_w
    assert np.max(np.abs(w12 - ref.w12)) <= tol_w
    assert np.abs(ref.W01).max() > 0.01  # the run really moved the weights


def test_encrypted_forward_batch_matches_the_reference(env, corpus):
    vocab, ids, labels = corpus
    act = CONFIG.make_activation()
    rng = np.random.default_rng(0)
    W01 = rng.normal(0, 0.2, (len(vocab), HIDDEN))
    w12 = rng.normal(0, 0.5, HIDDEN)
    ref = PlainSentimentNet(W01, w12, act.value)
    enc = EncSentimentNet.encrypt(env.scheme, W01, w12, act)
    batch = [r for r in ids[:30] if r.size]
    got = env.decrypt(enc.forward_batch(batch))[:, 0]
    want = act.value(ref.logits(batch))
    tol = 1e-12 if env.unit == 0 else 300 * env.unit
    assert np.max(np.abs(got - want)) <= tol
    with pytest.raises(ValueError, match="no reviews"):
        enc.forward_batch([])
