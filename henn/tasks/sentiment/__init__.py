"""IMDB sentiment (the 2017 tutorial's network) as a configuration of :func:`henn.training.fit.fit`.

The network, in henn's layers:

* :class:`~henn.embedding.EmbeddingBag` ``W01`` ``(vocab, hidden)``: a review is the
  *set* of its vocabulary words and ``h = sum(W01[words])`` (no activation);
* :class:`~henn.layers.Linear` ``hidden -> 1`` without bias, its weight ``w12`` kept
  as a one-row table: the logit ``z = h . w12``;
* :class:`~henn.losses.PolyLogisticLoss` with a polynomial sigmoid ``s``: the gradient
  at the logit is ``s(z) - y``.

Training is :func:`~henn.training.fit.fit` with one review per step in data order
(the tutorial's per-review SGD). ``W01`` and ``w12`` live in the scheme's *table*
layout, where a review's gather and scatter are cheapest (for CKKS: coefficient
packing, no level spent); every operation a table cannot serve (the polynomial, an
update arriving in another packing) is moved through the key holder's masked refresh by
the one trainer, exactly as for any model.

One module per part of the task's life; every name is importable from here:

* :mod:`.network` -- :class:`SentimentConfig` (the tuned hyper-parameters), the initial
  weights, the layers, and the bounds the network declares;
* :mod:`.data` -- :func:`prepare` turns reviews into index arrays; parts of the split;
* :mod:`.job` -- keys and the job terms a run needs;
* :mod:`.training` -- :func:`train` and the trainer's public-only :func:`train_public`;
* :mod:`.evaluation` -- encrypted prediction and evaluation, outgoing weights;
* :mod:`.reference` -- the NumPy float64 reference the encrypted runs are measured against;
* :mod:`.model_file` -- the model on disk.
"""
from __future__ import annotations

from .data import Prepared, parse_part, part_slice, prepare
from .evaluation import cross_entropy, evaluate_encrypted, outgoing_weights, predict_encrypted, release_weights
from .job import (MONITOR_EVERY, REFRESHES_PER_REVIEW, TABLE_REFRESHES, learn_targets, scheme_for, setup, terms_for,
                  whole_entries)
from .model_file import load_sentiment, save_sentiment
from .network import (
    HIDDEN_BOUND,
    LOGIT_BOUND,
    STEP_DEPTH,
    VALUE_BOUND,
    SentimentConfig,
    build_model,
    init_weights,
    model_from,
    update_bound,
    weights,
)
from .reference import clear_predictions, reference_logits, train_reference
from .training import TrainResult, train, train_public

__all__ = [
    "HIDDEN_BOUND", "LOGIT_BOUND", "MONITOR_EVERY", "REFRESHES_PER_REVIEW", "STEP_DEPTH", "TABLE_REFRESHES",
    "VALUE_BOUND", "Prepared", "SentimentConfig", "TrainResult", "build_model", "clear_predictions", "cross_entropy",
    "evaluate_encrypted", "init_weights", "learn_targets", "load_sentiment", "model_from", "outgoing_weights",
    "parse_part", "part_slice", "predict_encrypted", "prepare", "reference_logits", "release_weights",
    "save_sentiment", "scheme_for", "setup", "terms_for", "train", "train_public", "train_reference", "update_bound",
    "weights", "whole_entries",
]
