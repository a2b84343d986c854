"""When two CKKS scales count as equal, and which scalar factors only change the recorded scale.

Integer factors that move a ciphertext down a level land within a relative 0.5 / factor
of their target scale, so scales are compared within a tolerance tied to the scale
(see :mod:`.arith` for the scale management these serve).
"""
from __future__ import annotations

# Two ciphertexts whose scales differ by less than this relative amount add as equals
# (the error this introduces is below the CKKS noise floor at 40-bit scales).
SCALE_TOLERANCE = 2.0**-30


def scale_tolerance(scale: float) -> float:
    """Relative scale difference below which two operands at ``scale`` add as equals.

    Treating scale (1 + d) * s as s changes a value v by v * d. With d <= 16 / s that is
    16 units of the encoding's rounding (1 / s) per unit of value, still 2^8 below the
    noise of a fresh encryption (about 2^12 / s at N = 8192, more after any product), so
    it costs no precision. The integer factor that moves a ciphertext down a level
    (``LevelAligner.adjust``) lands within 0.5 / factor, and the factor is about the prime size
    (times any free scalar folded into the scale), so small primes (e.g. 21 bits) need
    this looser bound; for large scales the fixed 2^-30 applies.

    Args:
        scale: the smaller of the two scales.

    Returns:
        The largest relative difference |a / b - 1| treated as equal.
    """
    return max(SCALE_TOLERANCE, 16.0 / scale)


def scales_match(a: float, b: float) -> bool:
    """Whether two scales are equal up to the rounding of the integer factors that produced them."""
    return abs(a / b - 1.0) <= scale_tolerance(min(a, b))


# Scalar factors of at least this magnitude (and at most its inverse) change only the recorded scale.
FREE_SCALAR_MIN = 2.0**-10


class ScaleLadder:
    """The working scale of every level of one parameter set: Delta_L = 2^scale_bits, Delta_{l-1} = Delta_l^2 / q_l.

    Args:
        params: a :class:`~he_core.schemes.ckks.params.CkksParams`.
        q: its ciphertext primes, as the ring holds them.
    """

    def __init__(self, params, q) -> None:
        scales = [0.0] * (params.levels + 1)
        scales[-1] = params.default_scale
        for level in range(params.levels, 0, -1):
            scales[level - 1] = scales[level] ** 2 / q[level]
        self._scales = scales
        self._q0, self._top = q[0], params.levels

    def at(self, level: int) -> float:
        """The working scale of ``level``."""
        return self._scales[level]

    def max_value(self, scale: float, level: int | None = None) -> float:
        """Largest |value| whose encoding decrypts correctly once rescaled down to q_0.

        Rescaling keeps a ciphertext's scale in the same ratio to its level's working scale,
        so at level 0 it is ``scale * Delta_0 / Delta_level`` (``level``: default the top,
        where fresh encryptions start). Chains whose floor primes are wider than their
        scaling primes reach level 0 at a smaller scale than they start with.
        """
        level = self._top if level is None else level
        return self._q0 / (4.0 * scale * self.at(0) / self.at(level))
