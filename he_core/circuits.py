"""Scheme-agnostic circuits built only from the public scheme interface."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from .errors import EncodingError

if TYPE_CHECKING:  # pragma: no cover
    from .ciphertext import Ciphertext
    from .scheme import Scheme


def power_plan(degree: int) -> dict[int, tuple[int, int]]:
    """How to build x^2 .. x^degree with depth ceil(log2(degree)).

    Each power ``i`` is the product of the largest power of two below it and the rest,
    so every power sits at multiplicative depth ceil(log2(i)).
    """
    plan = {}
    for i in range(2, degree + 1):
        high = 1 << (i.bit_length() - 1)
        low = i - high
        plan[i] = (high // 2, high // 2) if low == 0 else (high, low)
    return plan


def powers(scheme: "Scheme", x: "Ciphertext", degree: int, needed: set[int] | None = None) -> dict[int, "Ciphertext"]:
    """Encrypted powers x^1 .. x^degree (only those ``needed`` and their factors)."""
    plan = power_plan(degree)
    wanted = set(range(1, degree + 1)) if needed is None else set(needed)
    closure: set[int] = set()
    stack = list(wanted)
    while stack:
        i = stack.pop()
        if i in closure or i < 2:
            closure.add(i)
            continue
        closure.add(i)
        stack.extend(plan[i])
    out = {1: x}
    for i in sorted(k for k in closure if k >= 2):
        a, b = plan[i]
        out[i] = scheme.mul(out[a], out[b])
    return out


def polyval(scheme: "Scheme", x: "Ciphertext", coeffs: Sequence[float]) -> "Ciphertext":
    """``sum(coeffs[i] * x**i)`` element-wise; zero coefficients cost nothing."""
    c = np.asarray(coeffs, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise EncodingError("polynomial coefficients must be a non-empty 1-D sequence")
    if not np.all(np.isfinite(c)):
        raise EncodingError("polynomial coefficients contain NaN or infinity")
    nonzero = [i for i in range(1, c.size) if c[i] != 0.0]
    if not nonzero:
        return scheme.add_plain(scheme.mul_plain(x, 0.0), float(c[0]))
    pw = powers(scheme, x, max(nonzero), set(nonzero))
    acc = None
    for i in nonzero:
        term = scheme.mul_plain(pw[i], float(c[i]))
        acc = term if acc is None else scheme.add(acc, term)
    return scheme.add_plain(acc, float(c[0])) if c[0] != 0.0 else acc
