"""What the sentiment commands read: the data option, the reviews, the owner's split, the randomness."""
from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

import he_core

from ... import lifecycle as lc
from ...data.imdb import load_imdb, split_validation

DEFAULT_DATA = os.environ.get("HENN_IMDB")


def add_data_option(parser: argparse.ArgumentParser) -> None:
    """Register ``--data ROOT`` (required unless ``$HENN_IMDB`` names the data)."""
    parser.add_argument("--data", metavar="ROOT", default=DEFAULT_DATA, required=DEFAULT_DATA is None,
                        help="aclImdb directory (or its parent), or a directory with reviews.txt/labels.txt "
                             "(default: $HENN_IMDB)")


def load_reviews(root: str, split: str, quiet: bool):
    """The labelled reviews of ``split`` under ``root``; undecodable bytes are warned about on stderr unless quiet.

    Raises:
        henn.data.imdb.DataError: no such data.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnicodeWarning)
        reviews = load_imdb(root, split)
    for w in caught:
        if not quiet:
            print(f"henn: warning: {w.message}", file=sys.stderr)
    return reviews


def train_indices(reviews, split: dict, root) -> np.ndarray:
    """The training indices of the owner's split (the same reviews must be present).

    Raises:
        ValueError: ``reviews`` is not the set the owner's split was made on.
    """
    if len(reviews) != split["reviews"]:
        raise ValueError(f"cannot use the data at {root}: it holds {len(reviews)} training reviews, the model's "
                         f"split was made on {split['reviews']}")
    return split_validation(len(reviews), split["validation"], split["seed"])[0]


def validation_indices(reviews, split: dict, root) -> np.ndarray:
    """The held-out indices of the owner's split (checked like :func:`train_indices`)."""
    train_indices(reviews, split, root)  # same reviews as the owner's, or a clear error
    return split_validation(len(reviews), split["validation"], split["seed"])[1]


def init_rng(args):
    """The initial weights' randomness: the OS CSPRNG, or an explicit --seed for a reproducible experiment."""
    return None if args.seed is None else he_core.SeededRandom(args.seed)


def progress_bar(desc: str, quiet: bool) -> bool | dict:
    """The trainer's progress bar (stderr): named ``desc``, counting reviews; none when quiet."""
    return False if quiet else {"desc": desc, "unit": "review"}


def passphrase_of(args):
    """The owner's ``--passphrase-file`` passphrase, or ``None``."""
    return None if args.passphrase_file is None else lc.read_passphrase(args.passphrase_file)
