"""The argument parsers of ``henn train sentiment`` and ``henn evaluate sentiment``."""
from __future__ import annotations

import argparse

from ...data.text import TextConfig
from ...schedules import SCHEDULES
from ...tasks.sentiment import SentimentConfig
from .. import common
from .evaluate import run_evaluate
from .inputs import add_data_option
from .parties import TRAINER_FIXED
from .train import run_train


def add_train_parser(train_subparsers) -> argparse.ArgumentParser:
    """Register ``henn train sentiment``."""
    cfg, text = SentimentConfig(), TextConfig()
    parser = train_subparsers.add_parser(
        "sentiment", help="the 2017 IMDB sentiment network with encrypted weights",
        description="Train Trask's IMDB sentiment network (bag of words, hidden layer without activation, "
                    "polynomial sigmoid output) with encrypted weights, one review per SGD step.")
    add_data_option(parser)
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
    parser.add_argument("--schedule", choices=SCHEDULES, default=cfg.schedule,
                        help="learning-rate schedule over the run: constant (default), or linear from --lr falling "
                             "towards --lr-end x --lr (single-party runs; see docs/performance.md for batch 64)")
    parser.add_argument("--lr-end", type=common.positive_float, default=cfg.lr_end,
                        help=f"with --schedule linear: the fraction of --lr it falls towards, in (0, 1] "
                             f"(default {cfg.lr_end})")
    parser.add_argument("--batch-size", type=common.positive_int, default=1,
                        help="reviews per step (default 1, the tutorial's per-review SGD); more is mini-batch SGD with "
                             "the updates summed (lr per review): on vhe and plain a batch is gathered and landed at "
                             "once, one landing refresh per batch. Single-party runs (no --model, --cluster)")
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
    dist = parser.add_argument_group(
        "data-parallel training", "train on a Dask cluster's workers in synchronous FedAvg rounds (single party: "
        "the key service runs beside this process), and one process with the same effective batch for comparison")
    dist.add_argument("--cluster", metavar="SPEC", default=None,
                      help="'local' (a LocalCluster on loopback) or a scheduler address (tls://HOST:PORT)")
    dist.add_argument("--workers", type=common.positive_int, default=None,
                      help="workers of a local cluster (default: one per core)")
    dist.add_argument("--round-reviews", type=common.positive_int, default=250,
                      help="reviews each worker trains per round (default 250)")
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
    parser.set_defaults(func=run_train, _defaults={d: parser.get_default(d) for d in TRAINER_FIXED})
    return parser


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
    add_data_option(parser)
    parser.add_argument("--split", choices=("train", "test", "validation"), default="test",
                        help="which split (default test); validation = the reviews a --keys model's owner held out")
    parser.add_argument("--limit", type=common.positive_int, default=None, help="evaluate only the first N reviews")
    parser.add_argument("--json", action="store_true", help="print one JSON summary object as the last stdout line")
    parser.add_argument("--quiet", action="store_true", help="no human-readable summary")
    parser.set_defaults(func=run_evaluate)
    return parser
