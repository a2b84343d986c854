"""henn.tasks.sentiment.reference: the float64 network every encrypted run is measured against.

One step is checked by hand (the tutorial's order: the hidden layer's update uses w12
before its own update); the logits are the gather-sums; a separable toy corpus is learnt.
"""
import numpy as np

from henn.activations import sigmoid
from henn.tasks.sentiment.data import Prepared
from henn.tasks.sentiment.network import SentimentConfig
from henn.tasks.sentiment.reference import clear_predictions, reference_logits, train_reference


class Vocab(list):
    """A stand-in vocabulary: the reference only needs its length."""


def prepared(train, labels, val=None, val_labels=None):
    ids = [np.array(r, dtype=np.int64) for r in train]
    vids = [np.array(r, dtype=np.int64) for r in (val or train)]
    return Prepared(Vocab(range(4)), ids, np.array(labels), vids, np.array(val_labels if val else labels))


def test_logits_are_gather_sums_times_w12():
    W01 = np.arange(12.0).reshape(4, 3)
    w12 = np.array([1.0, -1.0, 0.5])
    ids = [np.array([0, 2]), np.array([3, 3]), np.array([], dtype=np.int64)]
    want = [(W01[0] + W01[2]) @ w12, 2 * W01[3] @ w12, 0.0]
    np.testing.assert_allclose(reference_logits(W01, w12, ids), want)
    assert reference_logits(W01, w12, []).shape == (0,)
    assert list(clear_predictions(W01, w12, ids, sigmoid)) == [int(sigmoid(np.array(z)) > 0.5) for z in want]


def test_one_step_follows_the_tutorials_order():
    config = SentimentConfig(hidden=2, lr=0.1)
    W01, w12 = np.zeros((4, 2)), np.array([0.5, -1.0])
    W01[1] = [1.0, 2.0]
    out = train_reference(prepared([[1, 1]], [1]), config, init=(W01, w12))
    h = 2 * W01[1]
    p = sigmoid(np.array(h @ w12))
    step = -0.1 * (p - 1)
    want_w12 = w12 + step * h
    want_W01 = W01.copy()
    want_W01[1] += 2 * step * w12  # the repeated word gets the update twice, with w12 before its update
    np.testing.assert_allclose(out["w12"], want_w12)
    np.testing.assert_allclose(out["W01"], want_W01)


def test_a_separable_corpus_is_learnt_and_the_logits_are_reported():
    rng = np.random.default_rng(0)
    train = [[0, 2] if i % 2 else [1, 3] for i in range(200)]
    labels = [i % 2 for i in range(200)]
    out = train_reference(prepared(train, labels), SentimentConfig(hidden=4, lr=0.05), epochs=3,
                          init=(np.zeros((4, 4)), rng.normal(0, 1, 4)))
    assert out["validation_accuracy"] == 1.0 and out["train_accuracy"] > 0.9
    assert out["logit_range"] >= out["logit_p99"] > 0
