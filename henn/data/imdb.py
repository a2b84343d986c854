"""Loading labelled movie reviews from disk.

Two layouts are read:

* the standard **aclImdb** layout ``ROOT/{train,test}/{pos,neg}/*.txt``, one review per
  file (``ROOT`` may be the ``aclImdb`` directory itself or its parent);
* the 2017 tutorial's **lines** layout: ``ROOT/reviews.txt`` and ``ROOT/labels.txt``
  with one review (one label: ``positive``/``negative``, ``pos``/``neg`` or ``1``/``0``)
  per line.

Bytes that are not UTF-8 are decoded with U+FFFD replacement characters and a
warning says how many reviews were affected; empty reviews, a missing label file or
a count mismatch are errors. :func:`split_validation` holds reviews out with a fixed
seed.
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]
_LABEL_WORDS = {"positive": 1, "pos": 1, "1": 1, "negative": 0, "neg": 0, "0": 0}


class DataError(ValueError):
    """The review data on disk is missing, malformed or inconsistent."""


@dataclasses.dataclass
class Reviews:
    """Labelled reviews in a fixed order.

    Attributes:
        texts: the review texts.
        labels: int64 array, 1 for positive and 0 for negative.
        sources: where each review came from (file name, or ``reviews.txt:LINE``).
        replaced: how many reviews had bytes that are not UTF-8 (decoded with U+FFFD).
    """

    texts: list[str]
    labels: np.ndarray
    sources: list[str]
    replaced: int = 0

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: np.ndarray) -> "Reviews":
        """The reviews at the given positions, in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        return Reviews([self.texts[i] for i in idx], self.labels[idx].copy(),
                       [self.sources[i] for i in idx], self.replaced)


def load_imdb(root: PathLike, split: str = "train") -> Reviews:
    """Read reviews from ``root``, detecting the layout.

    Args:
        root: an aclImdb directory (or its parent), or a directory with ``reviews.txt``.
        split: ``"train"`` or ``"test"`` for the aclImdb layout; the lines layout looks
            for ``root/reviews.txt`` first, then ``root/<split>/reviews.txt``.

    Returns:
        The reviews.

    Raises:
        DataError: no known layout under ``root``, or bad contents (see the loaders).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"cannot load reviews: {root} is not a directory")
    for candidate in (root, root / split):
        if (candidate / "reviews.txt").is_file():
            return load_lines(candidate)
    return load_aclimdb(root, split)


def _acl_split_dir(root: Path, split: str) -> Path:
    for base in (root, root / "aclImdb"):
        if (base / split / "pos").is_dir() and (base / split / "neg").is_dir():
            return base / split
    raise DataError(f"cannot load reviews: no {split}/pos and {split}/neg directories under {root} "
                    f"(nor under {root / 'aclImdb'}), and no reviews.txt")


def load_aclimdb(root: PathLike, split: str = "train") -> Reviews:
    """Read ``root/<split>/{pos,neg}/*.txt`` (``root`` may also be the parent of ``aclImdb``).

    Files are read in name order, positives first, so the order is reproducible.

    Raises:
        DataError: the directories are missing or hold no ``.txt`` file, or a file is empty.
    """
    if split not in ("train", "test"):
        raise DataError(f"cannot load reviews: split must be 'train' or 'test', got {split!r}")
    base = _acl_split_dir(Path(root), split)
    texts, labels, sources, replaced = [], [], [], 0
    for label, sub in ((1, "pos"), (0, "neg")):
        files = sorted(p for p in (base / sub).iterdir() if p.suffix == ".txt")
        if not files:
            raise DataError(f"cannot load reviews: {base / sub} holds no .txt files")
        for path in files:
            text, bad = _decode(path.read_bytes(), str(path))
            texts.append(text)
            labels.append(label)
            sources.append(f"{sub}/{path.name}")
            replaced += bad
    _warn_replaced(replaced, str(base))
    return Reviews(texts, np.array(labels, dtype=np.int64), sources, replaced)


def load_lines(root: PathLike) -> Reviews:
    """Read ``root/reviews.txt`` and ``root/labels.txt`` (one review / label per line).

    Raises:
        DataError: a file is missing, a review or label line is empty or unknown, or the
            two files have different numbers of lines.
    """
    root = Path(root)
    review_file, label_file = root / "reviews.txt", root / "labels.txt"
    if not review_file.is_file():
        raise DataError(f"cannot load reviews: {review_file} does not exist")
    if not label_file.is_file():
        raise DataError(f"cannot load reviews: {label_file} does not exist (reviews.txt needs a labels.txt "
                        "with one label per line)")
    text, replaced = _decode_lines(review_file)
    reviews = _lines(text)
    labels = _parse_labels(_lines(label_file.read_bytes().decode("utf-8", errors="replace")), label_file)
    if len(reviews) != len(labels):
        raise DataError(f"cannot load reviews: {review_file} has {len(reviews)} reviews but {label_file} "
                        f"has {len(labels)} labels")
    for i, r in enumerate(reviews):
        if not r.strip():
            raise DataError(f"cannot load reviews: review on line {i + 1} of {review_file} is empty")
    _warn_replaced(replaced, str(review_file))
    return Reviews(reviews, np.array(labels, dtype=np.int64),
                   [f"reviews.txt:{i + 1}" for i in range(len(reviews))], replaced)


def split_validation(n: int, validation: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``range(n)`` with ``seed`` and hold out ``validation`` positions.

    Args:
        n: number of reviews.
        validation: how many to hold out (0 allowed).
        seed: seed of the shuffle (numpy ``default_rng``; this is data order, not key material).

    Returns:
        ``(train_idx, validation_idx)``, both int64, the training part in shuffled order.

    Raises:
        ValueError: ``validation`` is negative or leaves no training review.
    """
    if validation < 0 or validation >= n:
        raise ValueError(f"cannot split: validation must be in [0, {n - 1}] for {n} reviews, got {validation}")
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    return order[validation:], np.sort(order[:validation])


def _decode(raw: bytes, where: str) -> tuple[str, int]:
    if not raw.strip():
        raise DataError(f"cannot load reviews: {where} is empty")
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), 1


def _decode_lines(path: Path) -> tuple[str, int]:
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"cannot load reviews: {path} is empty")
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        # Count the affected reviews (lines), not the whole file.
        bad = 0
        for line in raw.split(b"\n"):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                bad += 1
        return raw.decode("utf-8", errors="replace"), bad


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":  # the final newline ends the last line, it adds none
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _parse_labels(lines: list[str], where: Path) -> list[int]:
    labels = []
    for i, line in enumerate(lines):
        word = line.strip().lower()
        if word not in _LABEL_WORDS:
            raise DataError(f"cannot load reviews: line {i + 1} of {where} has label {line.strip()!r}; "
                            "expected positive/negative, pos/neg or 1/0")
        labels.append(_LABEL_WORDS[word])
    return labels


def _warn_replaced(count: int, where: str) -> None:
    if count:
        warnings.warn(f"{count} review(s) in {where} were not valid UTF-8; undecodable bytes were replaced "
                      "with U+FFFD", UnicodeWarning, stacklevel=3)
