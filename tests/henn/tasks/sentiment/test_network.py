"""The sentiment network: the NumPy reference, and the encrypted network (henn layers) against it."""
from __future__ import annotations

import numpy as np
import pytest

import he_core
from hypothesis import given, settings
from hypothesis import strategies as st

from henn.activations import sigmoid
from henn.data.synthetic import make_reviews
from henn.data.text import TextConfig, Vocabulary
from henn.embedding import Bags
from henn.tasks import sentiment as T
from henn.tasks.sentiment import SentimentConfig, init_weights
from henn.tensor import EncTensor
from henn.training.fit import predict

HIDDEN = 4
CONFIG = SentimentConfig(hidden=HIDDEN, lr=0.05, init_scale=0.5, degree=5, interval=8.0)


@pytest.fixture(scope="module")
def corpus():
    reviews = make_reviews(120, seed=5)
    vocab = Vocabulary.build(reviews.texts, reviews.labels, TextConfig(min_count=2, polarity_cutoff=0.0))
    return vocab, vocab.encode_all(reviews.texts), reviews.labels


def _prepared(vocab, ids, labels):
    """The reviews as training and validation data at once (the reference reports on the second)."""
    return T.Prepared(vocab, list(ids), np.asarray(labels), list(ids), np.asarray(labels))


def test_reference_step_is_the_tutorial_update():
    W01 = np.arange(12.0).reshape(4, 3) / 10 - 0.5
    w12 = np.array([0.3, -0.2, 0.5])
    ids = np.array([0, 2], dtype=np.int64)
    h = W01[0] + W01[2]
    p = 1 / (1 + np.exp(-(h @ w12)))
    one = _prepared(Vocabulary(["a", "b", "c", "d"]), [ids], [1])
    got = T.train_reference(one, SentimentConfig(hidden=3, lr=0.1), activation=sigmoid, init=(W01, w12))
    assert got["train_accuracy"] == float(p > 0.5)
    delta = p - 1
    assert np.allclose(got["w12"], w12 - 0.1 * delta * h)
    expected = W01.copy()
    expected[[0, 2]] -= 0.1 * delta * w12               # old w12
    assert np.allclose(got["W01"], expected)
    assert np.array_equal(got["W01"][[1, 3]], W01[[1, 3]])  # words not in the review stay
    assert np.array_equal(W01, np.arange(12.0).reshape(4, 3) / 10 - 0.5)  # the initial weights are copied


def test_reference_learns_the_synthetic_corpus(corpus):
    vocab, ids, labels = corpus
    W01, w12 = init_weights(len(vocab), CONFIG, he_core.SeededRandom(3))
    result = T.train_reference(_prepared(vocab, ids, labels), CONFIG, epochs=3, activation=sigmoid, init=(W01, w12))
    assert result["validation_accuracy"] > 0.9  # measured on the training reviews themselves
    assert np.mean((T.reference_logits(result["W01"], result["w12"], ids) > 0) == (labels == 1)) > 0.9


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
def plain_scheme():
    scheme = he_core.get_scheme("plain")
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, HIDDEN)))
    return scheme, secret


@settings(max_examples=40, deadline=None)
@given(z=st.floats(-30, 30), label=st.sampled_from([0, 1]), lr=st.floats(1e-4, 1.0))
def test_the_loss_gradient_is_the_scaled_polynomial(plain_scheme, z, label, lr):
    """The gradient at the logit, as the trainer computes it (lr folded in): ``lr * (s(z) - y)``.

    (Was: the step polynomial's coefficients, ``-lr`` and ``-y`` folded in. The step is
    now :meth:`PolyLogisticLoss.grad` with ``scale=lr``: one polynomial, ``lr * y`` subtracted.)
    """
    scheme, secret = plain_scheme
    loss = CONFIG.make_loss()
    expected = lr * (loss.activation.value(z) - label)
    grad = loss.grad(EncTensor.encrypt(scheme, np.array([[z]])), np.array([[label]], dtype=np.float64), scale=lr)
    got = float(scheme.decrypt_exact_local(grad.ct, secret)[0, 0])
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_encrypted_net_rejects_mismatched_shapes(env):
    W = EncTensor.encrypt(env.scheme, np.zeros((3, HIDDEN)))
    w = EncTensor.encrypt(env.scheme, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="cannot build the sentiment network"):
        T.model_from(W, w)
    with pytest.raises(ValueError, match="cannot build the sentiment network"):
        T.model_from(W, EncTensor.encrypt(env.scheme, np.zeros((2, HIDDEN))))  # w12 must be one row


def _tolerance(env, steps):
    # Per step: ~12 roundings of at most one unit, amplified by |w12|, |h| and the
    # polynomial's slope (all below ~8 here), accumulated over the steps so far.
    return 1e-12 if env.unit == 0 else steps * 200 * env.unit * 8


def test_encrypted_training_matches_the_reference(env, corpus):
    """Forward, backward and update on ciphertexts equal the NumPy network (within fixed-point error).

    Compared after the first review (one step's error) and after 40 reviews, the
    encrypted run continuing where it stopped; the reference is ``train_reference`` on
    the same reviews from the same initial weights.
    """
    vocab, ids, labels = corpus
    act = CONFIG.make_activation()
    W01, w12 = init_weights(len(vocab), CONFIG, he_core.SeededRandom(3))
    model = T.build_model(env.scheme, W01, w12)
    done = 0
    for steps in (1, 40):
        T.train(model, env.keyholder, ids[done:steps], labels[done:steps], CONFIG, monitor_every=None)
        done = steps
        ref = T.train_reference(_prepared(vocab, ids[:steps], labels[:steps]), CONFIG, activation=act.value,
                                init=(W01, w12))
        got_W01 = env.decrypt(T.weights(model)["W01"])
        got_w12 = env.decrypt(T.weights(model)["w12"])[0]
        tol = _tolerance(env, steps)
        assert np.max(np.abs(got_W01 - ref["W01"])) <= tol, steps
        assert np.max(np.abs(got_w12 - ref["w12"])) <= tol, steps
    assert np.abs(ref["W01"]).max() > 0.01  # the run really moved the weights


def test_encrypted_forward_batch_matches_the_reference(env, corpus):
    vocab, ids, labels = corpus
    act = CONFIG.make_activation()
    rng = np.random.default_rng(0)
    W01 = rng.normal(0, 0.2, (len(vocab), HIDDEN))
    w12 = rng.normal(0, 0.5, HIDDEN)
    model = T.build_model(env.scheme, W01, w12)
    batch = [r for r in ids[:30] if r.size]
    # no key holder: one forward pass of the whole batch on public material
    got = env.decrypt(predict(model, Bags(batch, len(vocab)), loss=CONFIG.make_loss()))[:, 0]
    want = act.value(T.reference_logits(W01, w12, batch))
    tol = 1e-12 if env.unit == 0 else 300 * env.unit
    assert got.shape == (len(batch),) and np.max(np.abs(got - want)) <= tol
    with pytest.raises(ValueError, match="no samples"):
        predict(model, Bags([], len(vocab)), loss=CONFIG.make_loss())
