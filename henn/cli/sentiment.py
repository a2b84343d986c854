"""``henn train sentiment`` and ``henn evaluate sentiment``: the IMDB network with encrypted weights.

``train`` reads the reviews, holds ``--validation`` of them out (fixed ``--split-seed``),
builds the vocabulary on the rest, trains one encrypted network per review with
SGD, predicts the held-out reviews encrypted (the key holder decrypts only the
outputs), and also decrypts the weights to predict in the clear and check the two
agree. ``--twin`` trains the plaintext twin identically for comparison.
``evaluate`` runs a saved encrypted model on a split of a data directory.

The model's life across parties (see :mod:`henn.lifecycle`):

* owner: ``train sentiment --data ROOT --init PLAIN.npz`` writes the initial weights,
  vocabulary, config and validation split; ``henn keygen --model PLAIN.npz`` and
  ``henn encrypt-model`` make the encrypted model file;
* trainer: ``train sentiment --model FILE --data ROOT --part K/M --out FILE`` trains on
  the K-th of M disjoint parts of the training split inside
  :func:`henn.lifecycle.public_only`: no secret key is read and nothing is decrypted.
  With ``--keyholder ADDRESS`` it refreshes through the owner's key service
  (``henn serve-keys``, :mod:`henn.keyservice`): masked re-encryptions only, so a whole
  part trains on ``vhe`` or ``ckks``. Without it a scheme with a budget stops with a
  clear error when the budget runs out (on ``vhe`` after about 50 IMDB reviews; on
  ``ckks`` at the first review, whose logit must be re-encrypted before the sigmoid);
  ``--until-exhausted`` then writes the model trained so far and reports
  ``next_start`` for a file round trip through the owner (``henn decrypt-model`` +
  ``henn encrypt-model``, then ``--start next_start``);
* owner: ``evaluate sentiment --model FILE --keys DIR --split validation`` (or
  ``henn decrypt-model``).
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np

import he_core

from . import common

DEFAULT_DATA = os.environ.get("HENN_IMDB")


def add_train_parser(train_subparsers) -> argparse.ArgumentParser:
    """Register ``henn train sentiment``."""
    from ..data.text import TextConfig
    from ..tasks.sentiment import SentimentConfig

    cfg, text = SentimentConfig(), TextConfig()
    parser = train_subparsers.add_parser(
        "sentiment", help="the 2017 IMDB sentiment network with encrypted weights",
        description="Train Trask's IMDB sentiment network (bag of words, hidden layer without activation, "
                    "polynomial sigmoid output) with encrypted weights, one review per SGD step.")
    _add_data(parser)
    common.add_common_options(parser)
    parser.add_argument("--hidden", type=common.positive_int, default=cfg.hidden, help="hidden units (default 8)")
    parser.add_argument("--epochs", type=common.positive_int, default=1, help="passes over the training reviews")
    parser.add_argument("--limit", type=common.positive_int, default=None,
                        help="train on only the first N training reviews")
    parser.add_argument("--validation", type=common.non_negative_int, default=5000,
                        help="reviews held out for validation (default 5000)")
    parser.add_argument("--split-seed", type=common.non_negative_int, default=0,
                        help="seed of the validation split (default 0)")
    parser.add_argument("--lr", type=common.positive_float, default=cfg.lr, help=f"learning rate (default {cfg.lr})")
    parser.add_argument("--init-scale", type=float, default=cfg.init_scale,
                        help=f"std of the initial output weights (default {cfg.init_scale})")
    parser.add_argument("--degree", type=common.positive_int, default=cfg.degree,
                        help=f"degree of the least-squares sigmoid (default {cfg.degree})")
    parser.add_argument("--interval", type=common.positive_float, default=cfg.interval,
                        help=f"half-width of the sigmoid fit interval (default {cfg.interval})")
    parser.add_argument("--min-count", type=common.non_negative_int, default=text.min_count,
                        help=f"keep words seen more than this many times (default {text.min_count})")
    parser.add_argument("--polarity-cutoff", type=float, default=text.polarity_cutoff,
                        help=f"keep words with |log pos/neg ratio| >= this (default {text.polarity_cutoff})")
    parser.add_argument("--punctuation", choices=("drop", "split", "none"), default=text.punctuation,
                        help=f"punctuation handling (default {text.punctuation})")
    parser.add_argument("--scheme-param", metavar="KEY=VALUE", type=common.scheme_param, action="append", default=[],
                        help="scheme parameter passed to he_core.get_scheme (repeatable); default: the scheme's "
                             "cheapest set for one training step above the refresh floor (ckks: N=16384, 5 levels "
                             "of 54 bits)")
    parser.add_argument("--monitor-every", type=common.positive_int, default=None,
                        help="reviews per aggregate released to the owner (default 500; the owner never sees "
                             "fewer at once)")
    parser.add_argument("--twin", action="store_true",
                        help="also train the plaintext twin identically and report its validation accuracy")
    parser.add_argument("--reference", choices=("sigmoid", "poly"), default=None,
                        help="instead: train the NumPy float64 reference (exact sigmoid, or the polynomial) "
                             "and report its accuracy and logit range (to size --interval)")
    lifecycle = parser.add_argument_group(
        "model lifecycle", "owner: --init writes the initial plaintext model (then henn keygen --model, henn "
        "encrypt-model); trainer: --model/--out trains an encrypted model file with public material only")
    lifecycle.add_argument("--init", metavar="PLAIN.npz",
                           help="owner: write the initial weights, vocabulary, config and split (no training)")
    lifecycle.add_argument("--model", metavar="FILE", help="trainer: the encrypted model file to train")
    lifecycle.add_argument("--out", metavar="FILE", help="trainer: where to write the trained encrypted model")
    lifecycle.add_argument("--part", metavar="K/M", default="1/1",
                           help="trainer: train on the K-th of M disjoint parts of the training split (default 1/1)")
    lifecycle.add_argument("--start", metavar="N", type=common.non_negative_int, default=0,
                           help="trainer: skip the first N reviews of the part (resume after the owner refreshed "
                                "the model: henn decrypt-model, then henn encrypt-model); --limit counts from here")
    lifecycle.add_argument("--keyholder", metavar="ADDRESS",
                           help="trainer: refresh through the owner's key service (henn serve-keys) at unix:PATH or "
                                "tls://HOST:PORT; masked re-encryptions only, nothing is decrypted for the trainer")
    lifecycle.add_argument("--tls-dir", metavar="DIR",
                           help="trainer: ca.pem, client.pem and client.key for a tls:// key service")
    lifecycle.add_argument("--owner-key", metavar="FILE",
                           help="trainer: the owner's verification key (owner.pub): refuse a model file it did not "
                                "sign")
    lifecycle.add_argument("--allow-insecure", action="store_true",
                           help="accept a model under insecure parameters (vhe, toy rings): tests only")
    lifecycle.add_argument("--until-exhausted", action="store_true",
                           help="trainer: when the noise budget runs out, write the model trained so far (and "
                                "report next_start) instead of failing")
    parser.set_defaults(func=run_train, _defaults={d: parser.get_default(d) for d in _TRAINER_FIXED})
    return parser


# Options a trainer cannot change: the encrypted model file fixes the network, the
# vocabulary and the split, and the trainer has no key to save, plot or validate with.
_TRAINER_FIXED = ("scheme", "scheme_param", "seed", "hidden", "epochs", "validation", "split_seed", "lr",
                  "init_scale", "degree", "interval", "min_count", "polarity_cutoff", "punctuation", "twin",
                  "reference", "save", "plot")


def _trainer_conflicts(args: argparse.Namespace) -> list[str]:
    """The ``--options`` given on the trainer path that it would otherwise ignore."""
    return ["--" + d.replace("_", "-") for d in _TRAINER_FIXED if getattr(args, d, None) != args._defaults[d]]


def add_evaluate_parser(evaluate_subparsers) -> argparse.ArgumentParser:
    """Register ``henn evaluate sentiment``."""
    parser = evaluate_subparsers.add_parser(
        "sentiment", help="evaluate a saved encrypted sentiment model",
        description="Run a saved encrypted sentiment model on a data split (encrypted forward pass; "
                    "predictions decrypted with the saved key).")
    parser.add_argument("--model", metavar="DIR", required=True,
                        help="directory written by --save, or (with --keys) an encrypted model file")
    parser.add_argument("--allow-insecure", action="store_true",
                        help="accept a model under insecure parameters (vhe, plain, toy rings): tests only")
    parser.add_argument("--passphrase-file", metavar="FILE", default=None,
                        help="owner: the passphrase of a sealed secret key (its first line)")
    parser.add_argument("--keys", metavar="DIR", default=None,
                        help="owner: the key directory whose secret key the --model file is under")
    _add_data(parser)
    parser.add_argument("--split", choices=("train", "test", "validation"), default="test",
                        help="which split (default test); validation = the reviews a --keys model's owner held out")
    parser.add_argument("--limit", type=common.positive_int, default=None, help="evaluate only the first N reviews")
    parser.add_argument("--json", action="store_true", help="print one JSON summary object as the last stdout line")
    parser.add_argument("--quiet", action="store_true", help="no human-readable summary")
    parser.set_defaults(func=run_evaluate)
    return parser


def _add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="ROOT", default=DEFAULT_DATA, required=DEFAULT_DATA is None,
                        help="aclImdb directory (or its parent), or a directory with reviews.txt/labels.txt "
                             "(default: $HENN_IMDB)")


def _load(root: str, split: str, quiet: bool):
    from ..data.imdb import load_imdb

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnicodeWarning)
        reviews = load_imdb(root, split)
    for w in caught:
        if not quiet:
            print(f"henn: warning: {w.message}", file=sys.stderr)
    return reviews


# ---------------------------------------------------------------------------- train
def run_train(args: argparse.Namespace) -> int:
    """Handler of ``henn train sentiment``; returns the exit code."""
    from ..data.imdb import DataError
    from ..data.text import TextConfig
    from ..tasks.sentiment import SentimentConfig

    scheme_name = args.scheme or common.default_scheme()
    try:
        text = TextConfig(min_count=args.min_count, polarity_cutoff=args.polarity_cutoff,
                          punctuation=args.punctuation)
        config = SentimentConfig(hidden=args.hidden, lr=args.lr, init_scale=args.init_scale, degree=args.degree,
                                 interval=args.interval)
    except ValueError as exc:
        return common.fail(str(exc))
    if args.model is not None or args.init is not None:
        return _run_lifecycle(args, text, config)
    if args.keyholder is not None:
        return common.fail("cannot use --keyholder without --model: it is how a trainer of an encrypted model file "
                           "reaches the owner's key service")
    try:
        reviews = _load(args.data, "train", args.quiet)
        if args.reference:
            summary = _reference(args, reviews, text, config)
        else:
            summary = _train(args, scheme_name, reviews, text, config)
    except (DataError, ValueError, FileNotFoundError) as exc:
        return common.fail(str(exc))
    except he_core.HEError as exc:
        return common.fail(f"training failed: {type(exc).__name__}: {exc}")
    _report_train(summary, args)
    return common.EXIT_OK


def _run_lifecycle(args, text, config) -> int:
    """``--init`` (owner) or ``--model``/``--out`` (trainer): the model's life across parties."""
    from ..data.imdb import DataError

    try:
        if args.init is not None:
            if args.model is not None or args.limit is not None or args.keyholder is not None:
                raise ValueError("cannot initialise: --init takes neither --model, --limit nor --keyholder "
                                 "(the trainers choose their reviews with --part and --limit)")
            summary = _init_plain(args, text, config)
        else:
            if args.out is None:
                raise ValueError("cannot train an encrypted model file: --out FILE is required with --model")
            conflicts = _trainer_conflicts(args)
            if conflicts:
                raise ValueError(f"cannot train an encrypted model file with {', '.join(conflicts)}: the model file "
                                 "fixes the scheme, network, vocabulary and split, and a trainer has no key to "
                                 "save, plot or validate with (the owner set these with --init)")
            summary = _train_public(args)
    except (DataError, ValueError, FileNotFoundError) as exc:
        return common.fail(str(exc))
    except he_core.HEError as exc:
        return common.fail(f"training failed: {type(exc).__name__}: {exc}")
    message = summary.pop("message")
    if args.json:
        common.emit_json(summary)
    elif not args.quiet:
        print(message)
    return common.EXIT_OK


def _init_plain(args, text, config) -> dict:
    """Owner: vocabulary from the training split, initial weights, all written to a plaintext ``.npz``."""
    from .. import lifecycle as lc
    from ..tasks.sentiment import init_weights
    from ..tasks import sentiment as T

    reviews = _load(args.data, "train", args.quiet)
    data = T.prepare(reviews, validation=args.validation, seed=args.split_seed, text=text)
    W01, w12 = init_weights(len(data.vocab), config, _init_rng(args))
    split = {"reviews": len(reviews), "validation": args.validation, "seed": args.split_seed}
    meta = {"task": "sentiment", "config": config.to_dict(), "vocab": data.vocab.to_dict(), "split": split,
            "tables": ["W01", "w12"], "depth": T.STEP_DEPTH}
    lc.write_plain_model(args.init, lc.PlainModel({"W01": W01, "w12": w12}, meta))
    return {"task": "sentiment", "init": str(args.init), "vocab_size": len(data.vocab), "hidden": config.hidden,
            "train_reviews": len(data.train_ids), "validation_reviews": len(data.val_ids),
            "message": f"init: {len(data.vocab)} words x {config.hidden} hidden -> {args.init} (plaintext, mode 600; "
                       f"next: henn keygen --model, henn encrypt-model)"}


def _train_public(args) -> dict:
    """Trainer: train an encrypted model file on a part of the training split, never touching a secret key."""
    import time

    from .. import lifecycle as lc
    from ..tasks import sentiment as T

    part, parts = T.parse_part(args.part)
    with lc.public_only("trainer"):
        owner_key = lc.load_owner_key(args.owner_key) if args.owner_key else None
        model = lc.load_encrypted_model(args.model, owner_key=owner_key, allow_insecure=args.allow_insecure)
        net, vocab, config, split = _net_from(model, args.model)
        reviews = _load(args.data, "train", args.quiet)
        train_idx = _train_indices(reviews, split, args.data)
        train_idx = train_idx[T.part_slice(len(train_idx), part, parts)][args.start:]
        if args.limit is not None:
            train_idx = train_idx[:args.limit]
        if not len(train_idx):
            raise ValueError(f"cannot train: part {args.part} has no reviews from --start {args.start} on")
        chosen = reviews.subset(train_idx)
        keyholder = _remote_keyholder(args.keyholder, model, args.tls_dir)
        start = time.perf_counter()
        try:
            trained = T.train_public(net, vocab.encode_all(chosen.texts), chosen.labels, config,
                                     stop_when_exhausted=args.until_exhausted, keyholder=keyholder,
                                     progress=_bar(f"sentiment/{model.scheme.name} part {args.part}", args.quiet))
            seconds = time.perf_counter() - start
            trained_tensors = T.outgoing_weights(net, keyholder)
        finally:
            if keyholder is not None:
                keyholder.close()
        log = list(model.bundle.meta.get("training_log", []))
        log.append({"part": args.part, "start": args.start, "reviews": trained, "key_id": model.key_id,
                    "refresh_rounds": keyholder.refresh_rounds if keyholder else 0})
        lc.save_encrypted_model(args.out, model.with_tensors(trained_tensors, training_log=log))
    served = keyholder.counters() if keyholder is not None else {"refresh_rounds": 0, "bytes_exchanged": 0}
    via = f", {served['refresh_rounds']} masked refreshes through {args.keyholder}" if keyholder else ""
    return {"task": "sentiment", "scheme": model.scheme.name, "key_id": model.key_id, "part": args.part,
            "start": args.start, "train_reviews": trained, "next_start": args.start + trained,
            "exhausted": trained < len(train_idx), "seconds": seconds, "reviews_per_s": trained / seconds,
            "keyholder": args.keyholder, **served, "out": str(args.out),
            "message": f"trained {trained} of {len(train_idx)} reviews (part {args.part}, from {args.start}) under "
                       f"{model.scheme.name} key {model.key_id} in {seconds:.1f} s without any secret key{via} "
                       f"-> {args.out}"}


def _remote_keyholder(address, model, tls_dir=None):
    """The owner's key service for this model's key and job, or ``None`` without ``--keyholder``."""
    if address is None:
        return None
    from ..keyservice import RemoteKeyHolder

    job = model.bundle.meta.get("job")
    return RemoteKeyHolder(address, model.scheme, model.key_id, job=job if isinstance(job, dict) else None,
                           tls_dir=tls_dir)


def _net_from(model, path):
    """The sentiment network, vocabulary, config and split stored in an encrypted model file."""
    from ..data.text import Vocabulary
    from ..tasks.sentiment import SentimentConfig, model_from
    from ..tensor import EncTensor

    meta = model.bundle.meta.get("model", {})
    split = meta.get("split") if isinstance(meta, dict) else None
    if (meta.get("task") != "sentiment" or set(model.tensors) != {"W01", "w12"} or not isinstance(split, dict)
            or not all(isinstance(split.get(k), int) for k in ("reviews", "validation", "seed"))
            or not isinstance(meta.get("config"), dict)):
        raise ValueError(f"cannot use {path}: it is not an encrypted sentiment model made from "
                         "henn train sentiment --init (task, W01/w12, config, vocabulary and split expected)")
    try:
        config = SentimentConfig.from_dict(meta["config"])
    except TypeError as exc:
        raise ValueError(f"cannot use {path}: bad sentiment config: {exc}") from None
    vocab = Vocabulary.from_dict(meta.get("vocab"))
    tensors = {name: EncTensor(model.scheme, ct) for name, ct in model.tensors.items()}
    net = model_from(tensors["W01"], tensors["w12"])
    if net[0].in_features != len(vocab):
        raise ValueError(f"cannot use {path}: W01 has {net[0].in_features} rows but the vocabulary {len(vocab)} "
                         "words")
    return net, vocab, config, split


def _train_indices(reviews, split: dict, root) -> np.ndarray:
    """The training indices of the owner's split (the same reviews must be present)."""
    from ..data.imdb import split_validation

    if len(reviews) != split["reviews"]:
        raise ValueError(f"cannot use the data at {root}: it holds {len(reviews)} training reviews, the model's "
                         f"split was made on {split['reviews']}")
    return split_validation(len(reviews), split["validation"], split["seed"])[0]


def _train(args, scheme_name, reviews, text, config) -> dict:
    from ..tasks import sentiment as T
    from ..tasks.sentiment import init_weights

    data = T.prepare(reviews, validation=args.validation, limit=args.limit, seed=args.split_seed, text=text)
    activation = config.make_activation()
    W01, w12 = init_weights(len(data.vocab), config, _init_rng(args))
    def terms(scheme):
        return T.terms_for(len(data.train_ids), args.epochs, config.hidden, vocab=len(data.vocab),
                           validation=len(data.val_ids), monitor_every=_monitor_every(args),
                           whole_entries=T.whole_entries(scheme))

    try:
        scheme, keyholder = T.setup(scheme_name, config.hidden, terms=terms, **dict(args.scheme_param))
    except TypeError as exc:  # an unknown parameter name
        raise ValueError(f"cannot create scheme {scheme_name!r}: {exc}") from None
    net = T.build_model(scheme, W01, w12)
    result = T.train(net, keyholder, data.train_ids, data.train_labels, config, epochs=args.epochs,
                     monitor_every=_monitor_every(args), progress=_bar(f"sentiment/{scheme_name}", args.quiet))
    summary = _summary(scheme_name, config, data, result, activation)
    summary["monitor_every"] = _monitor_every(args)
    summary["scheme_params"] = scheme.params.to_dict()
    summary["refresh_rounds_per_review"] = keyholder.refresh_rounds / max(1, result.reviews)
    summary.update(_validate(net, keyholder, data, config, activation))
    if args.twin:
        summary.update(_twin(data, config, args.epochs, (W01, w12)))
    summary.update(keyholder.counters())
    if args.save:
        T.save_sentiment(args.save, net, keyholder, data.vocab, config, summary)
        summary["saved"] = str(args.save)
    if args.plot:
        common.plot_history(result.history, args.plot, x="reviews", metrics=("mae",),
                            title=f"IMDB sentiment on {scheme_name} (hidden {config.hidden}, lr {config.lr}): "
                                  f"released mean |p - y| per {T.MONITOR_EVERY} reviews")
        summary["plot"] = args.plot
    return summary


def _reference(args, reviews, text, config) -> dict:
    """The plaintext NumPy network: the accuracy the encrypted one is measured against."""
    import time

    from ..activations import sigmoid
    from ..tasks import sentiment as T

    data = T.prepare(reviews, validation=args.validation, limit=args.limit, seed=args.split_seed, text=text)
    if not data.val_ids:
        raise ValueError("cannot run the reference: --validation must hold out at least one review")
    activation = sigmoid if args.reference == "sigmoid" else config.make_activation().value
    start = time.perf_counter()
    result = T.train_reference(data, config, epochs=args.epochs, activation=activation)
    seconds = time.perf_counter() - start
    reviews_done = args.epochs * len(data.train_ids)
    return {"task": "sentiment", "scheme": f"numpy-{args.reference}", "epochs": args.epochs, "hidden": config.hidden,
            "lr": config.lr, "vocab_size": len(data.vocab), "train_reviews": len(data.train_ids),
            "validation_reviews": len(data.val_ids), "seconds": seconds, "reviews_per_s": reviews_done / seconds,
            "final_loss": None, "train_accuracy": float(result["train_accuracy"]),
            "validation_accuracy": result["validation_accuracy"],
            "clear_validation_accuracy": result["validation_accuracy"],
            "validation_logit_max": result["logit_range"], "validation_logit_p99": result["logit_p99"]}


def _monitor_every(args) -> int:
    from ..tasks import sentiment as T

    return args.monitor_every or T.MONITOR_EVERY


def _init_rng(args):
    """The initial weights' randomness: the OS CSPRNG, or an explicit --seed for a reproducible experiment."""
    return None if args.seed is None else he_core.SeededRandom(args.seed)


def _bar(desc: str, quiet: bool) -> bool | dict:
    """The trainer's progress bar (stderr): named ``desc``, counting reviews; none when quiet."""
    return False if quiet else {"desc": desc, "unit": "review"}


def _summary(scheme_name, config, data, result, activation) -> dict:
    return {
        "task": "sentiment", "scheme": scheme_name, "epochs": result.reviews // max(
            1, len(data.train_ids)), "hidden": config.hidden, "lr": config.lr, "init_scale": config.init_scale,
        "activation": activation.name, "degree": activation.degree, "interval": activation.interval,
        "activation_max_error": activation.max_error, "vocab_size": len(data.vocab),
        "min_count": data.vocab.config.min_count, "polarity_cutoff": data.vocab.config.polarity_cutoff,
        "train_reviews": len(data.train_ids), "validation_reviews": len(data.val_ids),
        "seconds": result.seconds, "reviews_per_s": result.reviews_per_s, "train_mae": result.final_mae,
        "refreshes": result.refreshes,
        "history": [{k: r[k] for k in ("reviews", "mae")} for r in result.history],
    }


def _validate(net, keyholder, data, config, activation) -> dict:
    from ..tasks import sentiment as T

    if not data.val_ids:
        return {"validation_accuracy": None, "clear_validation_accuracy": None}
    ev = T.evaluate_encrypted(net, keyholder, data.val_ids, data.val_labels, config)
    W01, w12 = T.release_weights(net, keyholder)
    clear = T.clear_predictions(W01, w12, data.val_ids, activation.value)
    logits = T.reference_logits(W01, w12, data.val_ids)
    return {"validation_accuracy": ev["accuracy"], "validation_loss": ev["loss"],
            "eval_reviews_per_s": ev["reviews_per_s"],
            "clear_validation_accuracy": float(np.mean(clear == data.val_labels)),
            "clear_agreement": float(np.mean(clear == ev["predictions"])),
            "validation_logit_max": float(np.max(np.abs(logits))),
            "validation_logit_p99": float(np.percentile(np.abs(logits), 99))}


def _twin(data, config, epochs, init) -> dict:
    """The same network trained identically on the plaintext twin (same data, order and initial weights)."""
    from ..tasks import sentiment as T

    terms = T.terms_for(len(data.train_ids), epochs, config.hidden, vocab=len(data.vocab),
                        validation=len(data.val_ids))
    scheme, keyholder = T.setup("plain", config.hidden, terms=terms)
    net = T.build_model(scheme, *init)
    T.train(net, keyholder, data.train_ids, data.train_labels, config, epochs=epochs)
    ev = T.evaluate_encrypted(net, keyholder, data.val_ids, data.val_labels, config) if data.val_ids else None
    return {"plain_validation_accuracy": ev["accuracy"] if ev else None}


def _report_train(summary: dict, args: argparse.Namespace) -> None:
    if not args.quiet and not args.json:
        mae = summary.get("train_mae")
        trained = "" if mae is None else f", released mean |p - y| {mae:.4f} over the last {summary['monitor_every']}"
        accuracy = summary.get("train_accuracy")
        trained += "" if accuracy is None else f", train accuracy {accuracy:.4f}"
        print(f"sentiment on {summary['scheme']}: {summary['train_reviews']} reviews x {summary['epochs']} epoch(s) "
              f"in {summary['seconds']:.1f} s ({summary['reviews_per_s']:.0f} reviews/s){trained}")
        if summary["scheme"].startswith("numpy-"):
            print(f"validation ({summary['validation_reviews']} reviews): {summary['validation_accuracy']:.4f}; "
                  f"|logit| p99 {summary['validation_logit_p99']:.2f}, max {summary['validation_logit_max']:.2f}")
        elif summary.get("validation_accuracy") is not None:
            print(f"validation ({summary['validation_reviews']} reviews): encrypted "
                  f"{summary['validation_accuracy']:.4f}, clear weights {summary['clear_validation_accuracy']:.4f} "
                  f"(agreement {summary['clear_agreement']:.4f})")
        if summary.get("plain_validation_accuracy") is not None:
            print(f"plain twin validation accuracy {summary['plain_validation_accuracy']:.4f}")
    if args.json:
        common.emit_json(summary)


# ---------------------------------------------------------------------------- evaluate
def run_evaluate(args: argparse.Namespace) -> int:
    """Handler of ``henn evaluate sentiment``; returns the exit code."""
    from ..data.imdb import DataError
    from ..keyholder import RefreshTerms
    from ..tasks import sentiment as T

    try:
        if not Path(args.model).exists():
            raise FileNotFoundError(f"cannot evaluate: the model {args.model} does not exist")
        reviews = _load(args.data, "train" if args.split == "validation" else args.split, args.quiet)
        # Each prediction is a released decryption: the flooding is sized for all of them.
        terms = RefreshTerms(refreshes=4 * len(reviews) + 16, releases=len(reviews) + 8)
        if args.keys is not None:
            net, keyholder, vocab, config, split = _load_owned(args, terms)
        else:
            net, keyholder, vocab, config = T.load_sentiment(args.model, terms=terms, allow_insecure=args.allow_insecure,
                                                             passphrase=_passphrase(args))
            split = None
        if args.split == "validation":
            if split is None:
                raise ValueError("cannot evaluate on the validation split: only a --keys model records its split")
            reviews = reviews.subset(_val_indices(reviews, split, args.data))
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


def _passphrase(args):
    from .. import lifecycle as lc

    return None if args.passphrase_file is None else lc.read_passphrase(args.passphrase_file)


def _load_owned(args, terms):
    """Owner: an encrypted sentiment model file and a key holder with the key directory's secret key."""
    model_path, keys_dir = args.model, args.keys
    from .. import lifecycle as lc
    from ..keyholder import KeyHolder

    model = lc.load_encrypted_model(model_path, allow_insecure=args.allow_insecure)
    secret = lc.load_secret(keys_dir, _passphrase(args), allow_insecure=args.allow_insecure)
    if model.bundle.key_ids != [secret.key_id]:
        raise he_core.MismatchError(f"cannot evaluate {model_path}: it is under key "
                                    f"{', '.join(model.bundle.key_ids)}, {keys_dir} holds key {secret.key_id}")
    net, vocab, config, split = _net_from(model, model_path)
    return net, KeyHolder(model.scheme, secret, terms=terms), vocab, config, split


def _val_indices(reviews, split: dict, root) -> np.ndarray:
    from ..data.imdb import split_validation

    _train_indices(reviews, split, root)  # same reviews as the owner's, or a clear error
    return split_validation(len(reviews), split["validation"], split["seed"])[1]
