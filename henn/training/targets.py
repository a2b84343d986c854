"""The refresh targets a training run asks for, learnt by a dry run on the job's own key (owner side).

A job's key service re-encrypts only into the layouts and levels the job allows
(:mod:`henn.jobs`): anything else is refused, so a trainer cannot use the service to
move a ciphertext of its choosing into a packing that reveals more. The owner learns
what a run needs by training a few steps on *copies* of the job's model, under the
job's scheme, key and terms, with a key holder that notes each refresh's public
signature (:meth:`he_core.Scheme.refresh_target_signature`) and releases nothing.

The same :func:`~henn.training.fit.fit` the trainer will run is used, so any model
works: whatever its layers ask of the scheme, the dry run asks the same. On a noise
budget it refreshes every operand (``record_targets``): when such a budget runs low
depends on how the noise grew over a long run, which a few steps do not show.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import he_core

from ..jobs import unique_signatures
from ..keyholder import KeyHolder, RefreshTerms
from ..module import Sequential
from .fit import fit


class RecordingKeyHolder(KeyHolder):
    """An in-process key holder that notes the public signature of every refresh it serves.

    Aggregates are refreshed (their refresh target is recorded) but never released.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.signatures: list[dict] = []

    def refresh(self, x, **kwargs):
        # A dry run on synthetic samples refreshes every operand a noise budget could ask
        # for: it spends none of the job's budgets (its masks stay sized by the job's terms).
        self.refresh_rounds = self.entries_read = 0
        return super().refresh(x, **kwargs)

    def reencrypt(self, masked, layout=None):
        self.signatures.append(self.scheme.refresh_target_signature(masked, layout))
        return super().reencrypt(masked, layout)

    def release_aggregate(self, x, count, *, value_bound=None, scale=1.0):
        """The refresh that precedes an aggregate's release, and nothing released (a dry run)."""
        self.fresh_for_owner(x, value_bound)
        return None


def learn_targets(scheme: he_core.Scheme, secret: he_core.SecretKey, terms: RefreshTerms,
                  build: Callable[[he_core.Scheme], Sequential], X: Any, y: Any, **fit_args: Any) -> list[dict]:
    """The distinct refresh signatures :func:`fit` asks for on ``(X, y)``, plus the weights' own layouts.

    Args:
        scheme: the job's scheme (its public keys installed).
        secret: the job's secret key.
        terms: the job's terms (its masks and levels: the signatures depend on them).
        build: makes a fresh copy of the job's model on ``scheme`` (the dry run updates
            weights in place; the job's model must stay untouched).
        X, y: a few samples shaped like the trainer's (synthetic ones will do).
        fit_args: the trainer's :func:`fit` arguments (``lr``, ``batch_size``, ``loss``,
            ``value_bound``, ...); the run's one aggregate is refreshed as a release would be.

    Returns:
        The signatures, each with the lowest source level seen (see :func:`henn.jobs.unique_signatures`).
    """
    holder = RecordingKeyHolder(scheme, secret, terms=dataclasses.replace(terms, min_aggregate=1))
    model = build(scheme)
    fit_args = {k: v for k, v in fit_args.items() if k not in ("monitor", "monitor_every", "keyholder")}
    # One aggregate over the whole dry run: its refresh target, once (each reads a whole ciphertext).
    fit(model, X, y, keyholder=holder, monitor=True, monitor_every=len(X), record_targets=True, **fit_args)
    # The weights themselves, in their own layouts: a budget may run low on them later in a
    # run, and the trained weights leave the trainer refreshed into them.
    own = [scheme.refresh_target_signature(p.value.ct, scheme.layout_of(p.value.ct))
           for p in build(scheme).parameters()]
    trained = [scheme.refresh_target_signature(p.value.ct, scheme.layout_of(p.value.ct)) for p in model.parameters()]
    return unique_signatures(holder.signatures + own + trained)
