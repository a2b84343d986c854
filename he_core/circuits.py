"""Scheme-agnostic circuits built only from the public scheme interface.

:func:`polyval` evaluates a polynomial element-wise with multiplicative depth at most
``ceil(log2(degree)) + 1`` (products plus one plaintext scaling). Two circuits:

* **Horner in the square** for polynomials with only odd (or only even) powers above the
  constant -- the usual shape of a sigmoid or tanh fit. With ``y = x^2``, an odd
  ``p(x) = c0 + x q(y)`` and an even ``p(x) = q(y)`` need ``q`` by Horner's rule: a
  degree-5 odd polynomial costs 3 ciphertext products and 1 plaintext product instead of
  4 and 3. Used only where its depth (``r + 2`` for odd degree ``2r + 1``, ``r + 1``
  for even degree ``2r``) stays within the bound above, i.e. degrees 2 to 6.
* **Powers first** (the general case): every needed power at depth ``ceil(log2(i))``,
  then one plaintext product per non-zero coefficient.

Plans are cached per coefficient tuple, so a training loop that calls ``polyval`` with
the same few coefficient sets pays for the validation and planning once.
"""
from __future__ import annotations

import math
from typing import Any, Protocol, Sequence

import numpy as np

from .ciphertext import Ciphertext
from .errors import EncodingError


class Arithmetic(Protocol):
    """What a circuit here needs of a scheme: sums and products (a :class:`he_core.Scheme` that multiplies).

    Written as a protocol so that this module sits below the scheme interface: a
    scheme's ``polyval`` calls down into it, and nothing here calls up.
    """

    def add(self, a: Ciphertext, b: Ciphertext) -> Ciphertext: ...

    def add_plain(self, a: Ciphertext, values: Any) -> Ciphertext: ...

    def mul(self, a: Ciphertext, b: Ciphertext) -> Ciphertext: ...

    def mul_plain(self, a: Ciphertext, values: Any) -> Ciphertext: ...

_PLAN_CACHE: dict[tuple, tuple] = {}
_PLAN_CACHE_MAX = 256  # distinct coefficient sets remembered (cleared when full)


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


def _product_order(degree: int, needed: set[int]) -> list[tuple[int, int, int]]:
    """The products ``(i, a, b)`` (x^i = x^a x^b) that build the ``needed`` powers, factors first."""
    plan = power_plan(degree)
    closure: set[int] = set()
    stack = list(needed)
    while stack:
        i = stack.pop()
        if i in closure:
            continue
        closure.add(i)
        if i >= 2:
            stack.extend(plan[i])
    return [(i, *plan[i]) for i in sorted(k for k in closure if k >= 2)]


def powers(scheme: Arithmetic, x: Ciphertext, degree: int, needed: set[int] | None = None) -> dict[int, Ciphertext]:
    """Encrypted powers x^1 .. x^degree (only those ``needed`` and their factors)."""
    wanted = set(range(1, degree + 1)) if needed is None else set(needed)
    out = {1: x}
    for i, a, b in _product_order(degree, wanted):
        out[i] = scheme.mul(out[a], out[b])
    return out


def square_horner_depth(degree: int) -> int:
    """Multiplicative depth of Horner's rule in ``y = x^2`` for a degree-``degree`` odd/even polynomial."""
    r = degree // 2
    return r + 2 if degree % 2 else r + 1


def polyval_depth_bound(degree: int) -> int:
    """The depth :func:`polyval` promises: ``ceil(log2(degree)) + 1`` (1 for degree 0 or 1)."""
    return (math.ceil(math.log2(degree)) if degree > 1 else 0) + 1


def _validated(coeffs: Sequence[float]) -> tuple[float, ...]:
    c = np.asarray(coeffs, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise EncodingError("polynomial coefficients must be a non-empty 1-D sequence")
    if not np.all(np.isfinite(c)):
        raise EncodingError("polynomial coefficients contain NaN or infinity")
    return tuple(float(v) for v in c)


def _make_plan(c: tuple[float, ...]) -> tuple:
    """How to evaluate ``c``: ``("const", c0)``, ``("square", odd, q, c0)`` or ``("powers", order, terms, c0)``.

    For the square plan ``q`` lists the coefficients of ``q(y)`` from the highest power
    down to its constant term (``c1`` for an odd polynomial, ``c0`` for an even one).
    """
    nonzero = [i for i in range(1, len(c)) if c[i] != 0.0]
    if not nonzero:
        return ("const", c[0])
    degree = max(nonzero)
    odd = all(i % 2 == 1 for i in nonzero)
    even = all(i % 2 == 0 for i in nonzero)
    if degree >= 2 and (odd or even) and square_horner_depth(degree) <= polyval_depth_bound(degree):
        return ("square", odd, tuple(c[i] for i in range(degree, -1, -2)), c[0])
    order = _product_order(degree, set(nonzero))
    return ("powers", order, tuple((i, c[i]) for i in nonzero), c[0])


def _plan(coeffs: Sequence[float]) -> tuple:
    try:
        key = tuple(coeffs)
        plan = _PLAN_CACHE.get(key)
    except TypeError:  # unhashable entries: plan without caching (validation reports them)
        return _make_plan(_validated(coeffs))
    if plan is None:
        plan = _make_plan(_validated(coeffs))
        if len(_PLAN_CACHE) >= _PLAN_CACHE_MAX:
            _PLAN_CACHE.clear()
        _PLAN_CACHE[key] = plan
    return plan


def polyval(scheme: Arithmetic, x: Ciphertext, coeffs: Sequence[float]) -> Ciphertext:
    """``sum(coeffs[i] * x**i)`` element-wise; zero coefficients cost nothing.

    Raises:
        EncodingError: the coefficients are not a non-empty 1-D sequence of finite reals.
    """
    plan = _plan(coeffs)
    kind = plan[0]
    if kind == "const":
        return scheme.add_plain(scheme.mul_plain(x, 0.0), plan[1])
    if kind == "square":
        return _square_horner(scheme, x, *plan[1:])
    _, order, terms, c0 = plan
    pw = {1: x}
    for i, a, b in order:
        pw[i] = scheme.mul(pw[a], pw[b])
    acc = None
    for i, ci in terms:
        term = scheme.mul_plain(pw[i], ci)
        acc = term if acc is None else scheme.add(acc, term)
    return scheme.add_plain(acc, c0) if c0 != 0.0 else acc


def _square_horner(scheme: Arithmetic, x: Ciphertext, odd: bool, q: tuple[float, ...], c0: float) -> Ciphertext:
    """Odd: ``c0 + x q(x^2)``; even: ``q(x^2)`` (whose constant term is ``c0``).

    ``q`` holds q's coefficients from the highest power down (at least two; the first is
    non-zero). Horner: ``t = q[0] y + q[1]``, then ``t = t y + q[j]`` for the rest.
    """
    y = scheme.mul(x, x)
    t = scheme.mul_plain(y, q[0])
    for j in range(1, len(q)):
        if j > 1:
            t = scheme.mul(t, y)
        if q[j] != 0.0:
            t = scheme.add_plain(t, q[j])
    if not odd:
        return t
    t = scheme.mul(t, x)
    return scheme.add_plain(t, c0) if c0 != 0.0 else t
