"""Tokenising and vocabulary building."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from henn.data.synthetic import NEGATIVE, NEUTRAL, POSITIVE, make_reviews
from henn.data.text import TextConfig, Vocabulary, polarity, tokenize


def test_tokenize_defaults_lowercase_breaks_and_punctuation():
    text = "Great movie!<br /><br />I didn't like the END, though...<BR/>10/10"
    assert tokenize(text) == ["great", "movie", "i", "didn't", "like", "the", "end", "though", "10", "10"]


def test_tokenize_split_keeps_punctuation_tokens():
    cfg = TextConfig(punctuation="split")
    assert tokenize("Bad, bad film!", cfg) == ["bad", ",", "bad", "film", "!"]


def test_tokenize_none_is_whitespace_split_and_options_switch_off():
    cfg = TextConfig(punctuation="none", lowercase=False, strip_html=False)
    assert tokenize("Bad, film<br />x", cfg) == ["Bad,", "film<br", "/>x"]
    assert tokenize("Bad<br />film", TextConfig(strip_html=False)) == ["bad", "br", "film"]


@pytest.mark.parametrize("kwargs", [{"punctuation": "keep"}, {"min_count": -1}, {"min_count": 1.5},
                                    {"polarity_cutoff": -0.1}, {"polarity_cutoff": float("nan")}])
def test_bad_config(kwargs):
    with pytest.raises(ValueError, match="cannot configure text"):
        TextConfig(**kwargs)


def test_polarity_is_symmetric_and_normalised():
    assert polarity(10, 10, 5, 5) == 0
    assert polarity(30, 2, 5, 5) == pytest.approx(math.log(31 / 3))
    assert polarity(2, 30, 5, 5) == pytest.approx(-math.log(31 / 3))
    # twice as many positive reviews: twice the positive count is even usage
    assert polarity(20, 10, 10, 5) == pytest.approx(math.log(11 / 11))


def test_vocabulary_min_count_and_cutoff():
    texts = ["good good fine", "good fine", "bad fine", "bad bad fine", "rare"]
    labels = [1, 1, 0, 0, 1]
    vocab = Vocabulary.build(texts, labels, TextConfig(min_count=1, polarity_cutoff=0.5))
    assert set(vocab.words) == {"good", "bad"}            # "fine" is even, "rare" too rare
    everything = Vocabulary.build(texts, labels, TextConfig(min_count=0, polarity_cutoff=0.0))
    assert everything.words[0] == "fine" and set(everything.words) == {"good", "bad", "fine", "rare"}


def test_vocabulary_on_synthetic_corpus_keeps_sentiment_words():
    reviews = make_reviews(400, seed=2)
    vocab = Vocabulary.build(reviews.texts, reviews.labels, TextConfig(min_count=5, polarity_cutoff=0.5))
    assert set(vocab.words) == set(POSITIVE) | set(NEGATIVE)
    assert not set(vocab.words) & set(NEUTRAL)


def test_encode_sorted_distinct_and_unknown_words_dropped():
    vocab = Vocabulary(["bad", "good", "film"])
    ids = vocab.encode("Good film, GOOD film and nothing else")
    assert ids.dtype == np.int64 and list(ids) == [1, 2]
    assert vocab.encode("nothing known").size == 0


def test_vocabulary_round_trip_and_errors():
    vocab = Vocabulary(["a", "b"], TextConfig(min_count=3, polarity_cutoff=0.3, punctuation="split"))
    again = Vocabulary.from_dict(vocab.to_dict())
    assert again.words == vocab.words and again.config == vocab.config
    with pytest.raises(ValueError, match="malformed"):
        Vocabulary.from_dict({"words": ["a"]})
    with pytest.raises(ValueError, match="repeat"):
        Vocabulary(["a", "a"])
    with pytest.raises(ValueError, match="no word passes"):
        Vocabulary.build(["x"], [1], TextConfig(min_count=5))
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        Vocabulary.build(["x"], [2])
    with pytest.raises(ValueError, match="1 reviews but 2 labels"):
        Vocabulary.build(["x"], [1, 0])


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_tokens_are_nonempty_words_of_the_lowercased_text(text):
    lowered = text.lower()
    for token in tokenize(text):
        assert token and not any(c.isspace() for c in token)
        assert token in lowered
