"""Scheme-agnostic circuits built only from the public scheme interface.

:func:`polyval` is the one polynomial evaluator: every scheme's ``polyval`` runs it,
with the :class:`PolyStyle` the scheme states (``Scheme.polyval_style``) for what
differs between schemes, and :func:`polyval_depth` says what it spends. The circuits:

* **Powers first** (the general case): every needed power at depth ``ceil(log2(i))``,
  then one plaintext product per non-zero coefficient: depth ``ceil(log2(d)) + 1``.
* **Folded powers** (``PolyStyle.fold``): ``c x^i = x^h (c x^l)`` down to ``c x``, the
  coefficient riding on a product the power needs anyway. A leveled scheme then spends
  no level on the coefficient alone: depth ``d.bit_length()``, one less than powers
  first unless ``d`` is a power of two.
* **Horner in the square** for polynomials with only odd (or only even) powers above the
  constant -- the usual shape of a sigmoid or tanh fit. With ``y = x^2``, an odd
  ``p(x) = c0 + x q(y)`` and an even ``p(x) = q(y)`` need ``q`` by Horner's rule: a
  degree-5 odd polynomial costs 3 ciphertext products and 1 plaintext product instead of
  4 and 3. Depth ``r + 2`` for odd degree ``2r + 1``, ``r + 1`` for even degree ``2r``:
  used only where that is no deeper than the powers (degrees 2 to 6 when not folding).
* **Odd split** (``PolyStyle.odd_split``, instead of Horner): an odd polynomial of degree
  5 or more is ``c0 + x q(x^2)`` with ``q`` evaluated by this same circuit, one product
  fewer than building every odd power; depth ``2 + depth(q)``.

A constant is ``0 * x + c0`` (one plaintext product, so the result is a ciphertext at the
depth the caller expects). Plans are cached per coefficient tuple and style, so a
training loop that calls ``polyval`` with the same few coefficient sets pays for the
validation and planning once.
"""
from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class PolyStyle:
    """How :func:`polyval` shapes its circuit for one scheme (see the module docstring).

    Attributes:
        fold: multiply each coefficient into the shallower factor of its power instead of
            scaling the finished power by a plaintext product. Worth it where a plaintext
            product costs a level of its own (a leveled scheme).
        odd_split: evaluate odd polynomials of degree >= 5 as ``c0 + x q(x^2)`` with ``q``
            by this same circuit; without it, odd and even polynomials take Horner's rule
            in ``x^2`` where that is no deeper than the powers.
    """

    fold: bool = False
    odd_split: bool = False


#: The style of a scheme that states none: powers first, Horner in the square.
GENERIC = PolyStyle()

_PLAN_CACHE: dict[tuple, tuple] = {}
_PLAN_CACHE_MAX = 256  # distinct (coefficients, style) pairs remembered (cleared when full)


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


def polyval_depth_bound(degree: int) -> int:
    """The depth the interface promises for a degree-``degree`` ``polyval``: ``ceil(log2(degree)) + 1``.

    The generic circuit spends exactly this; the folded one with the odd split at most this
    up to degree 10 (an odd polynomial of degree 11 or 15 whose ``q`` is odd again splits
    twice and spends one more). :func:`polyval_depth` is what a given circuit spends.
    """
    return (math.ceil(math.log2(degree)) if degree > 1 else 0) + 1


def polyval_depth(coeffs: Sequence[float], style: PolyStyle = GENERIC) -> int:
    """The multiplicative depth :func:`polyval` spends on ``coeffs`` in ``style``.

    Ciphertext and plaintext products count one each (a leveled scheme's levels; a scheme
    that gets some plaintext products for free may spend less). Zero coefficients do not
    count; a constant costs its one plaintext product.

    Raises:
        EncodingError: the coefficients are not a non-empty 1-D sequence of finite reals.
    """
    return _plan_depth(_plan(coeffs, style))


def _plan_depth(plan: tuple) -> int:
    kind = plan[0]
    if kind == "const":
        return 1
    if kind == "horner":  # y = x^2, one plaintext product, a product per further coefficient, x for odd
        _, odd, q, _ = plan
        return len(q) + odd
    if kind == "split":  # y = x^2, q(y), times x
        return 2 + _plan_depth(plan[1])
    degree = plan[2][-1][0]
    return degree.bit_length() if kind == "folded" else polyval_depth_bound(degree)


def _validated(coeffs: Sequence[float]) -> tuple[float, ...]:
    try:
        c = np.asarray(coeffs, dtype=np.float64)
    except (TypeError, ValueError) as e:  # strings, ragged lists, objects
        raise EncodingError(f"polynomial coefficients must be real numbers: {e}") from e
    if c.ndim != 1 or c.size == 0:
        raise EncodingError("polynomial coefficients must be a non-empty 1-D sequence")
    if not np.all(np.isfinite(c)):
        raise EncodingError("polynomial coefficients contain NaN or infinity")
    return tuple(float(v) for v in c)


def _make_plan(c: tuple[float, ...], style: PolyStyle) -> tuple:
    """How to evaluate ``c`` in ``style``: a tuple whose first entry names the circuit.

    ``("const", c0)``; ``("horner", odd, q, c0)`` with ``q`` the coefficients of ``q(y)``
    from the highest power down to its constant term (``c1`` for an odd polynomial, ``c0``
    for an even one); ``("split", plan of q, c0)``; ``("powers", order, terms, c0)`` or
    ``("folded", power_plan, terms, c0)`` with ``terms`` the non-zero ``(i, c_i)``, ``i >= 1``.
    """
    nonzero = [i for i in range(1, len(c)) if c[i] != 0.0]
    if not nonzero:
        return ("const", c[0])
    degree = max(nonzero)
    odd = all(i % 2 == 1 for i in nonzero)
    even = all(i % 2 == 0 for i in nonzero)
    terms = tuple((i, c[i]) for i in nonzero)
    if style.odd_split and odd and degree >= 5:
        return ("split", _make_plan(c[1::2], style), c[0])
    if style.fold:
        top = ("folded", power_plan(degree), terms, c[0])
    else:
        top = ("powers", _product_order(degree, set(nonzero)), terms, c[0])
    horner = ("horner", odd, tuple(c[i] for i in range(degree, -1, -2)), c[0])
    if not style.odd_split and degree >= 2 and (odd or even) and _plan_depth(horner) <= _plan_depth(top):
        return horner
    return top


def _plan(coeffs: Sequence[float], style: PolyStyle) -> tuple:
    try:
        key = (tuple(coeffs), style)
        plan = _PLAN_CACHE.get(key)
    except TypeError:  # unhashable entries: plan without caching (validation reports them)
        return _make_plan(_validated(coeffs), style)
    if plan is None:
        plan = _make_plan(_validated(coeffs), style)
        if len(_PLAN_CACHE) >= _PLAN_CACHE_MAX:
            _PLAN_CACHE.clear()
        _PLAN_CACHE[key] = plan
    return plan


def polyval(scheme: Arithmetic, x: Ciphertext, coeffs: Sequence[float], style: PolyStyle = GENERIC) -> Ciphertext:
    """``sum(coeffs[i] * x**i)`` element-wise in ``style``; zero coefficients cost nothing.

    Raises:
        EncodingError: the coefficients are not a non-empty 1-D sequence of finite reals.
    """
    return _run(scheme, x, _plan(coeffs, style))


def _run(scheme: Arithmetic, x: Ciphertext, plan: tuple) -> Ciphertext:
    kind = plan[0]
    if kind == "const":
        return scheme.add_plain(scheme.mul_plain(x, 0.0), plan[1])
    if kind == "horner":
        return _square_horner(scheme, x, *plan[1:])
    if kind == "split":
        out = scheme.mul(x, _run(scheme, scheme.mul(x, x), plan[1]))
        return scheme.add_plain(out, plan[2]) if plan[2] != 0.0 else out
    _, how, terms, c0 = plan
    term = _folded_terms(scheme, x, how) if kind == "folded" else _scaled_powers(scheme, x, how)
    acc = None
    for i, ci in terms:
        t = term(i, ci)
        acc = t if acc is None else scheme.add(acc, t)
    return scheme.add_plain(acc, c0) if c0 != 0.0 else acc


def _scaled_powers(scheme: Arithmetic, x: Ciphertext, order: list[tuple[int, int, int]]):
    """``term(i, c) = c x^i``: every needed power built first, then one plaintext product."""
    pw = {1: x}
    for i, a, b in order:
        pw[i] = scheme.mul(pw[a], pw[b])
    return lambda i, c: scheme.mul_plain(pw[i], c)


def _folded_terms(scheme: Arithmetic, x: Ciphertext, plan: dict[int, tuple[int, int]]):
    """``term(i, c) = c x^i`` as ``x^h (c x^l)``: the coefficient enters the shallower factor.

    Powers are built when first needed and kept for the next term.
    """
    pw = {1: x}

    def power(i: int) -> Ciphertext:
        if i not in pw:
            h, low = plan[i]
            pw[i] = scheme.mul(power(h), power(low))
        return pw[i]

    def term(i: int, c: float) -> Ciphertext:
        if i == 1:
            return scheme.mul_plain(x, c)
        h, low = plan[i]
        return scheme.mul(power(h), term(low, c))

    return term


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
