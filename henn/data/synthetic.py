"""A small synthetic labelled corpus, for tests and demos that must not need IMDB.

Reviews mix neutral filler words with sentiment words drawn mostly (``purity``) from
the review's own class, plus HTML breaks and punctuation like real IMDB text, so the
whole pipeline (loaders, tokeniser, vocabulary, training) has something learnable.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .imdb import Reviews

POSITIVE = ("great", "excellent", "wonderful", "superb", "loved", "brilliant", "moving", "fun")
NEGATIVE = ("awful", "boring", "terrible", "worst", "waste", "dull", "poor", "mess")
NEUTRAL = ("the", "movie", "film", "a", "and", "of", "plot", "actor", "scene", "story", "it", "was",
           "this", "director", "music", "end")


def make_reviews(n: int, *, seed: int = 0, words: int = 20, purity: float = 0.8) -> Reviews:
    """``n`` reviews, alternating positive and negative.

    Args:
        n: number of reviews.
        seed: seed of the word draws.
        words: tokens per review (about a third are sentiment words).
        purity: probability that a sentiment word comes from the review's own class.
    """
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = 1 - i % 2
        own, other = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
        tokens = []
        for _ in range(words):
            if rng.random() < 1 / 3:
                pool = own if rng.random() < purity else other
            else:
                pool = NEUTRAL
            tokens.append(pool[rng.integers(len(pool))])
        tokens[0] = tokens[0].capitalize()
        texts.append(" ".join(tokens[: words // 2]) + ". <br /><br />" + " ".join(tokens[words // 2:]) + "!")
        labels.append(label)
    return Reviews(texts, np.array(labels, dtype=np.int64), [f"synthetic:{i}" for i in range(n)])


def write_aclimdb(root: Path, reviews: Reviews, split: str = "train") -> Path:
    """Write ``reviews`` as ``root/aclImdb/<split>/{pos,neg}/<i>_<rating>.txt``; returns ``root/aclImdb``."""
    base = Path(root) / "aclImdb"
    for sub in ("pos", "neg"):
        (base / split / sub).mkdir(parents=True, exist_ok=True)
    for i, (text, label) in enumerate(zip(reviews.texts, reviews.labels)):
        sub, rating = ("pos", 8) if label else ("neg", 2)
        (base / split / sub / f"{i}_{rating}.txt").write_text(text, encoding="utf-8")
    return base


def write_lines(root: Path, reviews: Reviews) -> Path:
    """Write ``reviews`` as ``root/reviews.txt`` and ``root/labels.txt`` (the 2017 tutorial layout)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "reviews.txt").write_text("".join(t.replace("\n", " ") + "\n" for t in reviews.texts), encoding="utf-8")
    (root / "labels.txt").write_text("".join(("positive" if y else "negative") + "\n" for y in reviews.labels))
    return root
