"""Training the sentiment network: :func:`~henn.training.fit.fit` with one review per step, in data order.

:func:`train` is the tutorial's per-review SGD on ciphertexts; :func:`train_public` is
the trainer's side of the model's life, with public material only (a key service for
refreshes, or none until a budget runs out).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

import he_core

from ...embedding import Bags
from ...keyholder import MaskedRefresh
from ...losses import PolyLogisticLoss
from ...module import Sequential
from ...training.fit import fit
from .batched import fit_batched
from .job import MONITOR_EVERY
from .network import VALUE_BOUND, SentimentConfig, update_bound


@dataclasses.dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        history: one record per released aggregate: ``reviews`` seen and ``mae``, the
            mean of ``(1 - 2y)(p - y)`` over the aggregate, which is the mean absolute
            error |p - y| while the polynomial's ``p`` stays in [0, 1] (``None`` when only
            the owner sees it).
        seconds: wall time of the training loop (key generation and data preparation excluded).
        reviews: number of training steps run.
        refreshes: refresh rounds made.
    """

    history: list[dict]
    seconds: float
    reviews: int
    refreshes: int = 0

    @property
    def reviews_per_s(self) -> float:
        return self.reviews / self.seconds if self.seconds > 0 else float("inf")

    @property
    def final_mae(self) -> float | None:
        values = [r["mae"] for r in self.history if r.get("mae") is not None]
        return values[-1] if values else None


def train(model: Sequential, keyholder: MaskedRefresh | None, ids: Sequence[np.ndarray], labels: np.ndarray,
          config: SentimentConfig, *, epochs: int = 1, monitor_every: int | None = MONITOR_EVERY,
          progress: bool | str | dict = False, batch_size: int = 1) -> TrainResult:
    """SGD on ciphertexts in data order: per review (:func:`~henn.training.fit.fit`), or by mini-batches.

    Args:
        model: the encrypted network (:func:`build_model`; updated in place).
        keyholder: the masked refresh and aggregate release (in-process, or the owner's
            key service); ``None`` trains with public material only until a budget runs
            out (see :func:`~henn.training.fit.fit`).
        ids: each review's word indices.
        labels: 1/0 per review.
        config: the learning rate (and its schedule) and the polynomial sigmoid.
        epochs: passes over the reviews (same order each pass).
        monitor_every: reviews per released aggregate (``None``: release nothing).
        progress: show a progress bar (see :func:`~henn.training.fit.fit`; not for CKKS's mini-batches).
        batch_size: reviews per step. 1 is the tutorial's per-review SGD through
            :func:`~henn.training.fit.fit`. More is mini-batch SGD (every review of a
            batch at the batch's starting weights, the updates summed, ``lr`` per review;
            needs a key holder): through ``fit`` when the table is in the scheme's default
            layout (``vhe``, ``plain``: a batch's rows are gathered and landed at once),
            else through :func:`.batched.fit_batched`, which moves each weight's summed
            update as rarely as the refresh masks allow (CKKS's coefficient-packed table).
    """
    if len(labels) != len(ids):
        raise ValueError(f"cannot train: {len(ids)} reviews but {len(labels)} labels")
    X = Bags(ids, model[0].in_features)
    rounds = keyholder.refresh_rounds if keyholder is not None else 0
    if batch_size != 1:
        if keyholder is None:
            raise ValueError("cannot train by mini-batches without a key holder (batch_size=1 trains without one)")
        table = model[0].weight.value
        if table.scheme.in_default_layout(table.ct):
            # The table takes a whole batch's rows at once: the engine's step, gradients summed.
            return _fit_summed(model, keyholder, X, labels, config, batch_size, epochs, monitor_every, progress)
        if config.schedule != "constant":
            raise ValueError(f"cannot train by mini-batches with a {config.schedule!r} learning-rate schedule on a "
                             "table in its own packing (CKKS's coefficient-packed table): its updates are moved "
                             "at a scale fixed by lr; use the constant schedule")
        aggregates, seconds, _ = fit_batched(model, keyholder, X, labels, config, batch_size, epochs=epochs,
                                          monitor_every=monitor_every)
        records = [{"reviews": a["samples"], "mae": a["value"]} for a in aggregates]
        return TrainResult(records, seconds, epochs * len(ids), keyholder.refresh_rounds - rounds)
    history = fit(model, X, np.asarray(labels, dtype=np.float64), keyholder=keyholder,
                  lr=config.lr_schedule(), epochs=epochs, batch_size=1, loss=config.make_loss(), shuffle=False,
                  value_bound=VALUE_BOUND,
                  update_bound=update_bound(config), monitor=monitor_every is not None,
                  monitor_every=monitor_every, progress=progress)
    records = [{"reviews": a["samples"], "mae": a["value"]} for a in history.aggregates]
    refreshes = keyholder.refresh_rounds - rounds if keyholder is not None else 0
    return TrainResult(records, history.seconds, epochs * len(ids), refreshes)


def _fit_summed(model: Sequential, keyholder: MaskedRefresh, X: Bags, labels: np.ndarray, config: SentimentConfig,
                batch_size: int, epochs: int, monitor_every: int | None, progress: bool | str | dict) -> TrainResult:
    """:func:`~henn.training.fit.fit` by mini-batches with the gradients summed (``lr`` per review, as
    :func:`.batched.fit_batched` and the NumPy reference): one gather, one scatter and one landing
    refresh per batch."""
    rounds = keyholder.refresh_rounds
    loss = PolyLogisticLoss(config.make_activation(), reduction="sum")
    history = fit(model, X, np.asarray(labels, dtype=np.float64), keyholder=keyholder,
                  lr=config.lr_schedule(), epochs=epochs, batch_size=batch_size, loss=loss, shuffle=False,
                  value_bound=VALUE_BOUND,
                  update_bound=update_bound(config), monitor=monitor_every is not None, monitor_every=monitor_every,
                  progress=progress)
    records = [{"reviews": a["samples"], "mae": a["value"]} for a in history.aggregates]
    return TrainResult(records, history.seconds, epochs * len(X), keyholder.refresh_rounds - rounds)


def train_public(model: Sequential, ids: Sequence[np.ndarray], labels: np.ndarray, config: SentimentConfig, *,
                 keyholder: MaskedRefresh | None = None, stop_when_exhausted: bool = False,
                 monitor_every: int | None = MONITOR_EVERY, progress: bool | str | dict = False) -> int:
    """The trainer's side: train with public material only, through the owner's key service or none.

    Without ``keyholder`` nothing is refreshed or released, and a scheme with a budget
    stops when it runs out (the reviews before it are trained and no weight holds half a
    step). With ``keyholder`` (:class:`henn.keyservice.RemoteKeyHolder`) the trainer
    refreshes as in :func:`train`, and the aggregates go to the owner's log only.

    Args:
        stop_when_exhausted: return early instead of raising when the budget runs out
            (the largest chunk one budget allows; the owner refreshes, training resumes).

    Returns:
        The number of reviews trained: all of them, or those before the budget ran out.

    Raises:
        NoiseBudgetExhausted / LevelExhaustedError / RefreshRequired: the budget ran out
            (or the scheme needs a key holder for every review); the message says after
            how many reviews.
    """
    try:
        train(model, keyholder, ids, labels, config, monitor_every=monitor_every if keyholder is not None else None,
              progress=progress)
    except (he_core.NoiseBudgetExhausted, he_core.LevelExhaustedError, he_core.RefreshRequired) as exc:
        done = int(getattr(exc, "samples_done", 0))
        if keyholder is not None:
            raise
        if stop_when_exhausted and done:
            return done
        raise type(exc)(*_exhausted_args(exc, done, len(ids))) from None
    return len(ids)


def _exhausted_args(exc: Exception, done: int, total: int) -> tuple:
    hint = ("train with the owner's key service (owner: henn serve-keys; trainer: --keyholder ADDRESS)")
    if isinstance(exc, he_core.RefreshRequired):
        return (f"cannot train review {done + 1} of {total} without a key holder: {exc}. The scheme needs the key "
                f"holder's masked re-encryption for every review; {hint}", exc.ciphertext, exc.target)
    # The budget is shared by every trainer since the owner last encrypted, so the hint
    # is the owner's refresh round trip rather than a per-trainer limit.
    return (f"cannot train review {done + 1} of {total} without a key holder: the weights' noise budget ran out "
            f"after {done} reviews; {exc}. Refreshing needs the key holder: {hint}, or train fewer reviews "
            "(--limit), let the owner refresh the model (henn decrypt-model, henn encrypt-model) and resume "
            "(--start; --until-exhausted trains as far as the budget goes)",)
