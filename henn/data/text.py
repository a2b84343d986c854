"""Text preprocessing for the bag-of-words sentiment network.

The 2017 tutorial network looks only at *which* vocabulary words a review contains.
This module turns raw review text into tokens (:func:`tokenize`), chooses the
vocabulary from the training reviews (:meth:`Vocabulary.build`: a ``min_count``
frequency floor and a *polarity cutoff* that drops words whose positive/negative
usage ratio is close to even) and encodes each review once as a sorted array of
distinct word indices (:meth:`Vocabulary.encode`), which is what the encrypted
gather-sum and scatter-add operations take.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from typing import Any, Iterable, Sequence

import numpy as np

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# A word is a run of letters/digits, optionally with inner apostrophes ("don't");
# every other non-space character becomes its own token when punctuation is kept.
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_WORD_OR_PUNCT = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]")


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """How review text becomes tokens and which tokens make the vocabulary.

    Attributes:
        lowercase: fold case before splitting.
        strip_html: replace ``<br />`` line breaks with spaces.
        punctuation: ``"split"`` keeps each punctuation mark as its own token,
            ``"drop"`` removes punctuation, ``"none"`` splits on whitespace only
            (the 2017 tutorial's ``split(" ")``, punctuation glued to words).
        min_count: a word enters the vocabulary only if it occurs more than this many
            times in the training reviews.
        polarity_cutoff: keep a word only if ``|log((pos + 1) / (neg + 1))|`` (counts
            normalised by the class sizes) is at least this; 0 keeps everything.
    """

    lowercase: bool = True
    strip_html: bool = True
    punctuation: str = "drop"
    min_count: int = 10
    polarity_cutoff: float = 0.2

    def __post_init__(self) -> None:
        if self.punctuation not in ("split", "drop", "none"):
            raise ValueError(f"cannot configure text: punctuation must be 'split', 'drop' or 'none', "
                             f"got {self.punctuation!r}")
        if int(self.min_count) != self.min_count or self.min_count < 0:
            raise ValueError(f"cannot configure text: min_count must be a non-negative integer, "
                             f"got {self.min_count!r}")
        if not (self.polarity_cutoff >= 0 and math.isfinite(self.polarity_cutoff)):
            raise ValueError(f"cannot configure text: polarity_cutoff must be finite and >= 0, "
                             f"got {self.polarity_cutoff!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TextConfig":
        return cls(**data)


def tokenize(text: str, config: TextConfig = TextConfig()) -> list[str]:
    """Split one review into tokens according to ``config``.

    Args:
        text: the raw review.
        config: case folding, HTML break removal and punctuation handling.

    Returns:
        The tokens in order (repeats kept).
    """
    if config.strip_html:
        text = _BREAK.sub(" ", text)
    if config.lowercase:
        text = text.lower()
    if config.punctuation == "none":
        return text.split()
    pattern = _WORD_OR_PUNCT if config.punctuation == "split" else _WORD
    return pattern.findall(text)


class Vocabulary:
    """The words the network sees, each with a row index into ``W01``.

    Args:
        words: the vocabulary in index order.
        config: the text settings used to build it (saved with the model so the same
            tokenisation is applied at evaluation time).
    """

    def __init__(self, words: Sequence[str], config: TextConfig = TextConfig()):
        self.words = list(words)
        self.config = config
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("cannot build a vocabulary: words repeat")

    def __len__(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words, min_count={self.config.min_count}, " \
               f"polarity_cutoff={self.config.polarity_cutoff})"

    @classmethod
    def build(cls, texts: Iterable[str], labels: Iterable[int], config: TextConfig = TextConfig()) -> "Vocabulary":
        """Choose the vocabulary from labelled training reviews.

        Word counts are token counts (repeats included), as in the 2017 tutorial; the
        order is by decreasing count, ties alphabetical, so it is reproducible.

        Args:
            texts: the training reviews.
            labels: 1 (positive) or 0 (negative) per review.
            config: tokenisation, ``min_count`` and ``polarity_cutoff``.

        Returns:
            The vocabulary.

        Raises:
            ValueError: labels other than 0/1, lengths differ, or no word survives.
        """
        pos, neg = Counter(), Counter()
        n_pos = n_neg = 0
        texts, labels = list(texts), list(labels)
        if len(texts) != len(labels):
            raise ValueError(f"cannot build a vocabulary: {len(texts)} reviews but {len(labels)} labels")
        for text, label in zip(texts, labels):
            if label not in (0, 1):
                raise ValueError(f"cannot build a vocabulary: labels must be 0 or 1, got {label!r}")
            target = pos if label == 1 else neg
            target.update(tokenize(text, config))
            n_pos += label == 1
            n_neg += label == 0
        words = _select(pos, neg, n_pos, n_neg, config)
        if not words:
            raise ValueError(f"cannot build a vocabulary: no word passes min_count={config.min_count} and "
                             f"polarity_cutoff={config.polarity_cutoff}")
        return cls(words, config)

    def encode(self, text: str) -> np.ndarray:
        """The sorted distinct vocabulary indices of the words in ``text`` (int64, maybe empty)."""
        index = self.index
        ids = {index[t] for t in tokenize(text, self.config) if t in index}
        return np.array(sorted(ids), dtype=np.int64)

    def encode_all(self, texts: Iterable[str]) -> list[np.ndarray]:
        """:meth:`encode` for every review (done once, before training)."""
        return [self.encode(t) for t in texts]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored in the saved model's metadata."""
        return {"words": self.words, "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Vocabulary":
        try:
            return cls(data["words"], TextConfig.from_dict(data["config"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"cannot load a vocabulary: malformed data ({exc})") from None


def polarity(pos: int, neg: int, n_pos: int, n_neg: int) -> float:
    """``log`` of the class-size-normalised positive/negative usage ratio, add-one smoothed."""
    scale = (n_neg or 1) / (n_pos or 1)
    return math.log((pos * scale + 1.0) / (neg + 1.0))


def _select(pos: Counter, neg: Counter, n_pos: int, n_neg: int, config: TextConfig) -> list[str]:
    total = pos + neg
    kept = [w for w, c in total.items()
            if c > config.min_count and abs(polarity(pos[w], neg[w], n_pos, n_neg)) >= config.polarity_cutoff]
    kept.sort(key=lambda w: (-total[w], w))
    return kept
