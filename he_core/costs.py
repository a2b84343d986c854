"""What an operation spends: the scheme says, so that callers never guess.

A caller that refreshes operands before they run out (``henn``'s guarded view) needs
to know, before an operation runs, how much budget it takes from each operand. The
scheme answers with an :class:`OpCost`:

* ``depth``: multiplicative levels (a leveled scheme) or products (a noise budget);
* ``masks``: extra levels a packing scheme may spend on 0/1 masks: broadcasting a
  ``(1, n)`` or ``(B, 1)`` operand across another's shape, moving or summing rows
  (CKKS zeroes unused slots first when a ciphertext holds garbage outside its values,
  which the interface does not show). A 0/1 mask does not grow a noise bound beyond
  the floor, so noise budgets are not charged for it;
* ``extra_bits``: how many bits the values may grow (a sum of ``k`` rows: log2 k);
* ``noise_bits``: for a noise budget, the bits of headroom the result will have lost
  against its noisiest operand, when the scheme can work it out from what it tracks
  on these operands (a product of small values costs far less than one of large
  ones); ``None`` leaves the caller to charge ``depth`` at its own rate per level.

The defaults below are the interface's contract, which every built-in scheme meets;
a scheme whose operation costs differ overrides :meth:`OperationCosts.op_cost`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from .ciphertext import Ciphertext
from .circuits import GENERIC, PolyStyle, polyval_depth

#: Operations whose cost :meth:`OperationCosts.op_cost` knows.
COSTED = ("add", "sub", "neg", "add_plain", "sub_plain", "row_sum", "take_rows", "concat_rows", "index_add_",
          "mul_plain", "mul", "square", "inner", "lincomb", "polyval", "matvec", "rotate", "conjugate", "sum_slots")


@dataclasses.dataclass(frozen=True)
class OpCost:
    """The budget an operation takes from its operands (see the module docstring)."""

    depth: int = 0
    masks: int = 0
    extra_bits: float = 0.0
    noise_bits: float | None = None


def _broadcast(a: Ciphertext, b: Ciphertext) -> int:
    """One mask level when two ciphertext operands have different shapes (a broadcast)."""
    return int(tuple(a.shape) != tuple(b.shape))


def _rows_bits(rows: Any, default: int) -> float:
    count = default if rows is None else max(int(np.size(rows)), 1)
    return math.log2(max(count, 1))


class OperationCosts:
    """Mixin of :class:`he_core.Scheme`: the cost of each interface operation."""

    #: How this scheme's ``polyval`` circuit is shaped (:mod:`he_core.circuits`); its depth is the cost.
    polyval_style: PolyStyle = GENERIC

    def op_cost(self, op: str, *operands: Ciphertext, rows: Any = None,
                coeffs: Sequence[float] | None = None, values: Any = None) -> OpCost:
        """What ``op`` on ``operands`` takes from each of them.

        Args:
            op: an operation name (one of :data:`COSTED`).
            operands: its ciphertext operands, in order (one part of ``concat_rows``
                at a time; the added ``b`` of ``index_add_``).
            rows: the row selection of ``row_sum``, ``take_rows`` or ``index_add_``.
            coeffs: the coefficients of ``polyval``.
            values: the plaintext factor of ``mul_plain`` (a scheme may forecast from it).

        Raises:
            ValueError: an unknown operation, or ``polyval`` without ``coeffs``.
        """
        if op in ("add", "sub", "mul"):
            return OpCost(depth=int(op == "mul"), masks=_broadcast(*operands) if len(operands) == 2 else 0)
        if op in ("neg", "add_plain", "sub_plain", "rotate", "conjugate", "sum_slots"):
            return OpCost()
        if op in ("mul_plain", "square", "lincomb", "matvec"):
            return OpCost(depth=1)
        if op == "inner":
            return OpCost(depth=1, masks=1 + (_broadcast(*operands) if len(operands) == 2 else 0))
        if op in ("take_rows", "concat_rows"):
            return OpCost(masks=1)
        if op in ("row_sum", "index_add_"):
            default = operands[0].rows if operands and op == "row_sum" else 1
            return OpCost(masks=1, extra_bits=_rows_bits(rows, default))
        if op == "polyval":
            if coeffs is None:
                raise ValueError("cannot cost polyval without its coefficients")
            return OpCost(depth=polyval_depth(coeffs, self.polyval_style))
        raise ValueError(f"cannot cost {op!r}: not an interface operation ({', '.join(COSTED)})")
