"""Exact re-encoding between coefficient positions and a sparse, replicated slot packing.

A batch of B values read at coefficient positions ``b * N/B`` of one polynomial is
re-encoded as the polynomial whose N/2 slots hold them replicated (slot j holds value
``j mod B``), and back. With the encoder's convention (slot j is m(zeta^(5^j)), zeta =
exp(i pi / N)) that polynomial only has coefficients at multiples of s = N/(2B): writing
m(X) = p(X^s), slot j is p(w^(5^j mod 4B)) with w = zeta^s = exp(i pi / 2B), and 5 has
order B modulo 4B, so the slots repeat with period B in j. The period is in the
exponent index j, not in blocks of adjacent slots: a block layout would not be sparse.
Both maps are then the CKKS encoding in the ring of degree 2B (O(B^2) operations,
independent of N apart from where the coefficients sit):

    c_k = (1/B) * sum_b v_b cos(pi e_b k / 2B),    Re(slot b) = sum_k c_k cos(pi e_b k / 2B),

with e_b = 5^b mod 4B. Real slots make c_{2B-k} = -c_k and c_B = 0, so only k < B is computed.

Why exact integers: a key holder and a trainer apply the same public map to a masked
value M and to its mask m (~2^120, far beyond float64) and subtract. That cancels only
if both round identically and the map is linear before rounding. So the cosines are
rounded once to integers at scale 2^TABLE_BITS by integer-only series (no floats, no
libm, hence identical on every machine), sums and products are exact Python integers
and the scale ratio is the exact rational of the float scales; each output is rounded
once, half away from zero. Then map(M) - map(m) - map(M - m) is -1, 0 or +1 per output.
"""
from __future__ import annotations

import math
import numbers
from fractions import Fraction
from functools import lru_cache
from operator import mul

from ...errors import EncodingError, ParameterError

#: Cosines are integers at scale 2^TABLE_BITS: far below one output unit for ~2^125 inputs.
TABLE_BITS = 256
# Extra bits for the series, so the table is the correctly rounded cosine but for ties within 2^-50 unit.
_GUARD_BITS = 64


def _round_div(num: int, den: int) -> int:
    """num / den (den > 0) rounded to the nearest integer, halves away from zero (symmetric in sign)."""
    q, r = divmod(abs(num), den)
    if 2 * r >= den:
        q += 1
    return q if num >= 0 else -q


def _atan_inv(x: int, bits: int) -> int:
    """atan(1/x) * 2^bits (x >= 2) by its alternating series, floor-truncated at every term."""
    power = (1 << bits) // x
    total, k, x2 = power, 1, x * x
    while power:
        power //= x2
        term = power // (2 * k + 1)
        total += -term if k % 2 else term
        k += 1
    return total


def _pi_fixed(bits: int) -> int:
    """pi * 2^bits (within a few units), Machin's formula pi = 16 atan(1/5) - 4 atan(1/239)."""
    extra = 16  # absorbs the per-term truncations of the two series
    return (16 * _atan_inv(5, bits + extra) - 4 * _atan_inv(239, bits + extra)) >> extra


def _cos_fixed(x: int, bits: int) -> int:
    """cos(x / 2^bits) * 2^bits for 0 <= x / 2^bits <= pi/2, by its Taylor series."""
    x2 = (x * x) >> bits
    term = total = 1 << bits
    k = 1
    while term:
        term = -(term * x2 >> bits) // ((2 * k - 1) * (2 * k))
        total += term
        k += 1
    return total


@lru_cache(maxsize=32)
def _cos_table(batch: int) -> tuple[int, ...]:
    """round(2^TABLE_BITS * cos(pi u / 2B)) for u < 4B (the index taken modulo 4B)."""
    bits = TABLE_BITS + _GUARD_BITS
    pi = _pi_fixed(bits)
    # one series per angle in [0, pi/2]; the rest of the circle follows by symmetry, exactly
    quarter = [_round_div(_cos_fixed(pi * u // (2 * batch), bits), 1 << _GUARD_BITS) for u in range(batch + 1)]
    table = []
    for u in range(4 * batch):
        w = u if u <= 2 * batch else 4 * batch - u       # cos(2 pi - a) = cos a
        table.append(quarter[w] if w <= batch else -quarter[2 * batch - w])  # cos(pi - a) = -cos a
    return tuple(table)


@lru_cache(maxsize=32)
def _exponents(batch: int) -> tuple[int, ...]:
    """e_b = 5^b mod 4B: slot b of the degree-2B ring sits at w^(e_b)."""
    return tuple(pow(5, b, 4 * batch) for b in range(batch))


def _check_ring(n) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2 or n & (n - 1):
        raise ParameterError(f"cannot re-encode: ring degree {n!r} is not a power of two >= 2")
    return int(n)


def _check_batch(batch, n: int) -> int:
    if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1 or batch & (batch - 1):
        raise EncodingError(f"cannot re-encode: batch {batch!r} is not a power of two >= 1")
    if batch > n // 2:
        raise EncodingError(f"cannot re-encode: batch {batch} exceeds the {n // 2} slots of degree {n}")
    return int(batch)


def _check_ints(values, what: str) -> list[int]:
    try:
        items = list(values)
    except TypeError:
        raise EncodingError(f"cannot re-encode: {what} must be a sequence of integers, "
                            f"got {type(values).__name__}") from None
    for i, v in enumerate(items):
        # floats are refused, not rounded: a silently rounded mask would break the cancellation
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise EncodingError(f"cannot re-encode: {what}[{i}] is {type(v).__name__}, need an integer")
    return [int(v) for v in items]


def _check_scale(scale, what: str) -> Fraction:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale <= 0:
        raise EncodingError(f"cannot re-encode: {what} {scale!r} is not a finite positive number")
    return Fraction(scale)  # the exact rational a float is, so both parties get the same ratio


def _apply(inputs: list[int], rows: int, batch: int, ratio: Fraction, transpose: bool) -> list[int]:
    """round(ratio * sum_i inputs_i cos(pi e k / 2B)) for each of ``rows`` outputs.

    The sum runs over b (e = e_b, output index k) or, with ``transpose``, over k (output
    index b): the two maps share one table and one rounding rule.
    """
    table, exps, wrap = _cos_table(batch), _exponents(batch), 4 * batch - 1
    num, den = ratio.numerator, ratio.denominator << TABLE_BITS
    out = []
    for r in range(rows):
        if transpose:
            row = [table[(exps[r] * k) & wrap] for k in range(len(inputs))]
        else:
            row = [table[(e * r) & wrap] for e in exps]
        out.append(_round_div(sum(map(mul, inputs, row)) * num, den))
    return out


def coeffs_to_slots(values, n: int, scale_in: float, scale_out: float) -> list[int]:
    """The plaintext encoding ``values / scale_in`` replicated over all slots, at ``scale_out``.

    Args:
        values: B integers (B a power of two, 1 <= B <= n/2), the coefficients at positions
            ``b * n/B`` of a polynomial at scale ``scale_in``.
        n: the ring degree.
        scale_in: the scale of ``values`` (taken as the exact rational it is).
        scale_out: the scale of the returned polynomial.

    Returns:
        The n coefficients (Python ints) of the polynomial whose slot j holds
        ``values[j mod B] / scale_in``, at ``scale_out``; non-zero only at multiples of
        n/(2B). Each is the exact value rounded half away from zero, up to the table's
        error (B * max|values| * 2^-TABLE_BITS * scale_out / scale_in).

    Raises:
        ParameterError: n is not a power of two.
        EncodingError: B not a power of two or above n/2, a non-integer value, a bad scale.
    """
    n = _check_ring(n)
    ints = _check_ints(values, "values")
    batch = _check_batch(len(ints), n)
    ratio = _check_scale(scale_out, "scale_out") / (_check_scale(scale_in, "scale_in") * batch)
    half = _apply(ints, batch, batch, ratio, transpose=False)
    out, step = [0] * n, n // (2 * batch)
    for k, c in enumerate(half):
        out[k * step] = c
        if k:
            out[(2 * batch - k) * step] = -c  # real slots: c_{2B-k} = -c_k exactly
    return out


def slots_to_coeffs(coeffs, n: int, batch: int, scale_in: float, scale_out: float) -> list[int]:
    """The real parts of a replicated slot vector, as B integers at ``scale_out``.

    Args:
        coeffs: the 2B integer coefficients at positions ``k * n/(2B)`` (k < 2B) of a
            polynomial at scale ``scale_in``; the other coefficients are not read.
        n: the ring degree (the result does not depend on it; it bounds ``batch``).
        batch: B, the period of the replication (a power of two, 1 <= B <= n/2).
        scale_in: the scale of ``coeffs``.
        scale_out: the scale of the result.

    Returns:
        B Python ints, ``round(Re(slot b) * scale_out)`` half away from zero, meant for
        coefficient positions ``b * n/B``. For a polynomial that is not exactly sparse this
        is the mean of Re(slot j) over the n/(2B) slots j = b mod B: the coefficients off
        the multiples of n/(2B) cancel in that mean.

    Raises:
        ParameterError: n is not a power of two.
        EncodingError: bad batch, ``coeffs`` not 2B integers, a bad scale.
    """
    n = _check_ring(n)
    batch = _check_batch(batch, n)
    ints = _check_ints(coeffs, "coeffs")
    if len(ints) != 2 * batch:
        raise EncodingError(f"cannot re-encode: {len(ints)} coefficients, need 2 * batch = {2 * batch}")
    ratio = _check_scale(scale_out, "scale_out") / _check_scale(scale_in, "scale_in")
    # cos(pi e (2B - k) / 2B) = -cos(pi e k / 2B) and cos(pi e / 2) = 0 (e odd): fold onto k < B
    folded = [ints[0]] + [ints[k] - ints[2 * batch - k] for k in range(1, batch)]
    return _apply(folded, batch, batch, ratio, transpose=True)
