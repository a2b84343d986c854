"""Where a CKKS ciphertext can be re-encrypted to: layout targets, their checks, and the errors that name them.

A target is a plain dict (``layout`` in :data:`~.coeff_layout.LAYOUTS`, ``level``, ``scale`` and,
for coefficient packing, ``stride`` and ``rev``): it travels to the key holder with a
masked refresh, so it is validated wherever it arrives (:meth:`LayoutTargets.check`).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import EncodingError, RefreshRequired
from . import layout
from .coeff_layout import LAYOUTS, TABLE_LEVEL, is_coeff
from .context import CkksContext


class LayoutTargets:
    """Layout targets of one parameter set: made, checked, and named in :class:`~he_core.RefreshRequired` errors.

    Args:
        ctx: the parameter set's objects (its levels and their working scales).
    """

    def __init__(self, ctx: CkksContext) -> None:
        self.params, self.scales = ctx.params, ctx.scales

    def target(self, kind: str, level: int, **extra: Any) -> dict:
        """A re-encryption target of layout ``kind`` at ``level``, at that level's working scale."""
        return {"layout": kind, "level": int(level), "scale": float(self.scales.at(level)), **extra}

    def coeff_target(self, like: Ciphertext, *, rev: bool | None = None, level: int | None = None) -> dict:
        """Re-encryption target: clean, coefficient-packed like ``like`` (optionally reversed / at a level)."""
        lvl = layout.level(like) if level is None else level
        return self.target("coeff", lvl, stride=int(like.meta["stride"]),
                           rev=bool(like.meta.get("rev", False) if rev is None else rev))

    def refresh_error(self, op: str, ct: Ciphertext, target: dict, why: str) -> RefreshRequired:
        """The :class:`~he_core.RefreshRequired` for ``ct`` in ``op``, naming ``target`` and ``why``."""
        return RefreshRequired(f"cannot {op}: {ct.describe()} {why}; re-encrypt it into layout {target} "
                               "(a masked refresh through the key holder)", ct, target)

    def need_slots(self, op: str, ct: Ciphertext) -> RefreshRequired:
        """The error for any slot-wise operation on a coefficient-packed operand."""
        top = self.params.levels
        target = self.target("constant", top) if ct.shape == (1, 1) else self.target("slots", top)
        return self.refresh_error(op, ct, target, "is coefficient-packed (a table or a gathered row), which "
                                  "this operation cannot read without the secret key")

    def in_default_layout(self, ct: Ciphertext) -> bool:
        """Whether ``ct`` is slot-packed (the layout fresh encryptions get)."""
        return not is_coeff(ct)

    def layout_of(self, ct: Ciphertext) -> Any:
        """The layout a clean table is to be refreshed into (None for slot packings)."""
        if is_coeff(ct) and not ct.meta["dirty"]:
            return self.coeff_target(ct, level=max(layout.level(ct), min(TABLE_LEVEL, self.params.levels)))
        return None

    def check(self, target: Any, values: np.ndarray) -> dict:
        """The layout target ``target`` (or ``"table"``) for encrypting ``values``, validated.

        Raises:
            EncodingError: an unknown layout, or a level, scale, stride or shape it cannot hold.
        """
        stride_needed = layout.next_pow2(values.shape[1])
        if stride_needed > self.params.slots:
            raise EncodingError(f"cannot encrypt: vectors of size {values.shape[1]} exceed the {self.params.slots} "
                                "slots")
        if target == "table":
            level = min(TABLE_LEVEL, self.params.levels)
            return self.target("coeff", level, stride=stride_needed, rev=False)
        if not isinstance(target, dict) or target.get("layout") not in LAYOUTS:
            raise EncodingError(f"cannot encrypt: unknown CKKS layout {target!r} (None, 'table', or a target "
                                f"dict with layout in {LAYOUTS})")
        level = target.get("level")
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= self.params.levels:
            raise EncodingError(f"cannot encrypt: layout level {level!r} is not in 0 .. {self.params.levels}")
        scale = target.get("scale")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale >= 1):
            raise EncodingError(f"cannot encrypt: layout scale {scale!r} is not a finite number >= 1")
        if target["layout"] == "coeff":
            stride, rev = target.get("stride"), target.get("rev")
            # The stride is the vectors' own (next power of two): a wider one would only
            # multiply the ciphertexts (and let a request make the key holder allocate them).
            if isinstance(stride, bool) or stride != stride_needed or not isinstance(rev, bool):
                raise EncodingError(f"cannot encrypt: coefficient layout needs stride {stride_needed} (the "
                                    f"power of two >= {values.shape[1]}) and a bool rev, got {target!r}")
        if target["layout"] == "constant" and values.shape != (1, 1):
            raise EncodingError(f"cannot encrypt: the constant layout holds one value, not {values.shape}")
        return target
