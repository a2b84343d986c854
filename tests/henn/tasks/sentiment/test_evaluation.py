"""henn.tasks.sentiment.evaluation: encrypted predictions against the clear reference, on the plaintext twin."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import he_core
from henn.keyholder import KeyHolder
from henn.tasks.sentiment.evaluation import (cross_entropy, evaluate_encrypted, outgoing_weights, predict_encrypted,
                                             release_weights)
from henn.tasks.sentiment.network import SentimentConfig, build_model
from henn.tasks.sentiment.reference import reference_logits


@pytest.fixture(scope="module")
def ctx():
    s = he_core.get_scheme("plain")
    secret = s.keygen(rng=he_core.SeededRandom(3)).secret
    rng = np.random.default_rng(1)
    W01, w12 = rng.normal(0, 0.5, (6, 4)), rng.normal(0, 0.5, 4)
    config = SentimentConfig(hidden=4)
    return build_model(s, W01, w12), KeyHolder(s, secret), config, W01, w12


IDS = [np.array([0, 2]), np.array([], dtype=np.int64), np.array([5, 5, 1]), np.array([3])]


def test_predictions_are_the_polynomial_sigmoid_of_the_reference_logits(ctx):
    model, kh, config, W01, w12 = ctx
    act = config.make_activation()
    want = act.value(reference_logits(W01, w12, IDS))
    want[1] = act.coeffs[0]  # a review without vocabulary words: s(0), no ciphertext
    releases = kh.releases
    got = predict_encrypted(model, kh, IDS, config, batch=2)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert kh.releases == releases + 2  # two batches of the three non-empty reviews


def test_evaluation_scores_the_predictions(ctx):
    model, kh, config, W01, w12 = ctx
    labels = np.array([1, 0, 1, 0])
    out = evaluate_encrypted(model, kh, IDS, labels, config)
    p = predict_encrypted(model, kh, IDS, config)
    assert out["accuracy"] == np.mean((p > 0.5) == labels) and out["reviews"] == 4
    assert out["loss"] == pytest.approx(np.mean(cross_entropy(p, labels)))
    assert np.isnan(evaluate_encrypted(model, kh, [], np.array([]), config)["accuracy"])


def test_weights_leave_sanitised_on_an_exact_scheme_and_release_as_they_are(ctx):
    model, kh, config, W01, w12 = ctx
    out = outgoing_weights(model, kh)
    assert set(out) == {"W01", "w12"}
    np.testing.assert_array_equal(out["W01"].data, W01)
    released_W01, released_w12 = release_weights(model, kh)
    np.testing.assert_array_equal(released_W01, W01)
    np.testing.assert_array_equal(released_w12, w12)


@given(p=st.floats(-1, 2), y=st.sampled_from([0.0, 1.0]))
def test_cross_entropy_is_finite_for_any_polynomial_output(p, y):
    loss = float(cross_entropy(np.array([p]), np.array([y]))[0])
    assert np.isfinite(loss) and loss >= 0
    if 1e-7 < p < 1 - 1e-7:
        assert loss == pytest.approx(-np.log(p) if y else -np.log1p(-p))
