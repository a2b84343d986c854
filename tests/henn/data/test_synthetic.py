"""henn.data.synthetic: a deterministic, learnable labelled corpus and its two on-disk layouts."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from henn.data.synthetic import NEGATIVE, NEUTRAL, POSITIVE, make_reviews, write_aclimdb, write_lines


@given(n=st.integers(1, 40), seed=st.integers(0, 2**31), words=st.integers(2, 30))
@settings(max_examples=30, deadline=None)
def test_reviews_alternate_labels_and_use_the_known_words(n, seed, words):
    r = make_reviews(n, seed=seed, words=words)
    assert list(r.labels) == [1 - i % 2 for i in range(n)] and r.labels.dtype == np.int64
    vocabulary = {w.lower() for w in POSITIVE + NEGATIVE + NEUTRAL}
    for text in r.texts:
        tokens = text.replace("<br /><br />", " ").replace(".", " ").replace("!", " ").split()
        assert len(tokens) == words and {t.lower() for t in tokens} <= vocabulary
    assert make_reviews(n, seed=seed, words=words).texts == r.texts  # deterministic


def test_purity_makes_the_classes_separable():
    r = make_reviews(400, seed=1, words=30, purity=0.9)
    score = np.array([sum(t.lower().count(w) for w in POSITIVE) - sum(t.lower().count(w) for w in NEGATIVE)
                      for t in r.texts])
    assert np.mean((score > 0) == (r.labels == 1)) > 0.9
    blind = make_reviews(400, seed=1, words=30, purity=0.5)
    score = np.array([sum(t.lower().count(w) for w in POSITIVE) - sum(t.lower().count(w) for w in NEGATIVE)
                      for t in blind.texts])
    assert np.mean((score > 0) == (blind.labels == 1)) < 0.7


def test_the_two_layouts_hold_every_review(tmp_path):
    r = make_reviews(6, seed=3)
    base = write_aclimdb(tmp_path / "a", r)
    pos, neg = sorted((base / "train" / "pos").iterdir()), sorted((base / "train" / "neg").iterdir())
    assert len(pos) == 3 and len(neg) == 3 and pos[0].name.endswith("_8.txt") and neg[0].name.endswith("_2.txt")
    assert {p.read_text() for p in pos + neg} == set(r.texts)
    root = write_lines(tmp_path / "b", r)
    assert (root / "reviews.txt").read_text().splitlines() == r.texts
    assert (root / "labels.txt").read_text().split() == ["positive" if y else "negative" for y in r.labels]
