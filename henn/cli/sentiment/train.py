"""``henn train sentiment`` in one process: train, validate encrypted and in the clear, twin, reference."""
from __future__ import annotations

import argparse
import time

import numpy as np

import he_core

from ...activations import sigmoid
from ...data.imdb import DataError
from ...data.text import TextConfig
from ...tasks import sentiment as T
from ...tasks.sentiment import SentimentConfig, init_weights
from .. import common
from .inputs import init_rng, load_reviews, progress_bar
from .parties import run_lifecycle


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``henn train sentiment``; returns the exit code."""
    scheme_name = args.scheme or common.default_scheme()
    try:
        text = TextConfig(min_count=args.min_count, polarity_cutoff=args.polarity_cutoff,
                          punctuation=args.punctuation)
        config = SentimentConfig(hidden=args.hidden, lr=args.lr, init_scale=args.init_scale, degree=args.degree,
                                 interval=args.interval, schedule=args.schedule, lr_end=args.lr_end)
    except ValueError as exc:  # the options' values: a usage error
        return common.usage_error(str(exc))
    if args.cluster is None and args.workers is not None:
        return common.fail("cannot use --workers without --cluster")
    if args.cluster is not None and (args.model is not None or args.init is not None or args.reference):
        return common.fail("cannot use --cluster with --model, --init or --reference: it trains single-party")
    if args.cluster is not None and args.cluster != "local":
        # Single party: the secret key lives in this process, beside the Dask client, and a
        # cluster's workers and scheduler can run code in a Dask client's process.
        return common.fail(f"cannot train on the cluster {args.cluster!r}: this command holds the secret key beside "
                           "its Dask client, so only --cluster local (its own TLS cluster) is accepted; on another "
                           "cluster, train with henn.distributed.train_on_cluster against the owner's key service")
    if args.batch_size != 1 and (args.cluster is not None or args.model is not None or args.init is not None):
        return common.usage_error("cannot use --batch-size with --cluster, --model or --init: mini-batches are for "
                                  "single-party runs (a job allows the refresh shapes of its own batch size)")
    if args.schedule != "constant" and (args.cluster is not None or args.model is not None or args.init is not None):
        return common.usage_error("cannot use --schedule with --cluster, --model or --init: a schedule spans one "
                                  "single-party run (the parts of a model file's life each start their own)")
    if args.model is not None or args.init is not None:
        return run_lifecycle(args, text, config)
    if args.keyholder is not None:
        return common.fail("cannot use --keyholder without --model: it is how a trainer of an encrypted model file "
                           "reaches the owner's key service")
    try:
        reviews = load_reviews(args.data, "train", args.quiet)
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


def _train(args, scheme_name, reviews, text, config) -> dict:
    data = T.prepare(reviews, validation=args.validation, limit=args.limit, seed=args.split_seed, text=text)
    activation = config.make_activation()
    W01, w12 = init_weights(len(data.vocab), config, init_rng(args))
    def terms(scheme):
        return T.terms_for(len(data.train_ids), args.epochs, config.hidden, vocab=len(data.vocab),
                           validation=len(data.val_ids), monitor_every=monitor_every_of(args),
                           whole_entries=T.whole_entries(scheme), batch_size=args.batch_size)

    try:
        scheme, keyholder = T.setup(scheme_name, config.hidden, terms=terms, **dict(args.scheme_param))
    except TypeError as exc:  # an unknown parameter name
        raise ValueError(f"cannot create scheme {scheme_name!r}: {exc}") from None
    net = T.build_model(scheme, W01, w12)
    distributed = None
    if args.cluster is not None:
        from ...distributed.sentiment import compare_on_cluster  # needs the distributed extra

        result, distributed = compare_on_cluster(args.cluster, args.workers, args.round_reviews, keyholder, net,
                                                 (W01, w12), data, config, epochs=args.epochs)
    else:
        result = T.train(net, keyholder, data.train_ids, data.train_labels, config, epochs=args.epochs,
                         monitor_every=monitor_every_of(args), batch_size=args.batch_size,
                         progress=progress_bar(f"sentiment/{scheme_name}", args.quiet))
    summary = _summary(scheme_name, config, data, result, activation)
    summary["monitor_every"] = monitor_every_of(args)
    summary["batch_size"] = args.batch_size
    summary["scheme_params"] = scheme.params.to_dict()
    summary["refresh_rounds_per_review"] = result.refreshes / max(1, result.reviews)
    summary.update(_validate(net, keyholder, data, config, activation))
    if distributed is not None:
        summary.update(distributed)
    if args.twin:
        summary.update(_twin(data, config, args.epochs, (W01, w12), args.batch_size))
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
    data = T.prepare(reviews, validation=args.validation, limit=args.limit, seed=args.split_seed, text=text)
    if not data.val_ids:
        raise ValueError("cannot run the reference: --validation must hold out at least one review")
    activation = sigmoid if args.reference == "sigmoid" else config.make_activation().value
    start = time.perf_counter()
    result = T.train_reference(data, config, epochs=args.epochs, activation=activation, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    reviews_done = args.epochs * len(data.train_ids)
    return {"task": "sentiment", "scheme": f"numpy-{args.reference}", "epochs": args.epochs, "hidden": config.hidden,
            "lr": config.lr, "schedule": config.schedule, "lr_end": config.lr_end,
            "batch_size": args.batch_size, "vocab_size": len(data.vocab),
            "train_reviews": len(data.train_ids),
            "validation_reviews": len(data.val_ids), "seconds": seconds, "reviews_per_s": reviews_done / seconds,
            "final_loss": None, "train_accuracy": float(result["train_accuracy"]),
            "validation_accuracy": result["validation_accuracy"],
            "clear_validation_accuracy": result["validation_accuracy"],
            "validation_logit_max": result["logit_range"], "validation_logit_p99": result["logit_p99"]}


def monitor_every_of(args) -> int:
    """Reviews per released aggregate: ``--monitor-every`` or the task's default."""
    return args.monitor_every or T.MONITOR_EVERY


def _summary(scheme_name, config, data, result, activation) -> dict:
    return {
        "task": "sentiment", "scheme": scheme_name, "epochs": result.reviews // max(
            1, len(data.train_ids)), "hidden": config.hidden, "lr": config.lr, "schedule": config.schedule,
        "lr_end": config.lr_end, "init_scale": config.init_scale, "activation": activation.name,
        "degree": activation.degree, "interval": activation.interval,
        "activation_max_error": activation.max_error, "vocab_size": len(data.vocab),
        "min_count": data.vocab.config.min_count, "polarity_cutoff": data.vocab.config.polarity_cutoff,
        "train_reviews": len(data.train_ids), "validation_reviews": len(data.val_ids),
        "seconds": result.seconds, "reviews_per_s": result.reviews_per_s, "train_mae": result.final_mae,
        "refreshes": result.refreshes,
        "history": [{k: r[k] for k in ("reviews", "mae")} for r in result.history],
    }


def _validate(net, keyholder, data, config, activation) -> dict:
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


def _twin(data, config, epochs, init, batch_size: int = 1) -> dict:
    """The same network trained identically on the plaintext twin (same data, order and initial weights)."""
    terms = T.terms_for(len(data.train_ids), epochs, config.hidden, vocab=len(data.vocab),
                        validation=len(data.val_ids))
    scheme, keyholder = T.setup("plain", config.hidden, terms=terms)
    net = T.build_model(scheme, *init)
    T.train(net, keyholder, data.train_ids, data.train_labels, config, epochs=epochs, batch_size=batch_size)
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
        if summary.get("cluster") is not None:
            one = summary["one_process"]
            print(f"cluster: {summary['cluster']['workers']} workers, {summary['cluster']['rounds']} rounds; one "
                  f"process, batch {one['batch']}: validation {one.get('validation_accuracy')}, "
                  f"{one['seconds']:.1f} s; speed-up {summary['speedup']:.2f}")
        if summary.get("plain_validation_accuracy") is not None:
            print(f"plain twin validation accuracy {summary['plain_validation_accuracy']:.4f}")
    if args.json:
        common.emit_json(summary)
