"""The model's life across parties: ``--init`` (owner) and ``--model``/``--out`` (trainer).

The owner writes the initial plaintext model; a trainer trains an encrypted model file
on its part of the training split inside :func:`henn.lifecycle.public_only`, with the
owner's key service (``--keyholder``) or none.
"""
from __future__ import annotations

import argparse
import time

import he_core

from ... import lifecycle as lc
from ...data.imdb import DataError
from ...data.text import Vocabulary
from ...keyservice import RemoteKeyHolder
from ...tasks import sentiment as T
from ...tasks.sentiment import SentimentConfig, init_weights, model_from
from ...tensor import EncTensor
from .. import common
from .inputs import init_rng, load_reviews, progress_bar, train_indices

# Options a trainer cannot change: the encrypted model file fixes the network, the
# vocabulary and the split, and the trainer has no key to save, plot or validate with.
TRAINER_FIXED = ("scheme", "scheme_param", "seed", "hidden", "epochs", "validation", "split_seed", "lr",
                  "init_scale", "degree", "interval", "min_count", "polarity_cutoff", "punctuation", "twin",
                  "reference", "save", "plot")


def trainer_conflicts(args: argparse.Namespace) -> list[str]:
    """The ``--options`` given on the trainer path that it would otherwise ignore."""
    return ["--" + d.replace("_", "-") for d in TRAINER_FIXED if getattr(args, d, None) != args._defaults[d]]


def run_lifecycle(args, text, config) -> int:
    """``--init`` (owner) or ``--model``/``--out`` (trainer): the model's life across parties."""
    try:
        if args.init is not None:
            if args.model is not None or args.limit is not None or args.keyholder is not None:
                raise ValueError("cannot initialise: --init takes neither --model, --limit nor --keyholder "
                                 "(the trainers choose their reviews with --part and --limit)")
            summary = _init_plain(args, text, config)
        else:
            if args.out is None:
                raise ValueError("cannot train an encrypted model file: --out FILE is required with --model")
            conflicts = trainer_conflicts(args)
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
    reviews = load_reviews(args.data, "train", args.quiet)
    data = T.prepare(reviews, validation=args.validation, seed=args.split_seed, text=text)
    W01, w12 = init_weights(len(data.vocab), config, init_rng(args))
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
    part, parts = T.parse_part(args.part)
    with lc.public_only("trainer"):
        owner_key = lc.load_owner_key(args.owner_key) if args.owner_key else None
        model = lc.load_encrypted_model(args.model, owner_key=owner_key, allow_insecure=args.allow_insecure)
        net, vocab, config, split = net_from_model(model, args.model)
        reviews = load_reviews(args.data, "train", args.quiet)
        train_idx = train_indices(reviews, split, args.data)
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
                                     progress=progress_bar(f"sentiment/{model.scheme.name} part {args.part}", args.quiet))
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
    job = model.bundle.meta.get("job")
    return RemoteKeyHolder(address, model.scheme, model.key_id, job=job if isinstance(job, dict) else None,
                           tls_dir=tls_dir)


def net_from_model(model, path):
    """The sentiment network, vocabulary, config and split stored in an encrypted model file."""
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
