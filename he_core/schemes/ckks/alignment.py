"""Bringing two CKKS operands to one level and one scale before they are added or multiplied.

A ciphertext brought down to a lower level for an addition or product is multiplied by
the integer round(target * q / scale) before its rescale, which lands it within a
relative 0.5 / factor of the target scale (about 2^-40 with 40-bit primes, but only
about 2^-22 with 21-bit primes). Scales therefore compare equal within a tolerance tied
to the scale itself (see :func:`~.scales.scale_tolerance`). Two operands at the same
level whose scales differ are both brought to the next level's working scale (one
level), or refused when no level is left.
"""
from __future__ import annotations

import math

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import AlignmentError, HEOverflowError, LevelExhaustedError
from . import layout
from .arith import Evaluator
from .context import CkksContext
from .noise_records import NoiseRecords
from .scales import scale_tolerance, scales_match


class LevelAligner:
    """Level drops, integer-factor scale adjustments, and the alignment of operand pairs.

    Args:
        ctx: the parameter set's objects; records: the noise records;
        evaluator: rescales a ciphertext after its integer factor.
    """

    def __init__(self, ctx: CkksContext, records: NoiseRecords, evaluator: Evaluator) -> None:
        self.ring, self.scales, self.records, self.evaluator = ctx.ring, ctx.scales, records, evaluator

    def drop(self, ct: Ciphertext, level: int) -> Ciphertext:
        """``ct`` at a lower ``level`` (primes dropped, scale unchanged).

        Raises:
            LevelExhaustedError: ``level`` is above ct's or negative.
            HEOverflowError: its values would not fit the smaller modulus.
        """
        if level == layout.level(ct):
            return ct
        if level > layout.level(ct) or level < 0:
            raise LevelExhaustedError(f"cannot drop {ct.describe()} from level {layout.level(ct)} to {level}")
        # The value range decides whether the message wraps (the noise record is a compounding bound that
        # the arithmetic checks elsewhere; a real noise near q_0 would have failed long before).
        phase = float(ct.scale) * float(ct.meta["vmax"])
        if math.log2(max(phase, 1.0)) >= math.log2(self.ring.q[0]) + sum(math.log2(q) for q in self.ring.q[1: level + 1]) - 2.0:
            raise HEOverflowError(f"cannot drop {ct.describe()} to level {level}: its values (up to "
                                  f"{float(ct.meta['vmax']):.4g} at scale 2^{math.log2(ct.scale):.1f}) would not fit the "
                                  "smaller modulus; rescale it instead")
        data = np.ascontiguousarray(ct.data[:, :, : level + 1])
        # Dropping primes leaves the phase error as it is (it fits the smaller modulus: checked above).
        return ct.replace(data=data, meta=self.records.meta({**ct.meta, "level": level}, level, *self.records.nv(ct)))

    def adjust(self, ct: Ciphertext, level: int, scale: float) -> Ciphertext:
        """Bring ct to ``level`` with (almost exactly) ``scale``, using the spare level it has."""
        if layout.level(ct) == level:
            return ct
        x = self.drop(ct, level + 1)
        q = self.ring.q[level + 1]
        factor = round(scale * q / x.scale)
        if factor < 1 or not self.fits_times(x, factor):
            return self.drop(ct, level)  # cannot fix the scale with an integer: keep it as it is (callers check)
        r = self.ring
        data = np.empty_like(x.data)
        x_parts = x.data.shape[1]
        for i in range(x.data.shape[0]):
            for p in range(x_parts):
                r.mul_int(x.data[i, p], factor, data[i, p])
        # The recorded scale absorbs the factor exactly: the value is unchanged, the error times factor.
        nvar, vmax = self.records.nv(x)
        scaled = x.replace(data=data, scale=x.scale * factor,
                           meta=self.records.meta(x.meta, level + 1, float(factor) ** 2 * nvar, vmax))
        return self.evaluator.rescale(scaled)

    def fits_times(self, ct: Ciphertext, factor: int) -> bool:
        """Whether ct's phase times ``factor`` stays inside its modulus (with a 4-bit margin).

        The factor may exceed every prime (the ring multiplies by its residues); what
        limits it is the scaled message and error, which must not wrap modulo Q_level.
        """
        var, vmax = self.records.nv(ct)
        phase = float(ct.scale) * float(vmax) + 8.0 * math.sqrt(float(np.max(var)))
        room = sum(math.log2(q) for q in self.ring.q[: layout.level(ct) + 1])
        return math.log2(max(phase, 1.0)) + math.log2(factor) + 4.0 < room

    def align_add(self, a: Ciphertext, b: Ciphertext, op: str) -> tuple[Ciphertext, Ciphertext]:
        """``a`` and ``b`` at one level and one scale, for a sum (``op`` names it in errors).

        Raises:
            AlignmentError: the scales differ and no level is left to realign them.
        """
        la, lb = layout.level(a), layout.level(b)
        if la > lb:
            a = self.adjust(a, lb, b.scale)
        elif lb > la:
            b = self.adjust(b, la, a.scale)
        if not scales_match(a.scale, b.scale):
            level = layout.level(a)
            if not self.can_realign(a) or not self.can_realign(b):
                raise AlignmentError(f"cannot {op}: scales 2^{math.log2(a.scale):.4f} and 2^{math.log2(b.scale):.4f} "
                                    f"differ at level {level} and cannot be aligned (no level left, or a scale "
                                    f"far from the working scale); rescale the operands first")
            # Same level, different scales: spend one level to bring both to the working scale.
            a = self.adjust(a, level - 1, self.scales.at(level - 1))
            b = self.adjust(b, level - 1, self.scales.at(level - 1))
        if not scales_match(a.scale, b.scale):
            # Adding at mismatched scales would silently weight one operand by their ratio.
            raise AlignmentError(f"cannot {op}: scales 2^{math.log2(a.scale):.4f} and 2^{math.log2(b.scale):.4f} "
                                f"at level {layout.level(a)} cannot be aligned; rescale the operands first")
        return a, b

    def can_realign(self, ct: Ciphertext) -> bool:
        """Whether an integer factor brings ct to the next level's working scale within the tolerance.

        The factor's rounding leaves a relative error of up to 0.5 / factor, which must
        stay within :func:`scale_tolerance` of the target scale.
        """
        level = layout.level(ct)
        if level == 0:
            return False
        target = self.scales.at(level - 1)
        return target * self.ring.q[level] / ct.scale >= 0.5 / scale_tolerance(target)

    def align_mul(self, a: Ciphertext, b: Ciphertext) -> tuple[Ciphertext, Ciphertext]:
        """``a`` and ``b`` at the lower of their levels, the higher one at that level's working scale."""
        la, lb = layout.level(a), layout.level(b)
        if la > lb:
            a = self.adjust(a, lb, self.scales.at(lb))
        elif lb > la:
            b = self.adjust(b, la, self.scales.at(la))
        return a, b
