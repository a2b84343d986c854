"""The sentiment task's data: reviews split, tokenised and turned into index arrays; parts of the split.

The owner fixes the validation split (its seed) and the vocabulary; each trainer takes
one of ``M`` contiguous, disjoint parts of the training reviews (``--part K/M``).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ...data.imdb import Reviews, split_validation
from ...data.text import TextConfig, Vocabulary


@dataclasses.dataclass
class Prepared:
    """Reviews turned into index arrays, ready to train on.

    Attributes:
        vocab: the vocabulary (built from the training part only).
        train_ids, train_labels: training reviews in training order.
        val_ids, val_labels: held-out reviews.

    A review with no vocabulary word keeps an empty index array: it changes no weight
    and is predicted ``s(0)``.
    """

    vocab: Vocabulary
    train_ids: list[np.ndarray]
    train_labels: np.ndarray
    val_ids: list[np.ndarray]
    val_labels: np.ndarray


def prepare(reviews: Reviews, *, validation: int = 5000, limit: int | None = None, seed: int = 0,
            text: TextConfig = TextConfig()) -> Prepared:
    """Split, build the vocabulary on the training part and tokenise everything once.

    Args:
        reviews: all labelled reviews.
        validation: how many to hold out (fixed ``seed``).
        limit: train on only the first ``limit`` training reviews (after the split).
        seed: seed of the split.
        text: tokenisation and vocabulary settings.
    """
    train_idx, val_idx = split_validation(len(reviews), validation, seed)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"cannot prepare: limit must be positive, got {limit}")
        train_idx = train_idx[:limit]
    train = reviews.subset(train_idx)
    val = reviews.subset(val_idx)
    vocab = Vocabulary.build(train.texts, train.labels, text)
    return Prepared(vocab, vocab.encode_all(train.texts), train.labels,
                    vocab.encode_all(val.texts), val.labels)



def parse_part(text: str) -> tuple[int, int]:
    """``"K/M"`` -> ``(K, M)`` with ``1 <= K <= M``.

    Raises:
        ValueError: not of that form.
    """
    k, sep, m = str(text).partition("/")
    try:
        part, parts = int(k), int(m)
    except ValueError:
        part = parts = 0
    if not sep or not 1 <= part <= parts:
        raise ValueError(f"cannot select a part: expected K/M with 1 <= K <= M, got {text!r}")
    return part, parts


def part_slice(n: int, part: int, parts: int) -> slice:
    """The ``part``-th (1-based) of ``parts`` contiguous, disjoint, near-equal slices of ``range(n)``."""
    if not 1 <= part <= parts:
        raise ValueError(f"cannot select part {part} of {parts}")
    return slice(n * (part - 1) // parts, n * part // parts)
