"""``henn evaluate sentiment``: a saved encrypted model on a split, predictions released by the key holder."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import he_core

from ... import lifecycle as lc
from ...data.imdb import DataError
from ...keyholder import KeyHolder, RefreshTerms
from ...tasks import sentiment as T
from .. import common
from .inputs import load_reviews, passphrase_of, validation_indices
from .parties import net_from_model


def run_evaluate(args: argparse.Namespace) -> int:
    """Handler of ``henn evaluate sentiment``; returns the exit code."""
    try:
        if not Path(args.model).exists():
            raise FileNotFoundError(f"cannot evaluate: the model {args.model} does not exist")
        reviews = load_reviews(args.data, "train" if args.split == "validation" else args.split, args.quiet)
        # Each prediction is a released decryption: the flooding is sized for all of them.
        terms = RefreshTerms(refreshes=4 * len(reviews) + 16, releases=len(reviews) + 8)
        if args.keys is not None:
            net, keyholder, vocab, config, split = _load_owned(args, terms)
        else:
            net, keyholder, vocab, config = T.load_sentiment(args.model, terms=terms, allow_insecure=args.allow_insecure,
                                                             passphrase=passphrase_of(args))
            split = None
        if args.split == "validation":
            if split is None:
                raise ValueError("cannot evaluate on the validation split: only a --keys model records its split")
            reviews = reviews.subset(validation_indices(reviews, split, args.data))
        if args.limit is not None:
            reviews = reviews.subset(np.arange(min(args.limit, len(reviews))))
        ids = vocab.encode_all(reviews.texts)
        ev = T.evaluate_encrypted(net, keyholder, ids, reviews.labels, config)
    except (DataError, ValueError, FileNotFoundError) as exc:
        return common.fail(str(exc))
    except he_core.HEError as exc:
        return common.fail(f"evaluation failed: {type(exc).__name__}: {exc}")
    scheme = keyholder.scheme
    summary = {"task": "sentiment", "scheme": scheme.name, "model": str(args.model), "split": args.split,
               "reviews": ev["reviews"], "accuracy": ev["accuracy"], "loss": ev["loss"],
               "seconds": ev["seconds"], "reviews_per_s": ev["reviews_per_s"], **keyholder.counters()}
    if not args.quiet and not args.json:
        print(f"sentiment model {args.model} on {args.split} ({ev['reviews']} reviews, {scheme.name}): "
              f"accuracy {ev['accuracy']:.4f}, {ev['reviews_per_s']:.0f} reviews/s")
    if args.json:
        common.emit_json(summary)
    return common.EXIT_OK


def _load_owned(args, terms):
    """Owner: an encrypted sentiment model file and a key holder with the key directory's secret key."""
    model_path, keys_dir = args.model, args.keys
    model = lc.load_encrypted_model(model_path, allow_insecure=args.allow_insecure)
    secret = lc.load_secret(keys_dir, passphrase_of(args), allow_insecure=args.allow_insecure)
    if model.bundle.key_ids != [secret.key_id]:
        raise he_core.MismatchError(f"cannot evaluate {model_path}: it is under key "
                                    f"{', '.join(model.bundle.key_ids)}, {keys_dir} holds key {secret.key_id}")
    net, vocab, config, split = net_from_model(model, model_path)
    return net, KeyHolder(model.scheme, secret, terms=terms), vocab, config, split
