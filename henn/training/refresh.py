"""When to refresh: a scheme-agnostic policy driven by ``scheme.budget(ct)``.

Every scheme reports what a ciphertext has left before it stops decrypting
correctly (:meth:`he_core.Scheme.budget`): CKKS counts *levels* (rescalings left),
``vhe`` counts *bits of noise headroom*, the plaintext twin is *unbounded*. A fixed
"refresh every N steps" schedule is either wasteful (``vhe`` after a short step) or
fatal (CKKS runs out of levels in the middle of one forward pass). Instead:

* :class:`RefreshPolicy` says, for a ciphertext and the multiplicative *depth* of the
  operation about to consume it, whether the budget is too low; if so it sends the
  ciphertext through the key holder's masked refresh
  (:meth:`henn.keyholder.KeyHolder.refresh` — the key holder only sees masked
  values);
* :class:`~henn.training.guarded.GuardedScheme` is a view of a scheme that asks the policy about every
  operand before each operation, so model code stays identical across schemes: a
  model built on the guarded view does not meet ``LevelExhaustedError`` or
  ``NoiseBudgetExhausted``. Should an estimate below ever be too optimistic (the
  scheme refuses before computing anything), the operands are refreshed and the
  operation retried once; such rounds are counted apart (``retry_refreshes``) so a
  wrong estimate shows in the training output instead of hiding.

What an operation needs, per budget kind:

* ``"levels"``: ``depth`` levels (a product rescales once; a polynomial of degree
  ``d`` needs ``ceil(log2 d) + 1`` by the interface's contract);
* ``"noise"``: the bits the scheme forecasts the operation spends on these operands
  (:attr:`he_core.OpCost.noise_bits`; vhe works them out from the values' and noises'
  bounds), or else ``depth * noise_bits_per_level``; plus ``noise_floor_bits``, plus
  ``log2(rows)`` for a row sum (a sum of ``k`` bounds grows by ``log2 k`` bits);
* ``"unbounded"``: nothing, never refresh.

What each operation of the guarded view charges (broadcasts, row operations, a
polynomial's depth) is in :mod:`henn.training.guarded`.

A need above what a fresh ciphertext has is capped at the fresh budget (refreshing
cannot do better; the operation then runs on a fresh operand). The fresh budget is
learnt from the first refresh of each kind.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, Sequence

from he_core import Capability, Ciphertext, Scheme

from ..keyholder import MaskedRefresh

#: Budget kinds the policy understands.
KINDS = ("levels", "noise", "unbounded")
#: Levels a refresh mask can need at most (three primes of the chain: 150+ bits).
MAX_RESERVE = 3
#: Bits below a fresh ciphertext's headroom that an update landing in place may sit
#: before it is refreshed (:meth:`RefreshPolicy.settle_landing`).
LANDING_SLACK_BITS = 4.0


class RefreshPolicy:
    """Refresh a ciphertext through the key holder exactly when its budget is too low.

    Args:
        keyholder: the party that performs the masked re-encryption.
        noise_bits_per_level: bits of noise headroom one ciphertext product may cost
            (``"noise"`` budgets; the products in henn's models multiply values of
            magnitude below 2^4, which costs at most about 5 bits in ``vhe``).
        noise_floor_bits: headroom kept in reserve before any operation (an addition
            costs at most one bit).
        value_bound: a bound on every refreshed value that the model vouches for (e.g.
            its weights' and pre-activations' range). Refresh masks are sized from it
            instead of the scheme's analytic bound, which compounds over a computation,
            and the levels kept in reserve for masking stay the same from step to step.
        every_noise_operand: refresh every operand of a noise budget, whatever it has
            left. For the owner's dry run that learns a job's refresh targets
            (:mod:`henn.training.targets`): when a noise budget runs low depends on how
            the noise grew over a long run, which a few steps do not show, so the dry run
            asks for every target such a run could.

    Attributes:
        op_refreshes: refreshes made because an operation needed more budget.
        retry_refreshes: refreshes made after the scheme refused an operation the
            budget estimate allowed (should stay 0; counted so it shows if not).
        layout_refreshes: moves into the layout an operation needs.
        landing_refreshes: refreshes of updates about to land in place in a table
            (:meth:`settle_landing`).
        checks: how many budget checks were made.

    Raises:
        ValueError: negative or non-finite bit counts.
    """

    def __init__(self, keyholder: MaskedRefresh, *, noise_bits_per_level: float = 8.0, noise_floor_bits: float = 2.0,
                 value_bound: float | None = None, every_noise_operand: bool = False):
        for name, value in (("noise_bits_per_level", noise_bits_per_level), ("noise_floor_bits", noise_floor_bits)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"cannot build RefreshPolicy: {name} must be finite and >= 0, got {value}")
        if value_bound is not None and not (value_bound > 0 and math.isfinite(value_bound)):
            raise ValueError(f"cannot build RefreshPolicy: value_bound must be positive and finite, got {value_bound}")
        self.keyholder = keyholder
        self.value_bound = value_bound
        self.every_noise_operand = bool(every_noise_operand)
        self.noise_bits_per_level = float(noise_bits_per_level)
        self.noise_floor_bits = float(noise_floor_bits)
        self.op_refreshes = 0
        self.retry_refreshes = 0
        self.layout_refreshes = 0
        self.landing_refreshes = 0
        self.checks = 0
        self._fresh: dict[str, float] = {}
        # id(original) -> (original, refreshed): a cached activation used again in
        # backward is refreshed once, not twice. Holding the original keeps its id unique.
        self._cache: dict[int, tuple[Ciphertext, Ciphertext]] = {}
        # id(ciphertext) -> (ciphertext, bound) for bounds the model declared (GuardedScheme.declare_bound).
        self._declared: dict[int, tuple[Ciphertext, float]] = {}

    # ------------------------------------------------------------------ the decision
    def required(self, budget: dict, depth: int, extra_bits: float = 0.0, masks: int = 0, reserve: int = 0,
                 noise_bits: float | None = None) -> float:
        """The budget an operation of multiplicative ``depth`` needs (in the budget's own unit).

        Args:
            budget: what ``scheme.budget(ct)`` returned.
            depth: ciphertext or plaintext products on the path through this operand.
            extra_bits: additional noise bits (row sums of many rows).
            masks: broadcast masks the operation applies (one level each).
            reserve: levels that must remain afterwards so the result can still be
                masked for a refresh (:meth:`henn.keyholder.MaskedRefresh.levels_reserved`).
            noise_bits: the scheme's own forecast of the noise bits the operation spends
                (:attr:`he_core.OpCost.noise_bits`); without one a noise budget is
                charged ``noise_bits_per_level`` per level of ``depth``.

        Raises:
            ValueError: an unknown budget kind.
        """
        kind = budget.get("kind")
        if kind == "unbounded":
            return -math.inf
        if kind == "levels":
            need = float(depth + masks + reserve)
        elif kind == "noise":
            # A forecast that cannot be one (NaN, negative: a broken plug-in) is not trusted: per-level charge.
            trusted = noise_bits is not None and math.isfinite(noise_bits) and noise_bits >= 0
            spent = noise_bits if trusted else depth * self.noise_bits_per_level
            need = spent + self.noise_floor_bits + extra_bits
        else:
            raise ValueError(f"cannot decide on a refresh: unknown budget kind {kind!r} (known: {KINDS})")
        return min(need, self._fresh.get(kind, math.inf))

    def needs_refresh(self, budget: dict, depth: int, extra_bits: float = 0.0, masks: int = 0,
                      reserve: int = 0, noise_bits: float | None = None) -> bool:
        """Whether a ciphertext with this budget must be refreshed before an operation of ``depth``."""
        return float(budget["remaining"]) < self.required(budget, depth, extra_bits, masks, reserve, noise_bits)

    def ensure(self, scheme: Scheme, ct: Ciphertext, depth: int, extra_bits: float = 0.0,
               masks: int = 0, noise_bits: float | None = None) -> Ciphertext:
        """``ct`` itself if its budget suffices for ``depth``, else a refreshed copy.

        Args:
            scheme: the (unguarded) scheme ``ct`` belongs to.
            ct: the operand about to be consumed.
            depth: multiplicative depth of the operation.
            extra_bits: additional noise bits the operation needs (row sums).
            masks: broadcast masks the operation applies.
            noise_bits: the scheme's forecast of the noise bits spent (see :meth:`required`).
        """
        self.checks += 1
        ct = self.current(ct)
        budget = scheme.budget(ct)
        reserve = 0
        if budget.get("kind") == "levels" and budget["remaining"] <= depth + masks + MAX_RESERVE:
            # Near the floor only: the reserve needs a refresh plan, which is not free.
            reserve = self.keyholder.levels_reserved(ct, value_bound=self.bound_for(ct))
        everything = self.every_noise_operand and budget.get("kind") == "noise"
        if not everything and not self.needs_refresh(budget, depth, extra_bits, masks, reserve, noise_bits):
            return ct
        self.op_refreshes += 1
        return self._refresh(scheme, ct)

    def _refresh(self, scheme: Scheme, ct: Ciphertext) -> Ciphertext:
        fresh = self.keyholder.refresh(ct, value_bound=self.bound_for(ct))
        budget = scheme.budget(fresh)
        kind = budget["kind"]
        self._fresh[kind] = max(self._fresh.get(kind, -math.inf), float(budget["remaining"]))
        self._cache[id(ct)] = (ct, fresh)
        return fresh

    def settle_landing(self, scheme: Scheme, table: Ciphertext, ct: Ciphertext) -> Ciphertext:
        """``ct``, an update about to land in some rows of ``table``, refreshed unless its noise is near fresh.

        A table is updated in place, a few rows at a time, and refreshing it would
        re-encrypt (and show the key holder) every row, so every landing update's noise
        stays in it for the rest of the run, and every later gather sums it. A product's
        own key switch leaves far more noise than a fresh encryption has, so the update
        is refreshed first (one round of its few entries) unless it is within
        :data:`LANDING_SLACK_BITS` of fresh: the table's noise then grows by about a fresh
        ciphertext's per landing, and its headroom lasts the run. An update covering as
        many rows as its target (a one-row weight) lands as it is: that weight is cheap
        to refresh whole when it runs low. Only a noise budget compounds this way: for a
        levels budget (or unbounded) ``ct`` is returned as it is.
        """
        if table.rows <= ct.rows:
            return ct
        budget = scheme.budget(ct)
        if budget.get("kind") != "noise":
            return ct
        fresh = self._fresh.get("noise")
        if fresh is not None and float(budget["remaining"]) >= fresh - LANDING_SLACK_BITS:
            return ct
        self.landing_refreshes += 1
        return self._refresh(scheme, ct)

    def note_bound(self, ct: Ciphertext, bound: float) -> None:
        """Remember a bound the model declared on ``ct`` (a public constant of the model, not of the data)."""
        self._declared[id(ct)] = (ct, float(bound))

    def bound_for(self, ct: Ciphertext) -> float | None:
        """The bound a refresh of ``ct`` is masked for: one the model declared on ``ct``, else the policy's.

        A declared bound replaces the policy's either way: it is the model's public
        statement about that very value (a hidden sum may exceed the weights' bound).
        """
        declared = self._declared.get(id(ct))
        return self.value_bound if declared is None or declared[0] is not ct else declared[1]

    def current(self, ct: Ciphertext) -> Ciphertext:
        """The refreshed (or moved) copy of ``ct`` made in this step, or ``ct`` itself."""
        cached = self._cache.get(id(ct))
        return cached[1] if cached is not None and cached[0] is ct else ct

    def move(self, scheme: Scheme, ct: Ciphertext, target: Any) -> Ciphertext:
        """``ct`` re-encrypted into the layout a :class:`he_core.RefreshRequired` named.

        Cached like any refresh, so a weight moved once serves the rest of the step and,
        through its update, keeps the new layout from then on.
        """
        self.layout_refreshes += 1
        fresh = self.keyholder.refresh(ct, layout=target, value_bound=self.bound_for(ct))
        self._cache[id(ct)] = (ct, fresh)
        return fresh

    def retry(self, scheme: Scheme, operands: Sequence[Ciphertext]) -> list[Ciphertext]:
        """Refresh every operand after the scheme refused an operation (the estimate was too optimistic)."""
        self.retry_refreshes += len(operands)
        return [self._refresh(scheme, ct) for ct in operands]

    def below_floor(self, scheme: Scheme, result: Any) -> bool:
        """Whether an operation's result landed below the level where it could still be masked.

        Operations whose depth the policy underestimates (a packing scheme's inner
        product also spends levels on rotations and masks) are caught here, so no
        ciphertext is ever left that cannot be refreshed. Only a scheme declaring
        :attr:`~he_core.Capability.LEVELS` has such a floor (its budgets count levels).
        """
        if not scheme.supports(Capability.LEVELS) or not isinstance(result, Ciphertext):
            return False
        if not scheme.in_default_layout(result):
            return False  # a scheme-specific packing is moved, never refreshed in place
        budget = scheme.budget(result)
        if budget.get("kind") != "levels" or budget["remaining"] > MAX_RESERVE:
            return False
        return budget["remaining"] < self.keyholder.levels_reserved(result, value_bound=self.bound_for(result))

    def new_step(self) -> None:
        """Forget cached refreshes and declared bounds (call at every step boundary so memory stays bounded)."""
        self._cache.clear()
        self._declared.clear()

    @contextlib.contextmanager
    def bounded(self, value_bound: float) -> Iterator[None]:
        """Within the block, size masks and reserves for values below ``value_bound``.

        For work whose values the caller bounds more tightly than the model's (a monitored
        error over ``k`` samples): a result that a refresh with the model's bound could
        no longer mask may still be refreshed with its own, so no early refresh is made.
        """
        if not (value_bound > 0 and math.isfinite(value_bound)):
            raise ValueError(f"cannot bound the refresh policy: value_bound must be positive, got {value_bound}")
        saved = self.value_bound
        self.value_bound = value_bound
        try:
            yield
        finally:
            self.value_bound = saved

    def state(self) -> dict:
        """What the policy has learnt (the fresh budget of each kind), JSON-ready for a checkpoint."""
        return {"fresh": dict(self._fresh)}

    def load_state(self, state: dict) -> None:
        """Restore :meth:`state`; unknown kinds and non-finite values are refused.

        Raises:
            ValueError: a malformed state.
        """
        fresh = state.get("fresh", {})
        if not isinstance(fresh, dict) or not all(k in KINDS and isinstance(v, (int, float)) and math.isfinite(v)
                                                  for k, v in fresh.items()):
            raise ValueError(f"cannot restore the refresh policy: bad fresh budgets {fresh!r}")
        self._fresh = {k: float(v) for k, v in fresh.items()}

    def counters(self) -> dict[str, int]:
        """The policy's counters as a JSON-ready dict."""
        return {"op_refreshes": self.op_refreshes, "retry_refreshes": self.retry_refreshes,
                "layout_refreshes": self.layout_refreshes, "landing_refreshes": self.landing_refreshes,
                "budget_checks": self.checks}
