"""CKKS decryption: the phase c0 + c1 s (+ c2 s^2), lifted exactly, decoded to slots or read at coefficients.

A wrap modulo q (values too large for their scale) is refused as an overflow rather than
returned as wrong values. Released (noise-flooded) decryptions: :mod:`.release`.
"""
from __future__ import annotations

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import HEOverflowError
from . import encoder, layout
from .coeff_layout import coeff_positions, is_coeff
from .context import CkksContext


class Decryptor:
    """The decryptor role: exact phases and the values they decode to, for a secret key in NTT form.

    Args:
        ctx: the parameter set's objects (the ring's first two primes hold every decryption).
    """

    def __init__(self, ctx: CkksContext) -> None:
        self.ring = ctx.ring

    def decrypt(self, ct: Ciphertext, s_full: np.ndarray) -> np.ndarray:
        """The real values of ``ct`` (slot or coefficient packed).

        Raises:
            HEOverflowError: the phase is not a valid encoding (values outgrew the modulus).
        """
        if is_coeff(ct):
            return self.decrypt_coeff(ct, s_full)
        slots = self.decrypt_slots(ct, s_full)
        values = layout.unpack(slots, ct.rows, ct.size, ct.meta["stride"])
        # A wrap modulo q (values too large for the scale) leaves values beyond what the
        # decoding primes can hold, or (for irregular wraps) large imaginary parts, where
        # honest results of real inputs carry only noise.
        imag, real = float(np.max(np.abs(values.imag))), float(np.max(np.abs(values.real)))
        limit = self.decode_range(ct)
        if real >= limit or imag > 0.5 + 1e-3 * real:
            raise self.overflow(ct, real, limit, imag)
        return np.ascontiguousarray(values.real)

    def overflow(self, ct: Ciphertext, real: float, limit: float, imag: float = 0.0) -> HEOverflowError:
        """The error for a phase that is not a valid encoding (values outgrew the modulus)."""
        return HEOverflowError(f"cannot decrypt {ct.describe()}: the result is not a valid encoding "
                               f"(|values| up to {real:.3g}, imaginary parts up to {imag:.3g}); its values "
                               f"outgrew the modulus (about {limit:.3g} at level {layout.level(ct)})")

    def decode_range(self, ct: Ciphertext) -> float:
        """Largest |value| the decryption's CRT (q_0, or q_0 * q_1 above level 0) can represent."""
        modulus = float(self.ring.q[0]) * (float(self.ring.q[1]) if layout.level(ct) > 0 else 1.0)
        return modulus / (2.0 * ct.scale)

    def decrypt_coeff(self, ct: Ciphertext, s_full: np.ndarray) -> np.ndarray:
        """The values of a coefficient-packed batch, refusing a wrap as :meth:`decrypt` does."""
        polys = np.array(self.phases(ct, s_full))
        which, pos = coeff_positions(ct, self.ring.n)
        values = polys[which, pos] / ct.scale
        limit = self.decode_range(ct)
        top = float(np.max(np.abs(values))) if values.size else 0.0
        if not top < limit:
            raise self.overflow(ct, top, limit)
        return values

    def decrypt_slots(self, ct: Ciphertext, s_full: np.ndarray) -> np.ndarray:
        """Decrypt to the (nct, slots) complex slot vectors."""
        return np.array([encoder.decode(coeffs, ct.scale) for coeffs in self.phases(ct, s_full)])

    def phases(self, ct: Ciphertext, s_full: np.ndarray) -> list[np.ndarray]:
        """Each ciphertext's c0 + c1 s (+ c2 s^2 for a deferred product), as centred coefficients."""
        return [self.lift(m) for m in self.phase_limbs(ct, s_full)]

    def phase_limbs(self, ct: Ciphertext, s_full: np.ndarray) -> list[np.ndarray]:
        """Each ciphertext's phase c0 + c1 s (+ c2 s^2) in coefficient form, as RNS limbs (no lifting)."""
        r, nl = self.ring, ct.data.shape[2]
        s = np.ascontiguousarray(s_full[:nl])
        s2 = r.mul(s, s) if ct.data.shape[1] == 3 else None
        out = []
        for c in ct.data:
            m = r.add(np.ascontiguousarray(c[0]), r.mul(np.ascontiguousarray(c[1]), s))
            if s2 is not None:
                r.muladd(np.ascontiguousarray(c[2]), s2, m)
            out.append(r.intt(m))
        return out

    def lift_precise(self, m: np.ndarray) -> np.ndarray:
        """:meth:`lift` in the platform's long double: exact below 2^63 (int64 first; x87 extended holds every
        int64), else rounded once or twice at its unit roundoff (``encoder.LONG_EPS``)."""
        return self._lift(m, np.longdouble)

    def lift(self, m: np.ndarray) -> np.ndarray:
        """Centred integer coefficients (as float64) from limbs 0 and 1 (Garner's CRT)."""
        return self._lift(m, np.float64)

    def _lift(self, m: np.ndarray, dtype) -> np.ndarray:
        q0 = self.ring.q[0]
        r0 = m[0].astype(np.int64)
        if m.shape[0] == 1:
            return np.where(r0 > q0 // 2, r0 - q0, r0).astype(dtype)
        q1 = self.ring.q[1]
        diff = (m[1] + np.uint64(q1) - m[0] % np.uint64(q1)) % np.uint64(q1)
        t = self.ring.mul_scalar_limb(diff, pow(q0, -1, q1), 1).astype(np.int64)
        t = np.where(t > q1 // 2, t - q1, t)
        small = (t == 0) | (t == -1)  # |x| < q0: exact in int64
        exact = (r0 + np.int64(q0) * np.where(small, t, 0)).astype(dtype)
        return np.where(small, exact, r0.astype(dtype) + dtype(q0) * t.astype(dtype))
