"""The guarded view of a scheme: every operation asks the refresh policy about its operands first.

:class:`GuardedScheme` wraps a scheme so that model code stays identical across schemes:
before each operation it tells the :class:`~henn.training.refresh.RefreshPolicy` the
depth the operation is about to spend, and the policy refreshes an operand whose budget
is too low. A layout the scheme cannot compute in (``RefreshRequired``) is moved
through the key holder; a refusal the estimate did not foresee is retried once from
refreshed operands.

What an operation is charged (its depth, the mask levels a packing scheme may spend
on it, how far it grows the values) is the scheme's answer (:meth:`he_core.Scheme.op_cost`):
this view never guesses a cost.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from he_core import (AlignmentError, Ciphertext, LevelExhaustedError, NoiseBudgetExhausted, OpCost, RefreshRequired,
                     Scheme)
from he_core.protocols import LinearMaps, Rotations, view

from .refresh import RefreshPolicy


class GuardedScheme:
    """A scheme view that refreshes operands through a :class:`RefreshPolicy` before each operation.

    It exposes the operations :class:`henn.tensor.EncTensor` uses with the same
    signatures as :class:`he_core.Scheme`, each guarded, and the scheme's answers that
    spend no budget (name, parameters, encryption, budgets, layouts). Key making and
    re-encryption are the key holder's, on the scheme itself: a guarded view has none.
    Results are ordinary ciphertexts of the wrapped scheme.

    Args:
        scheme: the scheme to guard (public keys installed).
        policy: decides when to refresh.
    """

    # An AlignmentError (scales that cannot meet at a low level) goes away with fresher operands too.
    _RETRYABLE = (LevelExhaustedError, NoiseBudgetExhausted, AlignmentError)

    def __init__(self, scheme: Scheme, policy: RefreshPolicy):
        if isinstance(scheme, GuardedScheme):
            scheme = scheme.inner_scheme
        self.inner_scheme = scheme
        self.policy = policy

    # ------------------------------------------------------------------ the scheme's own answers (no budget spent)
    @property
    def name(self) -> str:
        return self.inner_scheme.name

    @property
    def params(self) -> Any:
        return self.inner_scheme.params

    @property
    def params_id(self) -> str:
        return self.inner_scheme.params_id

    @property
    def public_keys(self) -> Any:
        return self.inner_scheme.public_keys

    @property
    def capabilities(self) -> Any:
        return self.inner_scheme.capabilities

    def supports(self, capability: Any) -> bool:
        return self.inner_scheme.supports(capability)

    def require(self, capability: Any, hint: str = "") -> None:
        self.inner_scheme.require(capability, hint)

    def natural_size(self) -> int | None:
        return self.inner_scheme.natural_size()

    def encrypt(self, values: Any, *args: Any, **kwargs: Any) -> Ciphertext:
        return self.inner_scheme.encrypt(values, *args, **kwargs)

    def decrypt(self, ct: Ciphertext, key: Any, **kwargs: Any) -> np.ndarray:
        return self.inner_scheme.decrypt(ct, key, **kwargs)

    def decrypt_exact_local(self, ct: Ciphertext, key: Any) -> np.ndarray:
        return self.inner_scheme.decrypt_exact_local(ct, key)

    def validate(self, ct: Ciphertext) -> None:
        self.inner_scheme.validate(ct)

    def budget(self, ct: Ciphertext) -> dict:
        return self.inner_scheme.budget(ct)

    def release_report(self, ct: Ciphertext, *args: Any) -> dict:
        return self.inner_scheme.release_report(ct, *args)

    def in_default_layout(self, ct: Ciphertext) -> bool:
        return self.inner_scheme.in_default_layout(ct)

    def layout_of(self, ct: Ciphertext) -> Any:
        return self.inner_scheme.layout_of(ct)

    def check_index_add(self, a: Ciphertext, rows: Any, b: Ciphertext) -> None:
        self.inner_scheme.check_index_add(a, rows, b)

    def __repr__(self) -> str:
        return f"GuardedScheme({self.inner_scheme!r})"

    def _run(self, op: str, run: Callable[..., Any], operands: list[Ciphertext], *args: Any,
             cost: OpCost | None = None, **kwargs: Any) -> Any:
        """Ensure each operand's budget for ``op``'s cost (the scheme's), run it, and refresh-and-retry once
        if the scheme still refuses."""
        s = self.inner_scheme
        cost = s.op_cost(op, *operands) if cost is None else cost
        # Operands in a scheme-specific packing are not refreshed in place: the scheme
        # names the layout to move them into when an operation cannot read them.
        # With one in a scheme-specific packing the scheme alone knows the operation's cost:
        # the operands go as they are, and a refusal before computing is retried below.
        packed = False
        for ct in operands:  # a plain loop: this runs for every operation
            if not s.in_default_layout(ct):
                packed = True
                break
        ready = [self.policy.current(ct) if packed else self._ensure(ct, cost) for ct in operands]
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

    def _ensure(self, ct: Ciphertext, cost: OpCost) -> Ciphertext:
        return self.policy.ensure(self.inner_scheme, ct, cost.depth, cost.extra_bits, cost.masks, cost.noise_bits)

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
        return self._run("add", self.inner_scheme.add, [a, b])

    def sub(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        return self._run("sub", self.inner_scheme.sub, [a, b])

    def neg(self, a: Ciphertext) -> Ciphertext:
        return self._run("neg", self.inner_scheme.neg, [a])

    def add_plain(self, a: Ciphertext, values: Any) -> Ciphertext:
        return self._run("add_plain", self.inner_scheme.add_plain, [a], values)

    def sub_plain(self, a: Ciphertext, values: Any) -> Ciphertext:
        return self._run("sub_plain", self.inner_scheme.sub_plain, [a], values)

    def row_sum(self, a: Ciphertext, rows: Any = None) -> Ciphertext:
        if not self.inner_scheme.in_default_layout(a):
            # A table in the scheme's own packing: its gathers cost no budget, and it is
            # never refreshed for one (that would re-encrypt every row).
            return self.inner_scheme.row_sum(a, rows)
        cost = self.inner_scheme.op_cost("row_sum", a, rows=rows)
        return self._run("row_sum", self.inner_scheme.row_sum, [a], rows, cost=cost)

    def take_rows(self, a: Ciphertext, rows: Any) -> Ciphertext:
        return self._run("take_rows", self.inner_scheme.take_rows, [a], rows, cost=self.inner_scheme.op_cost("take_rows", a, rows=rows))

    def copy(self, a: Ciphertext) -> Ciphertext:
        return self.inner_scheme.copy(a)

    def concat_rows(self, parts: Sequence[Ciphertext]) -> Ciphertext:
        s = self.inner_scheme
        return self._placed(s.concat_rows, [self._ensure(ct, s.op_cost("concat_rows", ct)) for ct in parts])[0]

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
            b = self.policy.settle_landing(s, a, self._ensure(b, s.op_cost("index_add_", b, rows=rows)))
        s.index_add_(a, rows, b)

    def bag_sum(self, a: Ciphertext, bags: Any) -> Ciphertext:
        s = self.inner_scheme
        if not s.in_default_layout(a):  # a table in its own packing: as row_sum
            return s.bag_sum(a, bags)
        return self._run("bag_sum", s.bag_sum, [a], bags, cost=s.op_cost("row_sum", a, rows=_longest(bags)))

    def bag_add_(self, a: Ciphertext, bags: Any, b: Ciphertext) -> None:
        # As index_add_, for a whole batch of updates: one landing refresh serves every bag.
        s = self.inner_scheme
        self.policy._cache.pop(id(a), None)
        s.check_bag_add(a, bags, b)  # a batch outside the table's packing is refused here, not moved
        b = self.policy.settle_landing(s, a, self._ensure(b, s.op_cost("index_add_", b, rows=_longest(bags))))
        s.bag_add_(a, bags, b)

    # ------------------------------------------------------------------ multiplicative
    def mul_plain(self, a: Ciphertext, values: Any, *, rescale: bool = True) -> Ciphertext:
        cost = self._unrescaled(self.inner_scheme.op_cost("mul_plain", a, values=values), rescale)
        return self._run("mul_plain", self.inner_scheme.mul_plain, [a], values, rescale=rescale, cost=cost)

    def mul(self, a: Ciphertext, b: Ciphertext, *, rescale: bool = True) -> Ciphertext:
        cost = self._unrescaled(self.inner_scheme.op_cost("mul", a, b), rescale)
        return self._run("mul", self.inner_scheme.mul, [a, b], rescale=rescale, cost=cost)

    def square(self, a: Ciphertext, *, rescale: bool = True) -> Ciphertext:
        cost = self._unrescaled(self.inner_scheme.op_cost("square", a), rescale)
        return self._run("square", self.inner_scheme.square, [a], rescale=rescale, cost=cost)

    def inner(self, a: Ciphertext, b: Ciphertext, *, rescale: bool = True) -> Ciphertext:
        cost = self._unrescaled(self.inner_scheme.op_cost("inner", a, b), rescale)
        return self._run("inner", self.inner_scheme.inner, [a, b], rescale=rescale, cost=cost)

    @staticmethod
    def _unrescaled(cost: OpCost, rescale: bool) -> OpCost:
        # A scheme's noise forecast is for the rescaled product (the interface's default): without the
        # rescale the noise keeps the scale's factor, so the policy charges its own rate per level instead.
        return cost if rescale else dataclasses.replace(cost, noise_bits=None)

    def lincomb(self, weights: Any, a: Ciphertext, *, rescale: bool = True) -> Ciphertext:
        s = self.inner_scheme
        ready = self._ensure(a, s.op_cost("lincomb", a))
        try:
            return s.lincomb(weights, ready, rescale=rescale)
        except self._RETRYABLE:
            return s.lincomb(weights, self.policy.retry(s, [ready])[0], rescale=rescale)

    def polyval(self, a: Ciphertext, coeffs: Sequence[float]) -> Ciphertext:
        return self._run("polyval", self.inner_scheme.polyval, [a], coeffs, cost=self.inner_scheme.op_cost("polyval", a, coeffs=coeffs))

    # ------------------------------------------------------------------ optional capabilities
    def matvec(self, a: Ciphertext, matrix: Any, *, key: Any = None) -> Ciphertext:
        return self._run("matvec", view(self.inner_scheme, LinearMaps).matvec, [a], matrix, key=key)

    def rotate(self, a: Ciphertext, steps: int) -> Ciphertext:
        return self._run("rotate", view(self.inner_scheme, Rotations).rotate, [a], steps)

    def conjugate(self, a: Ciphertext) -> Ciphertext:
        return self._run("conjugate", view(self.inner_scheme, Rotations).conjugate, [a])

    def sum_slots(self, a: Ciphertext) -> Ciphertext:
        return self._run("sum_slots", view(self.inner_scheme, Rotations).sum_slots, [a])


def _longest(bags: Any) -> Any:
    """The longest bag: what an operation's cost is charged for (each row sums at most that many)."""
    return max(bags, key=len) if len(bags) else bags
