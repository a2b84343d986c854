"""Exact integer arithmetic on RNS coefficients: centred lift, base extension, scaled rounding.

The masked refresh decrypts a polynomial whose coefficients are ~100-bit integers
(value plus a wide mask) and re-encrypts a public map of them at another level and
scale. Floating point would lose the low bits that the mask cancellation relies on,
so everything here is exact, vectorised over coefficients, and built from the native
per-limb kernels:

* :func:`lift` writes a centred integer ``y`` (|y| < Q/2, known modulo q_0 .. q_l) as
  ``sum_i x_i * Q/q_i - k * Q`` with ``x_i = [y * (Q/q_i)^-1]_{q_i}`` and
  ``k = round(sum_i x_i / q_i)`` (the floating-point correction of Halevi, Polyakov and
  Shoup, exact here because |y| / Q <= 1/8 keeps that sum away from a half-integer);
* :meth:`Lifted.mod_prime` and :meth:`Lifted.mod_2_64` reduce it modulo any ring
  prime and modulo 2^64;
* :func:`scale_round` computes ``round(y * num / 2^50)`` modulo ring primes from those
  residues (num < 2^62), i.e. a change of scale by ``num / 2^50`` with exact rounding.

Every function has a Python-integer reference in the tests.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ...errors import ParameterError
from .ring import RnsRing

SCALE_SHIFT = 50  # ratios are applied as num / 2^50 (a relative error of at most 2^-50 / ratio)
_MASK = np.uint64((1 << SCALE_SHIFT) - 1)
_HALF = np.uint64(1 << (SCALE_SHIFT - 1))


def _padded(ring: RnsRing, v: np.ndarray) -> np.ndarray:
    out = np.zeros(ring.n, dtype=np.uint64)
    out[: v.size] = v
    return out


def mulmod(ring: RnsRing, v: np.ndarray, scalar: int, limb: int) -> np.ndarray:
    """``v * scalar`` modulo ring prime ``limb`` for a vector of any length (reduced inputs)."""
    n = ring.n
    out = np.empty(v.size, dtype=np.uint64)
    for lo in range(0, v.size, n):
        part = v[lo: lo + n]
        out[lo: lo + part.size] = ring.mul_scalar_limb(_padded(ring, part), scalar, limb)[: part.size]
    return out


def addmod(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    """(a + b) mod p for reduced uint64 inputs (p < 2^62, so the sum cannot wrap)."""
    s = a + b
    return np.where(s >= np.uint64(p), s - np.uint64(p), s)


def submod(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    """(a - b) mod p for reduced uint64 inputs."""
    return np.where(a >= b, a - b, a + (np.uint64(p) - b))


@dataclasses.dataclass
class Lifted:
    """Centred integers y = sum_i x_i * Q/q_i - k * Q, vectorised over coefficients.

    Attributes:
        ring: the ring whose first ``len(x)`` primes make up Q.
        x: (limbs, count) uint64, x_i < q_i.
        k: (count,) int64, the number of Q to subtract.
    """

    ring: RnsRing
    x: np.ndarray
    k: np.ndarray

    @property
    def primes(self) -> tuple[int, ...]:
        return self.ring.q[: self.x.shape[0]]

    def mod_prime(self, limb: int) -> np.ndarray:
        """y modulo ring prime ``limb`` (any prime of Q*P, inside or outside Q)."""
        p = (self.ring.q + self.ring.p)[limb]
        big_q = math.prod(self.primes)
        acc = np.zeros(self.x.shape[1], dtype=np.uint64)
        for i, q in enumerate(self.primes):
            term = mulmod(self.ring, self.x[i] % np.uint64(p), (big_q // q) % p, limb)
            acc = addmod(acc, term, p)
        k_mod = np.mod(self.k, p).astype(np.uint64)
        return submod(acc, mulmod(self.ring, k_mod, big_q % p, limb), p)

    def mod_2_64(self) -> np.ndarray:
        """y modulo 2^64 (two's complement), computed with wrapping uint64 arithmetic."""
        big_q = math.prod(self.primes)
        acc = np.zeros(self.x.shape[1], dtype=np.uint64)
        with np.errstate(over="ignore"):
            for i, q in enumerate(self.primes):
                acc += self.x[i] * np.uint64((big_q // q) % 2**64)
            acc -= self.k.astype(np.uint64) * np.uint64(big_q % 2**64)
        return acc

    def to_ints(self) -> list[int]:
        """The integers themselves (Python ints; tests and small reference computations)."""
        big_q = math.prod(self.primes)
        out = []
        for j in range(self.x.shape[1]):
            y = sum(int(self.x[i, j]) * (big_q // q) for i, q in enumerate(self.primes)) - int(self.k[j]) * big_q
            out.append(y)
        return out


def lift(ring: RnsRing, residues: np.ndarray) -> Lifted:
    """The centred integers with the given residues modulo q_0 .. q_{l} (coefficient form).

    Args:
        ring: the ring.
        residues: (limbs, count) uint64, each row reduced modulo its prime.

    Exact when |y| <= Q/8 (the caller guarantees it: a masked refresh keeps two bits
    of room below Q/2); above that the result may be off by a multiple of Q.
    """
    nl = residues.shape[0]
    if not 1 <= nl <= len(ring.q) or residues.dtype != np.uint64 or residues.ndim != 2:
        raise ParameterError(f"cannot lift residues of shape {residues.shape} and dtype {residues.dtype}")
    primes = ring.q[:nl]
    big_q = math.prod(primes)
    x = np.empty_like(residues)
    frac = np.zeros(residues.shape[1], dtype=np.float64)
    for i, q in enumerate(primes):
        x[i] = mulmod(ring, residues[i], pow(big_q // q % q, -1, q), i)
        frac += x[i].astype(np.float64) / float(q)
    k = np.floor(frac + 0.5).astype(np.int64)
    return Lifted(ring, x, k)


def scale_ratio(target: float, source: float) -> int:
    """``num`` with num / 2^50 equal to target / source to 2^-50 (for :func:`scale_round`).

    Raises:
        ParameterError: a ratio outside [2^-20, 2^11] (the caller bounds scales; this
            keeps num below 2^62, and above 2^30 so the ratio keeps 30 bits).
    """
    ratio = float(target) / float(source)
    if not (2.0**-20 <= ratio <= 2.0**11):
        raise ParameterError(f"cannot change scale by {ratio:.4g}: outside [2^-20, 2^11]")
    return int(round(ratio * 2**SCALE_SHIFT))


def scale_round(ring: RnsRing, mod_p: dict[int, np.ndarray], mod_2_64: np.ndarray, num: int) -> dict[int, np.ndarray]:
    """``floor((y * num + 2^49) / 2^50)`` modulo each prime in ``mod_p`` (a dict limb -> y mod p).

    ``mod_2_64`` is y modulo 2^64: the low 50 bits of y * num + 2^49 come from it, and
    subtracting them makes the division by 2^50 exact in every residue field.
    """
    if not 0 < num < 2**62:
        raise ParameterError(f"cannot scale by num = {num}: need 0 < num < 2^62")
    with np.errstate(over="ignore"):
        low = (mod_2_64 * np.uint64(num) + _HALF) & _MASK
    out = {}
    primes = ring.q + ring.p
    for limb, y in mod_p.items():
        p = primes[limb]
        t = addmod(mulmod(ring, y, num % p, limb), np.full(y.size, (1 << (SCALE_SHIFT - 1)) % p, np.uint64), p)
        t = submod(t, low % np.uint64(p), p)
        out[limb] = mulmod(ring, t, pow(1 << SCALE_SHIFT, -1, p), limb)
    return out
