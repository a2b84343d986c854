"""How much noise headroom a vhe operation will spend, worked out before it runs.

A caller that refreshes operands before they run out (``henn``'s refresh policy) asks
:meth:`he_core.Scheme.op_cost` what an operation costs. A depth alone says little for a
noise budget: a product's noise grows with the *values* it multiplies (``va nb + vb na``),
so a product of small values costs one or two bits where a generic charge per level
must assume many more. vhe tracks a noise bound and a value bound on every ciphertext, so
it can run the very formulas its checks use on those bounds alone: :class:`NoiseForecast`
is the scheme's arithmetic on :class:`Bound` values instead of ciphertexts, with each
key switch charged its worst case (every digit at its largest), and ``polyval`` forecast
by running the shared circuit (:func:`he_core.circuits.polyval`) on bounds.

The forecast is an upper bound on the noise the operation's own checks will see, so a
caller that keeps ``forecast bits + its floor`` of headroom is never refused.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from ... import circuits
from ...ciphertext import Ciphertext


@dataclasses.dataclass(frozen=True)
class Bound:
    """What the scheme knows of a ciphertext: its noise bound, its value bound (both scaled integers), its size."""

    noise: int
    value: int
    size: int


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class NoiseForecast:
    """The scheme's noise and value formulas on :class:`Bound` values (the four calls ``polyval`` makes, and more).

    Args:
        scheme: the :class:`~he_core.schemes.vhe.scheme.VheScheme` whose parameters and
            bookkeeping the forecast follows.
    """

    def __init__(self, scheme: Any) -> None:
        p = scheme.params
        self._scheme = scheme
        self._f, self._w, self._k = p.scale, p.w, p.k
        self._round_l1 = (p.key_l1 + 1) // 2
        self._round_l1sq = (p.key_l1 ** 2 + 1) // 2
        self._switch_entry = p.switch_noise(1)  # worst case per switched entry: every digit at its largest

    def of(self, ct: Ciphertext) -> Bound:
        """The bounds the scheme tracks on ``ct``."""
        return Bound(max(int(ct.meta["noise"]), 1), self._scheme._value_bound(ct), int(ct.shape[1]))

    # ------------------------------------------------------------------ the arithmetic (circuits.Arithmetic)
    def mul(self, a: Bound, b: Bound) -> Bound:
        m = max(a.size, b.size)
        return Bound(self._product_noise(a, b, 1) + self._switch(m), _ceil_div(a.value * b.value, self._f), m)

    def inner(self, a: Bound, b: Bound) -> Bound:
        m = a.size
        return Bound(self._product_noise(a, b, m) + self._switch(m), _ceil_div(m * a.value * b.value, self._f), 1)

    def mul_plain(self, a: Bound, c: float) -> Bound:
        p = abs(round(float(c) * self._f))
        return Bound(_ceil_div(a.noise * p, self._f) + self._round_l1, _ceil_div(a.value * p, self._f), a.size)

    def add(self, a: Bound, b: Bound) -> Bound:
        return Bound(a.noise + b.noise, a.value + b.value, max(a.size, b.size))

    def add_plain(self, a: Bound, c: float) -> Bound:
        return Bound(a.noise, a.value + abs(round(float(c) * self._f)), a.size)

    def polyval(self, a: Bound, coeffs: Sequence[float], style: circuits.PolyStyle) -> Bound:
        return circuits.polyval(self, a, coeffs, style)

    # ------------------------------------------------------------------ the cost in bits
    def bits(self, op: str, operands: Sequence[Ciphertext], coeffs: Sequence[float] | None = None,
             values: Any = None) -> float | None:
        """Bits of headroom ``op`` takes from its noisiest operand (worst case), or None for an op not forecast.

        The result's headroom is the noisiest operand's minus these bits.
        """
        bounds = [self.of(ct) for ct in operands]
        if op in ("mul", "square"):
            out = self.mul(bounds[0], bounds[-1])
        elif op == "inner":
            out = self.inner(bounds[0], bounds[1])
        elif op in ("add", "sub"):
            out = self.add(bounds[0], bounds[1])
        elif op == "mul_plain" and values is not None and np.ndim(values) == 0:
            out = self.mul_plain(bounds[0], float(values))
        elif op == "polyval" and coeffs is not None:
            out = self.polyval(bounds[0], coeffs, self._scheme.polyval_style)
        else:
            return None
        worst = max(b.noise for b in bounds)
        return max(0.0, math.log2(out.noise / worst))

    def _product_noise(self, a: Bound, b: Bound, slots: int) -> int:
        """The scheme's bound on a rescaled product's noise before its key switch (``_product_noise``)."""
        cross = a.value * b.noise + b.value * a.noise + _ceil_div(a.noise * b.noise, self._w)
        return slots * (_ceil_div(cross, self._f) + self._round_l1sq)

    def _switch(self, m: int) -> int:
        """Worst-case noise of the key switch that ends a product of size-``m`` vectors (its tensor row)."""
        return self._switch_entry * m * (1 + self._k) ** 2
