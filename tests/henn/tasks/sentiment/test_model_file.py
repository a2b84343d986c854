"""henn.tasks.sentiment.model_file: the sentiment model on disk (encrypted weights, vocabulary, config, and
the owner-only secret key) read back exactly, and the files that are not a sentiment model refused."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

import he_core
from henn import io
from henn.data.text import Vocabulary
from henn.tasks import sentiment as T
from henn.tasks.sentiment import SentimentConfig, init_weights

CONFIG = SentimentConfig(hidden=4, lr=0.03, init_scale=0.5, degree=3, interval=6.0)
VOCAB = Vocabulary([f"w{i}" for i in range(12)])


@pytest.fixture
def saved(tmp_path):
    scheme, holder = T.setup("plain", CONFIG.hidden, rng=he_core.SeededRandom(1))
    W01, w12 = init_weights(len(VOCAB), CONFIG, he_core.SeededRandom(2))
    W01 = W01 + np.random.default_rng(3).normal(0, 0.1, W01.shape)  # not all zeros: the rows must land in place
    model = T.build_model(scheme, W01, w12)
    T.save_sentiment(tmp_path / "m", model, holder, VOCAB, CONFIG, {"accuracy": 0.5})
    return tmp_path / "m", holder, W01, w12


def test_a_saved_model_loads_back_exactly_with_its_key_vocabulary_and_config(saved):
    path, holder, W01, w12 = saved
    assert stat.S_IMODE(os.stat(path / "secret.key").st_mode) == 0o600
    model, keyholder, vocab, config = T.load_sentiment(path, allow_insecure=True)
    assert vocab.words == VOCAB.words and config == CONFIG
    assert keyholder.key_id == holder.key_id
    loaded = T.release_weights(model, keyholder)
    np.testing.assert_array_equal(loaded[0], W01)  # plain twin: exact
    np.testing.assert_array_equal(np.ravel(loaded[1]), np.ravel(w12))
    assert io.load_model(path, allow_insecure=True).meta["summary"] == {"accuracy": 0.5}


def test_insecure_models_need_the_opt_in(saved):
    with pytest.raises(he_core.FormatError, match="insecure"):
        T.load_sentiment(saved[0])


def test_another_task_or_a_vocabulary_of_another_size_is_refused(saved, tmp_path):
    path, holder, W01, w12 = saved
    scheme = holder.scheme
    io.save_model(tmp_path / "xor", T.build_model(scheme, W01, w12), scheme, meta={"task": "xor"},
                  secret=holder.export_secret_key())
    with pytest.raises(ValueError, match="holds a 'xor' model"):
        T.load_sentiment(tmp_path / "xor", allow_insecure=True)
    T.save_sentiment(tmp_path / "short", T.build_model(scheme, W01, w12), holder, Vocabulary(["a", "b"]), CONFIG)
    with pytest.raises(ValueError, match="W01 has 12 rows but the vocabulary 2 words"):
        T.load_sentiment(tmp_path / "short", allow_insecure=True)
    with pytest.raises(FileNotFoundError):
        T.load_sentiment(tmp_path / "missing", allow_insecure=True)
