"""Full IMDB runs: the accuracy targets of the sentiment network (``data``; ``slow``).

The data is looked up at ``$HENN_IMDB`` or ``../shared/data/imdb`` next to the
repository; the tests skip with a message when it is missing.
"""
from __future__ import annotations

import os
import pathlib
import warnings

import numpy as np
import pytest

import he_core
from henn.activations import sigmoid
from henn.data.imdb import load_imdb
from henn.tasks import sentiment as T
from henn.tasks.sentiment import SentimentConfig, init_weights

ROOT = pathlib.Path(__file__).resolve().parents[4]
DATA = pathlib.Path(os.environ.get("HENN_IMDB", ROOT.parent / "shared" / "data" / "imdb"))

pytestmark = [pytest.mark.data, pytest.mark.slow]


@pytest.fixture(scope="module")
def imdb():
    if not (DATA / "aclImdb" / "train").is_dir() and not (DATA / "train").is_dir():
        pytest.skip(f"IMDB data not found at {DATA} (set HENN_IMDB to the aclImdb directory or its parent)")
    return T.prepare(load_imdb(DATA, "train"), validation=5000, seed=0)


def test_data_split_is_20000_and_5000(imdb):
    assert len(imdb.train_ids) == 20000 and len(imdb.val_ids) == 5000
    assert 0.45 < imdb.val_labels.mean() < 0.55


def test_reference_with_exact_sigmoid_reaches_87_percent(imdb):
    result = T.train_reference(imdb, SentimentConfig(), activation=sigmoid)
    assert result["validation_accuracy"] >= 0.87


def test_polynomial_reference_reaches_87_percent_and_its_logits_fit(imdb):
    config = SentimentConfig()
    act = config.make_activation()
    result = T.train_reference(imdb, config, activation=act.value)
    assert result["validation_accuracy"] >= 0.87
    # the interval covers the bulk of the logits (the fit's odd top term pulls outliers back)
    assert result["logit_p99"] <= config.interval


def _train(scheme_name, imdb):
    config = SentimentConfig()
    scheme, keyholder = T.setup(scheme_name, config.hidden)
    model = T.build_model(scheme, *init_weights(len(imdb.vocab), config))
    result = T.train(model, keyholder, imdb.train_ids, imdb.train_labels, config)
    ev = T.evaluate_encrypted(model, keyholder, imdb.val_ids, imdb.val_labels, config)
    W01, w12 = T.release_weights(model, keyholder)
    clear = T.clear_predictions(W01, w12, imdb.val_ids, config.make_activation().value)
    return result, ev, clear


def test_plain_twin_and_vhe_reach_87_percent_and_agree(imdb):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        _, plain_ev, _ = _train("plain", imdb)
        result, ev, clear = _train("vhe", imdb)
    assert ev["accuracy"] >= 0.87
    assert abs(ev["accuracy"] - plain_ev["accuracy"]) <= 0.01
    assert np.mean(clear == imdb.val_labels) >= 0.87
    assert np.mean(clear == ev["predictions"]) >= 0.995
    assert result.refreshes > 0
