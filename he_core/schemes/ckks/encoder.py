"""CKKS encoding: the canonical embedding of N/2 complex slots, via numpy's FFT, and the encoder role.

Slot j holds m(zeta^(5^j)) with zeta = exp(i*pi/N). Writing b_i = m_i * zeta^i, the
values at all odd powers zeta^(2t+1) are N * ifft(b)[t]; encoding inverts that map on
the conjugate-symmetric vector whose entries at t_j = (5^j mod 2N - 1) / 2 are the slots
and whose entries at the conjugate points are their conjugates.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ...errors import EncodingError

# Rounded coefficients must fit int64 with room for the sign and later reductions.
MAX_COEFF = 2.0**62


@lru_cache(maxsize=None)
def _tables(n: int):
    j = np.arange(n // 2)
    exps = np.array([pow(5, int(k), 2 * n) for k in j], dtype=np.int64)
    pos = (exps - 1) // 2
    conj = (2 * n - exps - 1) // 2
    twist = np.exp(1j * np.pi * np.arange(n) / n)
    return pos, conj, twist


def encode(slots: np.ndarray, n: int, scale: float) -> np.ndarray:
    """Real or complex slot values (length N/2) to rounded int64 coefficients at ``scale``.

    Raises:
        EncodingError: wrong slot count, NaN/inf, or coefficients beyond 2^62.
    """
    z = np.asarray(slots)
    if z.shape != (n // 2,):
        raise EncodingError(f"cannot encode: {z.shape} values, need exactly {n // 2} slots")
    if not np.all(np.isfinite(z)):
        raise EncodingError("cannot encode: values contain NaN or infinity")
    if not (np.isfinite(scale) and scale > 0):
        raise EncodingError(f"cannot encode: invalid scale {scale}")
    pos, conj, twist = _tables(n)
    w = np.zeros(n, dtype=np.complex128)
    w[pos] = z
    w[conj] = np.conj(z)
    b = np.fft.fft(w) / n
    m = np.real(b * np.conj(twist)) * scale
    if not np.all(np.abs(m) < MAX_COEFF):
        raise EncodingError(f"cannot encode: values times scale 2^{np.log2(scale):.1f} exceed 2^62")
    return np.rint(m).astype(np.int64)


def encode_many(slots: np.ndarray, n: int, scale: float) -> np.ndarray:
    """:func:`encode` of each row of a (k, N/2) array in one batched FFT: (k, N) int64.

    Raises:
        EncodingError: as :func:`encode`.
    """
    z = np.asarray(slots)
    if z.ndim != 2 or z.shape[1] != n // 2:
        raise EncodingError(f"cannot encode: {z.shape} values, need (k, {n // 2}) slots")
    if not np.all(np.isfinite(z)):
        raise EncodingError("cannot encode: values contain NaN or infinity")
    if not (np.isfinite(scale) and scale > 0):
        raise EncodingError(f"cannot encode: invalid scale {scale}")
    pos, conj, twist = _tables(n)
    w = np.zeros((z.shape[0], n), dtype=np.complex128)
    w[:, pos] = z
    w[:, conj] = np.conj(z)
    m = np.real(np.fft.fft(w, axis=1) * (np.conj(twist) * (scale / n)))
    if not np.all(np.abs(m) < MAX_COEFF):
        raise EncodingError(f"cannot encode: values times scale 2^{np.log2(scale):.1f} exceed 2^62")
    return np.rint(m).astype(np.int64)


def decode(coeffs: np.ndarray, scale: float) -> np.ndarray:
    """Real-valued (float) coefficients at ``scale`` to the N/2 complex slot values."""
    m = np.asarray(coeffs, dtype=np.float64)
    n = m.shape[0]
    pos, _, twist = _tables(n)
    values = np.fft.ifft(m * twist) * n
    return values[pos] / scale


#: pi to the precision of the platform's long double (the string parses to it; float64's pi would not).
_PI_LONG = np.longdouble("3.14159265358979323846264338327950288419716939937510")
#: Unit roundoff of :func:`decode_precise` (2^-64 where long double is x87 extended precision).
LONG_EPS = float(np.finfo(np.longdouble).eps) / 2


@lru_cache(maxsize=8)
def _twist_long(n: int) -> np.ndarray:
    angle = _PI_LONG * np.arange(n, dtype=np.longdouble) / np.longdouble(n)
    return np.cos(angle) + 1j * np.sin(angle)


def decode_precise(coeffs: np.ndarray) -> np.ndarray:
    """:func:`decode` at scale 1 in the platform's long double (``clongdouble`` slot values).

    For a key holder's release: the error of a float64 decode is a deterministic function
    of the phase (noise included) and lies outside the flood's reach; here it is ~2^11
    times smaller (x87 extended precision) and bounded by :func:`decode_error_bound`.
    """
    m = np.asarray(coeffs, dtype=np.longdouble)
    n = m.shape[0]
    pos = _tables(n)[0]
    values = np.fft.ifft(m * _twist_long(n)) * np.longdouble(n)
    return values[pos]


def decode_error_bound(n: int, coeff_l2: float) -> float:
    """A bound on the L2 norm, over all N/2 slots, of :func:`decode_precise`'s error for coefficients of
    L2 norm at most ``coeff_l2`` (integer units).

    The transform has N ||x||_2^2 of energy; a radix-2 FFT's relative error in the L2 norm
    is at most log2(N) eta with eta about (4 sqrt 2 + 1) u for unit roundoff u (Higham,
    Accuracy and Stability of Numerical Algorithms, ch. 24); the twist, the lift of each
    coefficient to long double and the final scaling add a few u. Taken generously as
    (8 log2 N + 8) u. numpy's FFT is mixed-radix, so the constant is checked against
    high-precision decodes (tests), not proven for it.
    """
    return (8.0 * math.log2(n) + 8.0) * LONG_EPS * math.sqrt(n) * float(coeff_l2)


class PlaintextEncoder:
    """The encoder role: slot vectors to NTT-form plaintexts of one parameter set, with range checks.

    Args:
        ring: the ring whose primes the plaintexts live over.
        scales: the scale ladder (the range a value may take at a scale and level).
    """

    def __init__(self, ring, scales) -> None:
        self.ring, self.scales = ring, scales

    def encode(self, slotvec: np.ndarray, scale: float, nlimbs: int) -> np.ndarray:
        """Slot values to an NTT-form plaintext polynomial over the first ``nlimbs`` primes."""
        coeffs = encode(slotvec, self.ring.n, scale)
        return self.ring.ntt(self.ring.from_signed(coeffs, nlimbs))

    def encode_many(self, slotvecs: np.ndarray, scale: float, nlimbs: int) -> list[np.ndarray]:
        """:meth:`encode` of each row of a (k, slots) array (one batched FFT)."""
        coeffs = encode_many(slotvecs, self.ring.n, scale)
        return [self.ring.ntt(self.ring.from_signed(c, nlimbs)) for c in coeffs]

    def check_range(self, values: np.ndarray, scale: float, op: str, level: int | None = None) -> None:
        """Refuse values too large to decrypt once rescaled to level 0 (:meth:`ScaleLadder.max_value`).

        Raises:
            EncodingError: naming ``op``, the largest value and the limit.
        """
        top = float(np.max(np.abs(values))) if values.size else 0.0
        limit = self.scales.max_value(scale, level)
        if top >= limit:
            raise EncodingError(f"cannot {op}: |value| {top:.4g} is out of range for scale 2^{math.log2(scale):.1f} "
                                f"(must stay below {limit:.4g}: a quarter of q_0 "
                                f"at the scale it has once rescaled to level 0)")
