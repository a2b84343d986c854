"""Run the op benchmarks over schemes and sizes and collect one record per (scheme, op, size)."""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Sequence

import numpy as np

import he_core
from he_core import Scheme

from .ops import OPS, Context, OpSpec, Prepared, make_context
from .timing import FULL, QUICK, Budget, measure

QUICK_SIZES = (8, 64)
FULL_SIZES = (8, 64, 256)
QUICK_ROWS = 8
FULL_ROWS = 32

# A result is accepted when every entry is within REL_TOL * terms * (1 + max |expected|)
# of the plaintext answer: loose enough for 2^-16-ish fixed point and CKKS at scale 2^40
# after a few products, tight enough that a wrong slot, sign or scale is caught.
REL_TOL = 1e-3


class WrongResultError(AssertionError):
    """An op decrypted to something other than the plaintext answer."""


@dataclasses.dataclass
class Record:
    """The outcome for one (scheme, op, size).

    ``status`` is ``"ok"`` (timed; the numbers are set), ``"skipped"`` (the scheme lacks
    the op) or ``"error"`` (it failed or computed a wrong result; ``reason`` says how).
    """

    scheme: str
    op: str
    size: int
    rows: int
    status: str = "ok"
    median_s: float | None = None
    min_s: float | None = None
    rounds: int | None = None
    loops: int | None = None
    ops_per_s: float | None = None
    max_abs_err: float | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check(scheme: Scheme, prepared: Prepared) -> float:
    """Run the op once and compare with the plaintext answer.

    Returns:
        The largest absolute error.

    Raises:
        WrongResultError: wrong shape or an error beyond the tolerance.
    """
    if prepared.reset is not None:
        prepared.reset()
    out = prepared.output()
    got = scheme.decrypt_exact_local(*out) if isinstance(out, tuple) else np.asarray(out)
    answers = prepared.expected if isinstance(prepared.expected, tuple) else (prepared.expected,)
    best = None
    for want in answers:
        if got.shape != want.shape:
            raise WrongResultError(f"cannot accept result: shape {got.shape}, expected {want.shape}")
        err = float(np.max(np.abs(got - want)))
        tol = REL_TOL * prepared.terms * (1.0 + float(np.max(np.abs(want))))
        if err <= tol:  # False for NaN
            return err
        best = err if best is None or err < best else best
    raise WrongResultError(f"cannot accept result: max error {best:.3g} exceeds {tol:.3g}")


def bench_op(ctx: Context, op: OpSpec, budget: Budget) -> Record:
    """Prepare, check and time one op in one context; failures become an ``error`` record."""
    rec = Record(ctx.scheme.name, op.name, ctx.size, ctx.rows if op.name in ("row_sum", "index_add_") else 1)
    reason = op.unsupported_reason(ctx.scheme)
    if reason:
        rec.status, rec.reason = "skipped", reason
        return rec
    try:
        prepared = op.prepare(ctx)
        rec.max_abs_err = check(ctx.scheme, prepared)
        if prepared.inplace:
            budget = dataclasses.replace(budget, max_loops=min(budget.max_loops, 100))
        timing = measure(prepared.run, budget, reset=prepared.reset)
    except Exception as exc:  # report, keep going: one broken op must not hide the others
        rec.status, rec.reason = "error", f"{type(exc).__name__}: {exc}"
        return rec
    rec.median_s, rec.min_s = timing.median_s, timing.min_s
    rec.rounds, rec.loops, rec.ops_per_s = timing.rounds, timing.loops, timing.ops_per_s
    return rec


def run(schemes: Sequence[str] | None = None, sizes: Iterable[int] | None = None, *, quick: bool = False,
        ops: Sequence[str] | None = None, budget: Budget | None = None, rows: int | None = None,
        progress: Callable[[Record], None] | None = None) -> list[Record]:
    """Benchmark every supported op of each scheme at each size.

    Args:
        schemes: scheme names (default: every available scheme).
        sizes: vector sizes (default: the quick or the full set).
        quick: small sizes and a short time budget per op.
        ops: restrict to these op names (default: all).
        budget: override the time budget.
        rows: rows of the batched inputs of row ops.
        progress: called with each record as it is finished.

    Returns:
        Records in (scheme, size, op) order.
    """
    schemes = list(schemes) if schemes else he_core.available_schemes()
    sizes = tuple(sizes) if sizes else (QUICK_SIZES if quick else FULL_SIZES)
    budget = budget or (QUICK if quick else FULL)
    rows = rows or (QUICK_ROWS if quick else FULL_ROWS)
    wanted = [op for op in OPS if ops is None or op.name in ops]
    records: list[Record] = []
    for name in schemes:
        for size in sizes:
            for rec in _bench_scheme_size(name, int(size), rows, wanted, budget):
                records.append(rec)
                if progress:
                    progress(rec)
    return records


def _bench_scheme_size(name: str, size: int, rows: int, ops: list[OpSpec], budget: Budget):
    try:
        scheme = he_core.get_scheme(name)
        ctx = make_context(scheme, size, rows)
    except Exception as exc:
        for op in ops:
            yield Record(name, op.name, size, 1, status="error",
                         reason=f"cannot set up {name}: {type(exc).__name__}: {exc}")
        return
    for op in ops:
        yield bench_op(ctx, op, budget)
