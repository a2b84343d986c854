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
* :class:`GuardedScheme` is a view of a scheme that asks the policy about every
  operand before each operation, so model code stays identical across schemes: a
  model built on the guarded view does not meet ``LevelExhaustedError`` or
  ``NoiseBudgetExhausted``. Should an estimate below ever be too optimistic (the
  scheme refuses before computing anything), the operands are refreshed and the
  operation retried once; such rounds are counted apart (``retry_refreshes``) so a
  wrong estimate shows in the training output instead of hiding.

What an operation needs, per budget kind:

* ``"levels"``: ``depth`` levels (a product rescales once; a polynomial of degree
  ``d`` needs ``ceil(log2 d) + 1`` by the interface's contract);
* ``"noise"``: ``depth * noise_bits_per_level + noise_floor_bits`` bits, plus
  ``log2(rows)`` for a row sum (a sum of ``k`` bounds grows by ``log2 k`` bits);
* ``"unbounded"``: nothing, never refresh.

An operation whose two ciphertext operands have different shapes (a ``(1, n)`` bias
added to every row, a ``(B, 1)`` column scaling ``(B, n)`` rows) needs one extra
level for the broadcast: a packing scheme broadcasts by masking and rotating, which
costs a plaintext product and so a rescaling (CKKS does; a build of 2026-11-23
returned wrong values at level 0 instead of an error). A 0/1 mask does not grow a noise
bound by more than the floor, so ``"noise"`` budgets are not charged for it. Row
operations (``row_sum``, ``take_rows``, ``index_add_``) are charged one mask level
too: a packing scheme may have to zero the unused slots first (CKKS does when a
ciphertext holds garbage outside its values, which the interface does not show).

A need above what a fresh ciphertext has is capped at the fresh budget (refreshing
cannot do better; the operation then runs on a fresh operand). The fresh budget is
learnt from the first refresh of each kind.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from he_core import Ciphertext, LevelExhaustedError, NoiseBudgetExhausted, RefreshRequired, Scheme

from ..keyholder import MaskedRefresh

#: Budget kinds the policy understands.
KINDS = ("levels", "noise", "unbounded")
#: Levels a refresh mask can need at most (three primes of the chain: 150+ bits).
MAX_RESERVE = 3


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

    Attributes:
        op_refreshes: refreshes made because an operation needed more budget.
        retry_refreshes: refreshes made after the scheme refused an operation the
            budget estimate allowed (should stay 0; counted so it shows if not).
        checks: how many budget checks were made.

    Raises:
        ValueError: negative or non-finite bit counts.
    """

    def __init__(self, keyholder: MaskedRefresh, *, noise_bits_per_level: float = 8.0, noise_floor_bits: float = 2.0,
                 value_bound: float | None = None):
        for name, value in (("noise_bits_per_level", noise_bits_per_level), ("noise_floor_bits", noise_floor_bits)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"cannot build RefreshPolicy: {name} must be finite and >= 0, got {value}")
        if value_bound is not None and not (value_bound > 0 and math.isfinite(value_bound)):
            raise ValueError(f"cannot build RefreshPolicy: value_bound must be positive and finite, got {value_bound}")
        self.keyholder = keyholder
        self.value_bound = value_bound
        self.noise_bits_per_level = float(noise_bits_per_level)
        self.noise_floor_bits = float(noise_floor_bits)
        self.op_refreshes = 0
        self.retry_refreshes = 0
        self.layout_refreshes = 0
        self.checks = 0
        self._fresh: dict[str, float] = {}
        # id(original) -> (original, refreshed): a cached activation used again in
        # backward is refreshed once, not twice. Holding the original keeps its id unique.
        self._cache: dict[int, tuple[Ciphertext, Ciphertext]] = {}
        # id(ciphertext) -> (ciphertext, bound) for bounds the model declared (GuardedScheme.declare_bound).
        self._declared: dict[int, tuple[Ciphertext, float]] = {}

    # ------------------------------------------------------------------ the decision
    def required(self, budget: dict, depth: int, extra_bits: float = 0.0, masks: int = 0, reserve: int = 0) -> float:
        """The budget an operation of multiplicative ``depth`` needs (in the budget's own unit).

        Args:
            budget: what ``scheme.budget(ct)`` returned.
            depth: ciphertext or plaintext products on the path through this operand.
            extra_bits: additional noise bits (row sums of many rows).
            masks: broadcast masks the operation applies (one level each).
            reserve: levels that must remain afterwards so the result can still be
                masked for a refresh (:meth:`henn.keyholder.MaskedRefresh.levels_reserved`).

        Raises:
            ValueError: an unknown budget kind.
        """
        kind = budget.get("kind")
        if kind == "unbounded":
            return -math.inf
        if kind == "levels":
            need = float(depth + masks + reserve)
        elif kind == "noise":
            need = depth * self.noise_bits_per_level + self.noise_floor_bits + extra_bits
        else:
            raise ValueError(f"cannot decide on a refresh: unknown budget kind {kind!r} (known: {KINDS})")
        return min(need, self._fresh.get(kind, math.inf))

    def needs_refresh(self, budget: dict, depth: int, extra_bits: float = 0.0, masks: int = 0,
                      reserve: int = 0) -> bool:
        """Whether a ciphertext with this budget must be refreshed before an operation of ``depth``."""
        return float(budget["remaining"]) < self.required(budget, depth, extra_bits, masks, reserve)

    def ensure(self, scheme: Scheme, ct: Ciphertext, depth: int, extra_bits: float = 0.0,
               masks: int = 0) -> Ciphertext:
        """``ct`` itself if its budget suffices for ``depth``, else a refreshed copy.

        Args:
            scheme: the (unguarded) scheme ``ct`` belongs to.
            ct: the operand about to be consumed.
            depth: multiplicative depth of the operation.
            extra_bits: additional noise bits the operation needs (row sums).
            masks: broadcast masks the operation applies.
        """
        self.checks += 1
        ct = self.current(ct)
        budget = scheme.budget(ct)
        reserve = 0
        if budget.get("kind") == "levels" and budget["remaining"] <= depth + masks + MAX_RESERVE:
            # Near the floor only: the reserve needs a refresh plan, which is not free.
            reserve = self.keyholder.levels_reserved(ct, value_bound=self.bound_for(ct))
        if not self.needs_refresh(budget, depth, extra_bits, masks, reserve):
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
        ciphertext is ever left that cannot be refreshed.
        """
        if not isinstance(result, Ciphertext) or not scheme.in_default_layout(result):
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
                "layout_refreshes": self.layout_refreshes, "budget_checks": self.checks}


def polyval_depth(coeffs: Sequence[float]) -> int:
    """The interface's depth bound for ``polyval``: ``ceil(log2(degree)) + 1`` (0 for a constant)."""
    c = np.asarray(coeffs, dtype=np.float64)
    nonzero = [i for i in range(1, c.size) if c[i] != 0.0]
    if not nonzero:
        return 1  # a constant polynomial is evaluated as 0 * x + c0: one plaintext product
    degree = max(nonzero)
    return (math.ceil(math.log2(degree)) if degree > 1 else 0) + 1


def _broadcast(a: Ciphertext, b: Ciphertext) -> int:
    """One extra level when two ciphertext operands need broadcasting (see the module docstring)."""
    return int(tuple(a.shape) != tuple(b.shape))


class GuardedScheme:
    """A scheme view that refreshes operands through a :class:`RefreshPolicy` before each operation.

    It exposes the operations :class:`henn.tensor.EncTensor` uses with the same
    signatures as :class:`he_core.Scheme`; every other attribute is the wrapped
    scheme's. Results are ordinary ciphertexts of the wrapped scheme.

    Args:
        scheme: the scheme to guard (public keys installed).
        policy: decides when to refresh.
    """

    _RETRYABLE = (LevelExhaustedError, NoiseBudgetExhausted)

    def __init__(self, scheme: Scheme, policy: RefreshPolicy):
        if isinstance(scheme, GuardedScheme):
            scheme = scheme.inner_scheme
        self.inner_scheme = scheme
        self.policy = policy

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not defined here: name, params, encrypt, decrypt, budget, ...
        return getattr(self.inner_scheme, name)

    def __repr__(self) -> str:
        return f"GuardedScheme({self.inner_scheme!r})"

    def _run(self, op: str, run: Callable[..., Any], operands: list[Ciphertext], depth: int, *args: Any,
             extra_bits: float = 0.0, masks: int | None = None, **kwargs: Any) -> Any:
        """Ensure each operand's budget, run ``op``, and refresh-and-retry once if the scheme still refuses."""
        s = self.inner_scheme
        if masks is None:
            masks = _broadcast(*operands) if len(operands) == 2 else 0
        # Operands in a scheme-specific packing are not refreshed in place: the scheme
        # names the layout to move them into when an operation cannot read them.
        # With one in a scheme-specific packing the scheme alone knows the operation's cost:
        # the operands go as they are, and a refusal before computing is retried below.
        packed = not all(s.in_default_layout(ct) for ct in operands)
        ready = [self.policy.current(ct) if packed else self.policy.ensure(s, ct, depth, extra_bits, masks)
                 for ct in operands]
        try:
            out, ready = self._invoke(run, ready, args, kwargs)
        except self._RETRYABLE:
            out, ready = self._invoke(run, self.policy.retry(s, ready), args, kwargs)
        if self.policy.below_floor(s, out):
            # The operation took more levels than estimated: redo it from fresh operands.
            out, _ = self._invoke(run, self.policy.retry(s, ready), args, kwargs)
            if self.policy.below_floor(s, out):
                raise LevelExhaustedError(f"cannot {op}: from fresh operands it still ends below the levels a "
                                          "refresh mask needs; the parameter set needs more levels")
        return out

    def _invoke(self, run: Callable[..., Any], ready: list[Ciphertext], args: tuple,
                kwargs: dict) -> tuple[Any, list[Ciphertext]]:
        """Run the scheme's operation ``run`` on the operands (see :meth:`_placed`)."""
        return self._placed(lambda operands: run(*operands, *args, **kwargs), ready)

    def _placed(self, call: Any, ready: list[Ciphertext]) -> tuple[Any, list[Ciphertext]]:
        """``call(operands)``, moving an operand into the layout the scheme names while it asks (RefreshRequired)."""
        for _ in range(len(ready) + 1):
            try:
                return call(ready), ready
            except RefreshRequired as exc:
                ready = self._moved(ready, exc)
        return call(ready), ready

    def _moved(self, operands: list[Ciphertext], exc: RefreshRequired) -> list[Ciphertext]:
        if not any(ct is exc.ciphertext for ct in operands):
            raise exc
        fresh = self.policy.move(self.inner_scheme, exc.ciphertext, exc.target)
        return [fresh if ct is exc.ciphertext else ct for ct in operands]

    def declare_bound(self, a: Ciphertext, bound: float) -> Ciphertext:
        """The scheme's ``declare_bound``, noted so that a refresh of the result masks it for that bound."""
        out = self.inner_scheme.declare_bound(a, bound)
        self.policy.note_bound(out, bound)
        return out

    # ------------------------------------------------------------------ additive (depth 0)
    def add(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        return self._run("add", self.inner_scheme.add, [a, b], 0)

    def sub(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        return self._run("sub", self.inner_scheme.sub, [a, b], 0)

    def neg(self, a: Ciphertext) -> Ciphertext:
        return self._run("neg", self.inner_scheme.neg, [a], 0)

    def add_plain(self, a: Ciphertext, values: Any) -> Ciphertext:
        return self._run("add_plain", self.inner_scheme.add_plain, [a], 0, values)

    def sub_plain(self, a: Ciphertext, values: Any) -> Ciphertext:
        return self._run("sub_plain", self.inner_scheme.sub_plain, [a], 0, values)

    def row_sum(self, a: Ciphertext, rows: Any = None) -> Ciphertext:
        if not self.inner_scheme.in_default_layout(a):
            # A table in the scheme's own packing: its gathers cost no budget, and it is
            # never refreshed for one (that would re-encrypt every row).
            return self.inner_scheme.row_sum(a, rows)
        count = a.rows if rows is None else max(int(np.size(rows)), 1)
        return self._run("row_sum", self.inner_scheme.row_sum, [a], 0, rows, extra_bits=math.log2(max(count, 1)), masks=1)

    def take_rows(self, a: Ciphertext, rows: Any) -> Ciphertext:
        return self._run("take_rows", self.inner_scheme.take_rows, [a], 0, rows, masks=1)

    def copy(self, a: Ciphertext) -> Ciphertext:
        return self.inner_scheme.copy(a)

    def concat_rows(self, parts: Sequence[Ciphertext]) -> Ciphertext:
        # A packing scheme moves rows with masks: one level per part, as take_rows.
        s = self.inner_scheme
        return self._placed(s.concat_rows, [self.policy.ensure(s, ct, 0, masks=1) for ct in parts])[0]

    def index_add_(self, a: Ciphertext, rows: Any, b: Ciphertext) -> None:
        # In place on ``a``: it cannot be swapped for a refreshed copy, so only ``b`` is guarded.
        s = self.inner_scheme
        self.policy._cache.pop(id(a), None)
        try:
            s.check_index_add(a, rows, b)
        except RefreshRequired as exc:
            # The update must arrive in the table's packing: one move, no budget refresh first.
            b = self._moved([b], exc)[0]
        else:
            b = self.policy.ensure(s, b, 0, math.log2(max(int(np.size(rows)), 1)), masks=1)
        s.index_add_(a, rows, b)

    # ------------------------------------------------------------------ multiplicative
    def mul_plain(self, a: Ciphertext, values: Any, *, rescale: bool = True) -> Ciphertext:
        return self._run("mul_plain", self.inner_scheme.mul_plain, [a], 1, values, rescale=rescale)

    def mul(self, a: Ciphertext, b: Ciphertext, *, rescale: bool = True) -> Ciphertext:
        return self._run("mul", self.inner_scheme.mul, [a, b], 1, rescale=rescale)

    def square(self, a: Ciphertext, *, rescale: bool = True) -> Ciphertext:
        return self._run("square", self.inner_scheme.square, [a], 1, rescale=rescale)

    def inner(self, a: Ciphertext, b: Ciphertext, *, rescale: bool = True) -> Ciphertext:
        # A packing scheme sums a product's slots with rotations and zeroes the rest with a
        # mask (one more level), besides any broadcast: charged here like the row operations.
        return self._run("inner", self.inner_scheme.inner, [a, b], 1, rescale=rescale, masks=1 + _broadcast(a, b))

    def lincomb(self, weights: Any, a: Ciphertext, *, rescale: bool = True) -> Ciphertext:
        s = self.inner_scheme
        ready = self.policy.ensure(s, a, 1)
        try:
            return s.lincomb(weights, ready, rescale=rescale)
        except self._RETRYABLE:
            return s.lincomb(weights, self.policy.retry(s, [ready])[0], rescale=rescale)

    def polyval(self, a: Ciphertext, coeffs: Sequence[float]) -> Ciphertext:
        return self._run("polyval", self.inner_scheme.polyval, [a], polyval_depth(coeffs), coeffs)
