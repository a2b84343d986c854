"""Data sets for the henn tasks: the IMDB review loaders and text preprocessing.

* :mod:`henn.data.imdb` — reading the aclImdb directory layout and the
  ``reviews.txt`` / ``labels.txt`` one-review-per-line layout, and a seeded
  validation split.
* :mod:`henn.data.text` — tokenising, vocabulary building (``min_count`` and a
  polarity cutoff) and turning reviews into index arrays.
"""
from .imdb import Reviews, load_imdb, load_aclimdb, load_lines, split_validation
from .text import TextConfig, Vocabulary, tokenize

__all__ = ["Reviews", "TextConfig", "Vocabulary", "load_aclimdb", "load_imdb", "load_lines",
           "split_validation", "tokenize"]
