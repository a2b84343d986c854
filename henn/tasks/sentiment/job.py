"""The sentiment job: keys, the refresh and release budgets a run needs, and the refreshes it may ask for.

The owner sizes a job's :class:`~henn.keyholder.RefreshTerms` from the run (reviews,
epochs, vocabulary) before training starts, and learns the refresh signatures the
network will ask for from a dry run of a few steps.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

import he_core

from ...embedding import Bags
from ...keyholder import KeyHolder, RefreshTerms
from ...losses import PolyLogisticLoss
from ...module import Sequential
from ...tensor import EncTensor
from ...training import targets
from .network import STEP_DEPTH, VALUE_BOUND, SentimentConfig, model_from, update_bound

#: Refreshes per review at most: the logit into the polynomial's layout, and the two
#: updates into their tables' packing (CKKS; ``vhe`` refreshes when noise runs low).
REFRESHES_PER_REVIEW = 3
#: Reviews per released aggregate by default (the owner never sees fewer at once).
MONITOR_EVERY = 500
#: Whole-table refreshes a run may make (a scheme with a noise budget refreshes W01 now and
#: then; a packing scheme never does): they size the masks' job-wide entry count.
TABLE_REFRESHES = 64


def terms_for(reviews: int, epochs: int, hidden: int, *, vocab: int = 16384, validation: int = 0,
              monitor_every: int = MONITOR_EVERY, statistical_bits: int = 30,
              whole_entries: int = 1, batch_size: int = 1) -> RefreshTerms:
    """The job terms a training run of this size needs (refresh and release budgets, with 10% slack).

    Args:
        reviews: training reviews per epoch.
        epochs: passes over them.
        hidden: width of layer 1 (the entries a refresh of a row reads).
        vocab: rows of ``W01`` (the entries a refresh of the whole table reads).
        validation: reviews whose encrypted predictions will be released one by one
            (on a packing scheme each logit is moved into the polynomial's layout).
        monitor_every: reviews per released aggregate.
        statistical_bits: lambda for masks and flooding.
        whole_entries: entries a refresh of one whole ciphertext reads (an aggregate is
            refreshed before its release): :func:`whole_entries` of the scheme.
        batch_size: reviews per step: a mini-batch's landing refresh reads ``batch_size``
            rows at once.
    """
    steps = max(reviews * epochs, 1)
    row = 1 << max(hidden - 1, 7).bit_length()  # a table row's stride: hidden rounded up to a power of two, >= 8
    aggregates = steps // monitor_every + epochs
    refreshes = int(1.1 * (REFRESHES_PER_REVIEW * steps + validation + aggregates)) + TABLE_REFRESHES + 16
    entries = (REFRESHES_PER_REVIEW * steps * row + validation + aggregates * whole_entries
               + TABLE_REFRESHES * vocab * row)
    releases = int(1.1 * (aggregates + validation)) + 4  # + the two weight tensors, twice
    return RefreshTerms(statistical_bits=statistical_bits, refreshes=refreshes,
                        entries_per_refresh=max(vocab * row, whole_entries, batch_size * row), entries=int(1.1 * entries),
                        releases=releases, min_aggregate=min(monitor_every, MONITOR_EVERY))


def whole_entries(scheme: he_core.Scheme) -> int:
    """Masked entries a refresh of one whole ciphertext (one value, its own layout) reads under ``scheme``."""
    return max(1, int(scheme.refresh_plan(scheme.encrypt(np.zeros((1, 1)))).n_read))


def setup(scheme_name: str, hidden: int, *,
          terms: RefreshTerms | Callable[[he_core.Scheme], RefreshTerms] | None = None, rng: Any = None,
          **params: Any) -> tuple[he_core.Scheme, KeyHolder]:
    """Create the scheme, generate keys for sizes ``(1, hidden)``, give the secret to a key holder.

    Without ``params`` a leveled scheme gets its cheapest set with :data:`STEP_DEPTH`
    levels between refreshes (:meth:`he_core.Scheme.params_for_depth`); other schemes
    their defaults. ``terms`` may be a function of the keyed scheme (e.g. to pass
    :func:`whole_entries`).
    """
    scheme = scheme_for(scheme_name, **params)
    secret, _public = scheme.keygen(he_core.KeyRequirements(sizes=(1, hidden)), rng=rng)
    return scheme, KeyHolder(scheme, secret, terms=terms(scheme) if callable(terms) else terms)


def scheme_for(scheme_name: str, **params: Any) -> he_core.Scheme:
    """The scheme the task trains on: ``params`` if given, else the cheapest set with :data:`STEP_DEPTH`
    levels between refreshes for a leveled scheme (:meth:`he_core.Scheme.params_for_depth`), else its defaults."""
    if params:
        return he_core.get_scheme(scheme_name, **params)
    chosen = he_core.scheme_class(scheme_name).params_for_depth(STEP_DEPTH)
    return he_core.get_scheme(scheme_name, chosen) if chosen is not None else he_core.get_scheme(scheme_name)


def learn_targets(scheme: he_core.Scheme, secret: he_core.SecretKey, W01: he_core.Ciphertext,
                  w12: he_core.Ciphertext, config: SentimentConfig, terms: RefreshTerms,
                  reviews: int = 3, *, batch_size: int = 1) -> list[dict]:
    """The refresh signatures training this network asks for: a dry run of a few steps (owner side).

    A job allows exactly these (:func:`henn.training.targets.learn_targets`): the job's
    scheme, key and weights (copied), a few synthetic reviews, the trainer's settings.
    A refresh's signature names its shape, so a job for mini-batches (``batch_size``
    reviews a step, gradients summed as :func:`~henn.tasks.sentiment.train` sums them on a
    default-layout table) allows batches of exactly that size: train a multiple of it.
    """
    vocab = W01.shape[0]

    def build(s: he_core.Scheme) -> Sequential:
        return model_from(EncTensor(s, s.copy(W01)), EncTensor(s, s.copy(w12)))

    if not scheme.in_default_layout(W01):
        # A table in its own packing trains mini-batches review by review (fit_batched): the requests
        # are shaped as in per-review training.
        batch_size = 1
    reviews = -(-max(reviews, 2 * batch_size) // batch_size) * batch_size  # whole batches only
    X = Bags([np.arange(min(3, vocab), dtype=np.int64)] * reviews, vocab)
    y = np.arange(reviews, dtype=np.float64) % 2
    loss = config.make_loss() if batch_size == 1 else PolyLogisticLoss(config.make_activation(), reduction="sum")
    return targets.learn_targets(scheme, secret, terms, build, X, y, lr=config.lr_schedule(), batch_size=batch_size,
                                 loss=loss, shuffle=False, value_bound=VALUE_BOUND, update_bound=update_bound(config))
