"""Noise flooding: how much noise a decryption that leaves the key holder must carry.

An approximate scheme (CKKS) decrypts to ``value + e``, where ``e`` is the noise of the
ciphertext. Publishing ``value + e`` together with the ciphertext gives away the
secret key (Li and Micciancio, EUROCRYPT 2021: the phase ``c0 + c1 s`` is then known,
and ``s`` follows by one division in the NTT domain). Every decryption that leaves
the key holder therefore adds fresh Gaussian *flooding* noise that hides ``e``.

Sizing follows the differential-privacy analysis of Li, Micciancio, Schultz and
Sorrell (CRYPTO 2022) in the form OpenFHE's ``NOISE_FLOODING_DECRYPT`` mode uses:

    sigma = sqrt(12 * q) * 2^(lambda / 2) * B

where ``B`` bounds the noise *vector* a release shows, ``||e||_2`` over every coefficient
it decodes (here: an analytic high-probability bound, where OpenFHE measures the noise
in the canonical embedding, whose largest slot bounds the same norm). The flood is the
Gaussian mechanism on that vector: its privacy loss grows with ``||e||_2 / sigma``, so a
bound on one coefficient (about ``sqrt(N)`` times smaller for white noise) would leave
about ``log2 N`` bits fewer than ``lambda``. ``q`` is the number of decryptions an
adversary sees under the key (the *release budget* of a job) and ``lambda`` the
statistical security parameter (30 by default, as OpenFHE's default; configurable
upward). The noise is added in the
coefficient domain, as integers, before decoding. The released values are then
rounded to a power-of-two grid at or below the flooding noise's standard deviation
(the bits below it are noise), which also removes the last float digits an
attacker could try to exploit.

Assumptions, stated where they are used: the noise bound holds (the estimate is
analytic and tested as an upper bound); the adversary sees at most ``q`` released
decryptions under the key; each release floods independently.
"""
from __future__ import annotations

import dataclasses
import math

from .errors import ParameterError

#: The statistical security of the flooding by default (OpenFHE's default).
DEFAULT_STATISTICAL_BITS = 30
#: A released *model* (a tensor of weights) must keep at least this many bits of precision
#: relative to its largest value; single released values (a logit, an aggregate) are
#: reported with their absolute error instead, since a value near 0 has no relative precision.
MIN_PRECISION_BITS = 16


@dataclasses.dataclass(frozen=True)
class Flooding:
    """The flooding applied to one released decryption.

    Attributes:
        statistical_bits: lambda, the statistical security of the flooding (>= 30).
        queries: q, how many released decryptions the adversary may see under this key
            in all (a job's release budget); the noise grows with sqrt(q).
        min_precision_bits: refuse a release that would keep fewer bits of precision,
            relative to the largest released value (0, the default, only reports it;
            releasing a model asks for :data:`MIN_PRECISION_BITS`).

    Raises:
        ParameterError: lambda below 30, q < 1, or a negative precision.
    """

    statistical_bits: int = DEFAULT_STATISTICAL_BITS
    queries: int = 1
    min_precision_bits: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.statistical_bits, bool) or not isinstance(self.statistical_bits, int) \
                or not 30 <= self.statistical_bits <= 128:
            raise ParameterError(f"cannot flood: statistical_bits must be an integer in 30 .. 128, "
                                 f"got {self.statistical_bits!r}")
        if isinstance(self.queries, bool) or not isinstance(self.queries, int) or self.queries < 1:
            raise ParameterError(f"cannot flood: queries must be a positive integer, got {self.queries!r}")
        if not (self.min_precision_bits >= 0 and math.isfinite(self.min_precision_bits)):
            raise ParameterError(f"cannot flood: min_precision_bits must be >= 0, got {self.min_precision_bits!r}")

    @property
    def factor_log2(self) -> float:
        """log2 of sqrt(12 q) * 2^(lambda / 2): flooding sigma / noise bound."""
        return 0.5 * math.log2(12.0 * self.queries) + self.statistical_bits / 2.0

    def sigma(self, noise_bound: float) -> float:
        """Standard deviation of the flooding noise for a bound ``B`` on the released noise's L2 norm (same units)."""
        if not (noise_bound >= 0 and math.isfinite(noise_bound)):
            raise ParameterError(f"cannot flood: the noise bound must be finite and >= 0, got {noise_bound!r}")
        return max(noise_bound, 1.0) * 2.0 ** self.factor_log2

    def describe(self) -> dict:
        """The flooding's assumptions as a JSON-ready dict (for run reports and docs)."""
        return {"statistical_bits": self.statistical_bits, "queries": self.queries,
                "sigma_over_bound_log2": round(self.factor_log2, 2),
                "formula": "sigma = sqrt(12 q) 2^(lambda/2) B, B >= ||e||_2 of the released values' noise "
                           "(Li-Micciancio-Schultz-Sorrell 2022, as OpenFHE)",
                "min_precision_bits": self.min_precision_bits}


def release_grid(sigma_value: float) -> float:
    """The power of two at or below ``sigma_value``: released values are rounded to multiples of it."""
    if not sigma_value > 0:
        return 0.0
    return 2.0 ** math.floor(math.log2(sigma_value))


def precision_bits(largest: float, sigma_value: float) -> float:
    """Bits of precision of released values relative to the largest one: log2(largest / sigma)."""
    if sigma_value <= 0:
        return math.inf
    if largest <= 0:
        return 0.0
    return math.log2(largest / sigma_value)
