"""Mini-batch training of the sentiment network: every review at the batch's starting weights.

Per-review SGD (:func:`henn.tasks.sentiment.train` with ``batch_size=1``) lands both
updates after every review; on CKKS each lands through a masked refresh (``w12``'s
update arrives at the floor level in the gathered row's dirty packing, ``g w12`` for
``W01``'s rows one level below the table). A batch of ``B`` reviews here is **exact
mini-batch SGD**: every review of the batch sees the weights the batch started from, the
batch's gradients are *summed* (``lr`` per review, as in the per-review run), and the
updates land when the batch ends:

* ``w12``: ``sum_b lr (s(z_b) - y_b) h_b`` is summed in an encrypted accumulator. A
  scheme whose ``w12`` takes the sum as it is (``vhe``, ``plain``) lands it once; CKKS
  moves it into ``w12``'s packing once per ``K`` reviews, ``K`` being the most reviews
  whose summed bound the refresh's mask still covers at the floor level (the key
  holder's own mask sizing decides; 5 on the 20,000-review IMDB job), instead of once
  per review;
* ``W01``: each review's ``lr (s(z_b) - y_b) w12`` is made landable (CKKS: refreshed into
  the table's level, as per review) and scattered into the rows the review named when
  the batch ends.

What a batch cannot share under the masked protocol (each review's logit is one
coefficient of its own gathered product, all other coefficients garbage; a ``W01`` row
must reach the table's level on its own; the refresh cannot move values between
coefficients and slots) is in docs/performance.md, "Batched training on ckks".
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

import he_core

from ...embedding import Bags
from ...keyholder import MaskedRefresh
from ...module import Sequential
from ...tensor import EncTensor
from ...training.fit import _Watch
from ...training.guarded import GuardedScheme
from ...training.predict import bind_parameters
from ...training.refresh import RefreshPolicy
from .network import HIDDEN_BOUND, VALUE_BOUND, SentimentConfig


def fit_batched(model: Sequential, keyholder: MaskedRefresh, bags: Bags, labels: np.ndarray,
                config: SentimentConfig, batch_size: int, *, epochs: int = 1,
                monitor_every: int | None = None) -> tuple[list[dict], float, dict]:
    """Train ``model`` by summed mini-batches of ``batch_size`` reviews, in data order.

    Args:
        model: the encrypted network (updated in place; its parameters stay on the raw scheme).
        keyholder: the masked refresh (in-process or the owner's key service).
        bags: the reviews' word indices.
        labels: 1/0 per review.
        config: learning rate (per review) and polynomial sigmoid.
        batch_size: reviews per batch (the last batch of a pass may be shorter).
        epochs: passes over the reviews.
        monitor_every: reviews per released aggregate (``None``: release nothing).

    Returns:
        ``(aggregates, seconds, stats)``: the released aggregates (``samples``,
        ``value``), the training loop's wall time, and ``stats``: ``rounds_per_batch``
        (the key holder's refresh rounds during each batch, from its own counter) and
        ``w12_reviews_per_refresh`` (how many reviews' ``w12`` updates one refresh
        carries: the batch when ``w12`` takes the sum without one).

    Raises:
        ValueError: a non-positive batch size.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"cannot train: batch_size must be a positive integer, got {batch_size!r}")
    raw = keyholder.scheme
    policy = RefreshPolicy(keyholder, value_bound=VALUE_BOUND)
    guarded = GuardedScheme(raw, policy)
    loss = config.make_loss()
    watch = _Watch(keyholder, VALUE_BOUND, loss.monitor_metric, monitor_every) if monitor_every else None
    y = np.asarray(labels, dtype=np.float64).reshape(-1, 1)
    n = len(bags)
    stats: dict = {"rounds_per_batch": [], "w12_reviews_per_refresh": None}
    limits: dict = {}  # the accumulator's K, found once per run
    bind_parameters(model, guarded)
    start = time.perf_counter()
    try:
        for _ in range(epochs):
            for lo in range(0, n, batch_size):
                idx = np.arange(lo, min(lo + batch_size, n))
                before = keyholder.refresh_rounds
                limit = _batch(model, loss, bags.take(idx), y[idx], config.lr, policy, guarded, watch, limits)
                stats["rounds_per_batch"].append(keyholder.refresh_rounds - before)
                stats["w12_reviews_per_refresh"] = limit if stats["w12_reviews_per_refresh"] is None \
                    else min(limit, stats["w12_reviews_per_refresh"])
            if watch:
                watch.monitor.end_pass()
    finally:
        bind_parameters(model, raw)
    aggregates = [{"samples": r["samples"], "value": r[watch.metric]} for r in watch.monitor.records] if watch else []
    return aggregates, time.perf_counter() - start, stats


def _batch(model: Sequential, loss: Any, bags: Bags, y: np.ndarray, lr: float, policy: RefreshPolicy,
           guarded: GuardedScheme, watch: _Watch | None, limits: dict) -> int:
    """One batch: every review at the batch's starting weights, the summed updates landed at its end.

    Returns how many reviews' ``w12`` updates one refresh carried (see :class:`_Accumulator`).
    """
    embedding, linear = model[0], model[1]
    raw = guarded.inner_scheme
    w12_sum = _Accumulator(raw, policy, update_bound_for(lr, 1), len(bags), limits)
    rows: list[tuple[np.ndarray, EncTensor]] = []
    for b, bag in enumerate(bags.bags):
        h, _ = embedding.forward_train(bags.take([b]))
        z, _ = linear.forward_train(h)
        _keep_moved(model, policy)
        grad = loss.grad(z, y[b:b + 1], scale=lr)
        if watch is not None:
            factor = loss.error_factor(z.shape, lr)
            with policy.bounded(max(watch.sample_bound, loss.monitor_bound(factor, policy.value_bound, 1))):
                watch.add(loss.monitor_term(grad, y[b:b + 1], factor, watch.k), 1)
        w12_sum.add((h * grad).row_sum(), linear.weight.value)
        dh = grad * linear.weight.value
        landing = bag if bag.size else np.zeros(1, dtype=np.int64)
        update = dh if bag.size else dh - dh  # an empty review lands a zero row (requests look alike)
        rows.append((landing, _landable(raw, policy, embedding.weight.value, landing, update, lr)))
        policy.new_step()  # a review's cached refreshes are not the next review's
    # Everything computed at the batch's starting weights: now land the updates.
    with policy.bounded(update_bound_for(lr, len(bags))):
        linear.weight.value.index_add_([0], -w12_sum.total(linear.weight.value))
    table = embedding.weight.value
    with policy.bounded(update_bound_for(lr, 1)):
        for landing, update in rows:
            table.index_add_(landing, -update)
    policy.new_step()
    return min(limits.get("w12", len(bags)), len(bags))


def _landable(raw: he_core.Scheme, policy: RefreshPolicy, table: EncTensor, rows: np.ndarray, update: EncTensor,
              lr: float) -> EncTensor:
    """``update`` as the table takes it: itself, or moved into the table's packing now (one refresh)."""
    try:
        raw.check_index_add(table.ct, rows, update.ct)
        return update
    except he_core.RefreshRequired as exc:
        with policy.bounded(update_bound_for(lr, 1)):
            return EncTensor(update.scheme, policy.move(raw, exc.ciphertext, exc.target))


class _Accumulator:
    """A sum of one-row updates for a weight, moved into the weight's packing as rarely as its masks allow.

    A packing scheme takes the sum into the weight only after a masked refresh, whose
    mask must cover the sum's bound (``per_review`` times the reviews in it) at the
    sum's level. Reviews are added until one more would not fit; the sum is then moved
    and kept, already in the weight's packing, beside the next ones. A scheme whose
    weight takes the sum as it is (no refresh) just sums.
    """

    def __init__(self, raw: he_core.Scheme, policy: RefreshPolicy, per_review: float, reviews: int, limits: dict):
        self.raw, self.policy, self.per_review, self.reviews = raw, policy, per_review, reviews
        self.limits = limits  # shared by the run's batches: K is found once
        self.open: EncTensor | None = None
        self.count = 0
        self.moved: EncTensor | None = None

    def add(self, term: EncTensor, weight: EncTensor) -> None:
        if self.open is not None and self.count >= self._limit(weight):
            self._move(weight)
        self.open = term if self.open is None else self.open + term
        self.count += 1

    def total(self, weight: EncTensor) -> EncTensor:
        """The whole sum, in the form ``weight.index_add_`` takes."""
        if self.open is not None and self._target(weight) is not None:
            self._move(weight)
        parts = [t for t in (self.moved, self.open) if t is not None]
        return parts[0] if len(parts) == 1 else parts[0] + parts[1]

    def _target(self, weight: EncTensor) -> Any:
        try:
            self.raw.check_index_add(weight.ct, np.zeros(1, dtype=np.int64), self.open.ct)
        except he_core.RefreshRequired as exc:
            return exc.target
        return None

    def _limit(self, weight: EncTensor) -> int:
        """Reviews one refresh of the open sum may cover: as many as its mask still fits (all without refreshes)."""
        if "w12" not in self.limits:
            target = self._target(weight)
            self.limits["w12"] = self.reviews if target is None else self._fitting(target)
        return self.limits["w12"]

    def _fitting(self, target: Any) -> int:
        """The largest ``k`` whose bound ``k * per_review`` the mask fits at the open sum's level (at least 1)."""
        level = int(self.raw.budget(self.open.ct)["remaining"])

        def fits(k: int) -> bool:
            return self.policy.keyholder.levels_reserved(self.open.ct, target, value_bound=k * self.per_review) <= level

        low, high = 1, 1
        while fits(2 * high) and 2 * high <= 1 << 20:  # the mask's width grows with log2 k
            high *= 2
        if high == 1 and not fits(2):
            return 1
        low, high = high, 2 * high  # fits(low), not fits(high)
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if fits(mid) else (low, mid)
        return low

    def _move(self, weight: EncTensor) -> None:
        target = self._target(weight)
        if target is not None:
            with self.policy.bounded(self.count * self.per_review):
                fresh = EncTensor(self.open.scheme, self.policy.move(self.raw, self.open.ct, target))
            self.moved = fresh if self.moved is None else self.moved + fresh
            self.open, self.count = None, 0


def update_bound_for(lr: float, reviews: int) -> float:
    """The bound on a summed update's entries over ``reviews`` reviews (``network.update_bound`` for one)."""
    return reviews * 2.0 * lr * HIDDEN_BOUND


def _keep_moved(model: Sequential, policy: RefreshPolicy) -> None:
    """A weight the scheme asked to move into another packing keeps the new one (as fit does)."""
    for p in model.parameters():
        p.value = EncTensor(p.value.scheme, policy.current(p.value.ct))


__all__: Sequence[str] = ("fit_batched", "update_bound_for")
