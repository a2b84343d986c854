"""The guarded view of a scheme: every operation asks the refresh policy about its operands first.

:class:`GuardedScheme` wraps a scheme so that model code stays identical across schemes:
before each operation it tells the :class:`~henn.training.refresh.RefreshPolicy` the
depth the operation is about to spend, and the policy refreshes an operand whose budget
is too low. A layout the scheme cannot compute in (``RefreshRequired``) is moved
through the key holder; a refusal the estimate did not foresee is retried once from
refreshed operands.

What an operation is charged, beyond its multiplicative depth:

An operation whose two ciphertext operands have different shapes (a ``(1, n)`` bias
added to every row, a ``(B, 1)`` column scaling ``(B, n)`` rows) needs one extra
level for the broadcast: a packing scheme broadcasts by masking and rotating, which
costs a plaintext product and so a rescaling (CKKS does; a build of 2026-11-23
returned wrong values at level 0 instead of an error). A 0/1 mask does not grow a noise
bound by more than the floor, so ``"noise"`` budgets are not charged for it. Row
operations (``row_sum``, ``take_rows``, ``index_add_``) are charged one mask level
too: a packing scheme may have to zero the unused slots first (CKKS does when a
ciphertext holds garbage outside its values, which the interface does not show).

A polynomial of degree ``d`` is charged ``ceil(log2 d) + 1`` levels (:func:`polyval_depth`),
the interface's contract.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from he_core import Ciphertext, LevelExhaustedError, NoiseBudgetExhausted, RefreshRequired, Scheme

from .refresh import RefreshPolicy


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
