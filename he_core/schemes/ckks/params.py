"""CKKS parameter sets, their security level and a helper that picks one."""
from __future__ import annotations

import dataclasses
import math
import warnings
from functools import cached_property

from ...errors import InsecureParametersError, ParameterError, SecurityWarning
from ...params import Parameters
from .primes import ntt_primes

# HomomorphicEncryption.org standard (2018), ternary secrets, classical attacks:
# the largest log2(QP) for each ring dimension at 128, 192 and 256 bits of security.
HE_STANDARD_MAX_LOGQP = {
    128: {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881, 65536: 1761},
    192: {1024: 19, 2048: 37, 4096: 75, 8192: 152, 16384: 305, 32768: 611, 65536: 1228},
    256: {1024: 14, 2048: 29, 4096: 58, 8192: 118, 16384: 237, 32768: 476, 65536: 956},
}


@dataclasses.dataclass(frozen=True)
class CkksParams(Parameters):
    """An RNS-CKKS parameter set.

    The ciphertext modulus is Q = q_0 * q_1 * ... * q_levels (q_0 of ``first_bits``,
    the others of about ``scale_bits`` so that rescaling by them keeps the scale near
    2^scale_bits); key switching adds ``ceil((levels + 1) / dnum)`` special primes of
    ``special_bits``.

    Attributes:
        poly_degree: ring dimension N (power of two, 1024 .. 65536); N/2 slots.
        levels: number of rescalings available (multiplicative depth).
        first_bits, scale_bits, special_bits: prime sizes in bits.
        dnum: number of key-switching digits (default: levels + 1, one prime per digit).
        floor_levels, floor_bits: the first ``floor_levels`` of the ``levels`` scaling
            primes (q_1 ..) have ``floor_bits`` instead: levels kept below a computation
            for masked refresh, where a wider modulus holds a wider mask (never rescaled
            by in normal use). Omitted from :meth:`to_dict` while ``floor_levels`` is 0.
        secret: ``"ternary"`` (uniform in {-1, 0, 1}) or ``"hamming"`` (fixed weight).
        hamming_weight: number of non-zero secret coefficients for ``"hamming"``.
        sigma: standard deviation of the error distribution.
        allow_insecure: accept a set below 128-bit security (emits SecurityWarning).

    Raises:
        ParameterError: for malformed values.
        InsecureParametersError: below 128 bits without ``allow_insecure=True``.
    """

    scheme = "ckks"
    poly_degree: int = 8192
    levels: int = 2
    first_bits: int = 60
    scale_bits: int = 40
    special_bits: int = 60
    dnum: int | None = None
    floor_levels: int = 0
    floor_bits: int = 61
    secret: str = "ternary"
    hamming_weight: int = 64
    sigma: float = 3.2
    allow_insecure: bool = False

    def __post_init__(self) -> None:
        n = self.poly_degree
        if not isinstance(n, int) or n < 1024 or n > 65536 or n & (n - 1):
            raise ParameterError(f"cannot use poly_degree={n!r}: need a power of two in [1024, 65536]")
        if not 1 <= self.levels <= 60:
            raise ParameterError(f"cannot use levels={self.levels}: need 1 .. 60")
        if not 20 <= self.scale_bits < self.first_bits <= 61:
            raise ParameterError(f"cannot use prime sizes: need 20 <= scale_bits ({self.scale_bits}) "
                                 f"< first_bits ({self.first_bits}) <= 61")
        if not self.first_bits <= self.special_bits <= 61:
            raise ParameterError(f"cannot use special_bits={self.special_bits}: need first_bits .. 61")
        if not 0 <= self.floor_levels < self.levels or not self.scale_bits <= self.floor_bits <= 61:
            raise ParameterError(f"cannot use floor_levels={self.floor_levels}, floor_bits={self.floor_bits}: need "
                                 f"0 <= floor_levels < levels ({self.levels}) and scale_bits <= floor_bits <= 61")
        dnum = self.levels + 1 if self.dnum is None else self.dnum
        if not 1 <= dnum <= min(self.levels + 1, 32):
            raise ParameterError(f"cannot use dnum={self.dnum}: need 1 .. min(levels + 1, 32)")
        if self.secret not in ("ternary", "hamming"):
            raise ParameterError(f"cannot use secret={self.secret!r}: 'ternary' or 'hamming'")
        if self.secret == "hamming" and not 1 <= self.hamming_weight <= n:
            raise ParameterError(f"cannot use hamming_weight={self.hamming_weight}")
        if not 0.5 <= self.sigma <= 20:
            raise ParameterError(f"cannot use sigma={self.sigma}")
        self._check_security()

    def _check_security(self) -> None:
        if self.security_bits >= 128:
            return
        msg = (f"CKKS parameters N={self.poly_degree}, log2(QP)={self.log_qp:.1f} give less than 128-bit "
               f"security (max {HE_STANDARD_MAX_LOGQP[128][self.poly_degree]} bits for this N)")
        if not self.allow_insecure:
            raise InsecureParametersError(msg + "; pass allow_insecure=True for tests only")
        warnings.warn(msg, SecurityWarning, stacklevel=3)

    # ------------------------------------------------------------------ derived values
    @property
    def digits(self) -> int:
        return self.levels + 1 if self.dnum is None else self.dnum

    @property
    def alpha(self) -> int:
        """Primes per key-switching digit (and number of special primes)."""
        return -(-(self.levels + 1) // self.digits)

    @cached_property
    def q_primes(self) -> tuple[int, ...]:
        """Ciphertext primes q_0 .. q_levels (q_0 first)."""
        n = self.poly_degree
        first = ntt_primes(self.first_bits, n, 1)
        floor = ntt_primes(self.floor_bits, n, self.floor_levels, frozenset(first)) if self.floor_levels else []
        middle = ntt_primes(self.scale_bits, n, self.levels - self.floor_levels, frozenset(first + floor),
                            around=True)
        # Rescaling drops the last prime first, so middle[0] (nearest to 2^scale_bits) goes last.
        return tuple(first + floor + middle[::-1])

    def to_dict(self) -> dict:
        values = super().to_dict()
        if not self.floor_levels:  # sets without a floor keep the identifiers they always had
            del values["floor_levels"], values["floor_bits"]
        return values

    @cached_property
    def p_primes(self) -> tuple[int, ...]:
        """Special primes used only inside key switching."""
        return tuple(ntt_primes(self.special_bits, self.poly_degree, self.alpha, frozenset(self.q_primes)))

    @property
    def log_qp(self) -> float:
        return sum(math.log2(p) for p in self.q_primes + self.p_primes)

    @property
    def slots(self) -> int:
        return self.poly_degree // 2

    @property
    def default_scale(self) -> float:
        return float(2 ** self.scale_bits)

    @property
    def security_bits(self) -> int:
        """128, 192 or 256 when the HE standard table allows log2(QP) at N; else 0.

        Uniform ternary secrets use the table. A Hamming-weight secret reports 128 only
        where a published estimate covers it (:data:`SPARSE_SECRET_128`), else 0. The
        table assumes an error of standard deviation about 3.2: a narrower one reports 0.
        """
        if self.sigma < MIN_SIGMA:
            return 0
        if self.secret == "hamming":
            limit = SPARSE_SECRET_128.get((self.poly_degree, self.hamming_weight))
            return 128 if limit is not None and math.ceil(self.log_qp) <= limit else 0
        best = 0
        for level in (128, 192, 256):
            if math.ceil(self.log_qp) <= HE_STANDARD_MAX_LOGQP[level][self.poly_degree]:
                best = level
        return best


#: The error width the HomomorphicEncryption.org tables assume (8 / sqrt(2 pi) = 3.19).
MIN_SIGMA = 3.19

# Sparse (fixed Hamming weight) secrets are not covered by the HE standard's table. The
# only set labelled here is the one a published estimate covers: Bossuat, Troncoso-
# Pastoriza and Hubaux (eprint 2022/024), the parameters of Lattigo's bootstrapping,
# N = 2^16 with h = 192 is at least 128-bit for log2(QP) <= 1550. Anything else with a
# sparse secret reports 0 bits (and needs allow_insecure=True).
SPARSE_SECRET_128 = {(65536, 192): 1550}


NAMED = {
    "N8192": dict(poly_degree=8192, levels=2),                 # 60+40*2+60  = 200 <= 218
    "N16384": dict(poly_degree=16384, levels=7),               # 60+40*7+60  = 400 <= 438
    "N32768": dict(poly_degree=32768, levels=18),              # 60+40*18+60 = 840 <= 881
    "N65536": dict(poly_degree=65536, levels=39, dnum=20),     # 60+40*39+120 = 1740 <= 1761
}


def named(name: str, **overrides) -> CkksParams:
    """A named 128-bit parameter set (``"N8192"``, ``"N16384"``, ``"N32768"``, ``"N65536"``)."""
    if name not in NAMED:
        raise ParameterError(f"cannot find CKKS parameter set {name!r}; known: {sorted(NAMED)}")
    return CkksParams(**{**NAMED[name], **overrides})


#: Levels below a computation that stay unused, so every ciphertext can still be refreshed:
#: a masked refresh needs its modulus to hold the value's bound plus about 50-60 bits of
#: hiding margin (he_core.refresh), which the first prime and one wide floor prime give.
REFRESH_FLOOR_LEVELS = 1
#: Size of the floor primes: the mask's room at the floor is first_bits + this - 1 bits.
REFRESH_FLOOR_BITS = 61
#: Scale of the sets chosen for training: flooded releases keep >= 16 bits at it.
PROTOCOL_SCALE_BITS = 54


def for_protocol(depth: int, *, scale_bits: int = PROTOCOL_SCALE_BITS, security: int = 128) -> CkksParams:
    """The smallest set with ``depth`` levels above the refresh floor, at a scale that survives flooding.

    Training refreshes through the masked protocol and releases flooded aggregates, so
    the set needs (a) ``REFRESH_FLOOR_LEVELS`` levels below the computation, where a
    ciphertext still has room for its mask, and (b) a scale large enough that flooding
    for the job's releases leaves >= 16 bits (``docs/threat_model.md`` has the
    arithmetic). One special prime of 60 bits keeps the key-switching noise far below
    the scale.

    Raises:
        ParameterError: no ring up to 65536 fits.
    """
    if depth < 1:
        raise ParameterError(f"cannot choose parameters: depth must be positive, got {depth}")
    levels = depth + REFRESH_FLOOR_LEVELS
    for n in (8192, 16384, 32768, 65536):
        limit = HE_STANDARD_MAX_LOGQP[security][n] - 2  # primes may exceed their nominal size by a little
        if 60 + REFRESH_FLOOR_LEVELS * REFRESH_FLOOR_BITS + depth * scale_bits + 60 <= limit:
            return CkksParams(poly_degree=n, levels=levels, first_bits=60, scale_bits=scale_bits, special_bits=60,
                              floor_levels=REFRESH_FLOOR_LEVELS, floor_bits=REFRESH_FLOOR_BITS)
    raise ParameterError(f"cannot choose parameters: {levels} levels at {scale_bits}-bit scale do not fit "
                         f"{security}-bit security with N <= 65536")


#: The smallest scale of an answer set (:func:`for_answer`): below it the flooding of a
#: server's answer leaves too little precision.
MIN_ANSWER_SCALE_BITS = 40


#: The largest scale of a server's floored answer set (:func:`for_precise_answer`): its primes stay
#: below the 60-bit first prime.
MAX_ANSWER_SCALE_BITS = 58
#: Inputs times the scale stay below 2^this (the encoder refuses coefficients beyond 2^62; the
#: margin leaves room for a weight's or an input's encoding slightly above its bound).
ANSWER_ENCODE_LOG2 = 60


def for_precise_answer(depth: int, input_bound: float, *, security: int = 128) -> CkksParams | None:
    """:func:`for_protocol`'s floored set at the largest scale that still encodes inputs up to ``input_bound``.

    A server's answer is flooded on every coefficient (circuit privacy), so its precision is
    the scale over the flood; a scale above the protocol's buys it back where the inputs
    allow. ``None``: no scale above ``PROTOCOL_SCALE_BITS`` encodes them, or none fits.
    """
    if not (input_bound > 0 and math.isfinite(input_bound)):
        return None
    bits = min(MAX_ANSWER_SCALE_BITS, ANSWER_ENCODE_LOG2 - max(0, math.ceil(math.log2(input_bound))))
    if bits <= PROTOCOL_SCALE_BITS:
        return None
    try:
        return for_protocol(depth, scale_bits=bits, security=security)
    except ParameterError:
        return None


def for_protocol_filled(depth: int) -> CkksParams:
    """:func:`for_protocol`'s set for ``depth``, deepened to every level its ring holds at 128 bits."""
    params = for_protocol(depth)
    while True:
        try:
            deeper = for_protocol(depth + 1)
        except ParameterError:
            return params
        if deeper.poly_degree != params.poly_degree:
            return params
        depth, params = depth + 1, deeper


def for_answer(depth: int, value_bits: int, *, security: int = 128) -> CkksParams:
    """The smallest set for a computation that is never refreshed and ends at q_0 (a server's answer).

    No refresh floor: the answer is decrypted at the last level, whose modulus q_0 (60
    bits) must hold its values and their flooding. The scale therefore leaves
    ``value_bits`` of room below ``q_0 / 4`` (the encoding's range), at most the
    protocol scale; a result too large for a scale of ``MIN_ANSWER_SCALE_BITS`` needs
    :func:`for_protocol`'s floor instead.

    Raises:
        ParameterError: the values need more room than q_0 gives, or no ring up to 65536 fits.
    """
    if depth < 1:
        raise ParameterError(f"cannot choose parameters: depth must be positive, got {depth}")
    scale_bits = min(PROTOCOL_SCALE_BITS, 60 - 2 - value_bits)
    if scale_bits < MIN_ANSWER_SCALE_BITS:
        raise ParameterError(f"cannot choose parameters: answers up to 2^{value_bits} leave q_0 a scale of "
                             f"{scale_bits} bits (need {MIN_ANSWER_SCALE_BITS})")
    for n in (8192, 16384, 32768, 65536):
        if 60 + depth * scale_bits + 60 <= HE_STANDARD_MAX_LOGQP[security][n] - 2:
            return CkksParams(poly_degree=n, levels=depth, first_bits=60, scale_bits=scale_bits, special_bits=60)
    raise ParameterError(f"cannot choose parameters: {depth} levels at {scale_bits}-bit scale do not fit "
                         f"{security}-bit security with N <= 65536")


def choose_parameters(depth: int, precision_bits: int = 20, slots: int = 1, security: int = 128) -> CkksParams:
    """The smallest ring that gives ``depth`` rescalings, ``slots`` slots and the security level.

    Args:
        depth: multiplicative depth needed.
        precision_bits: bits of precision wanted after decryption (fractional part).
        slots: minimum number of slots (N/2).
        security: 128, 192 or 256.

    Returns:
        A :class:`CkksParams` with scale bits about precision + 20 and a first prime with
        room for 20 bits of integer part.

    Raises:
        ParameterError: if no ring up to 65536 fits.
    """
    if security not in HE_STANDARD_MAX_LOGQP:
        raise ParameterError(f"cannot choose parameters: security must be 128, 192 or 256, not {security}")
    if depth < 1 or precision_bits < 1 or slots < 1:
        raise ParameterError("cannot choose parameters: depth, precision_bits and slots must be positive")
    scale_bits = min(max(precision_bits + 20, 30), 50)
    first_bits = min(scale_bits + 20, 60)
    for n in (1024, 2048, 4096, 8192, 16384, 32768, 65536):
        if n // 2 < slots:
            continue
        dnum = min(depth + 1, 32)
        alpha = -(-(depth + 1) // dnum)
        logqp = first_bits + scale_bits * depth + 60 * alpha
        if logqp + 1 <= HE_STANDARD_MAX_LOGQP[security][n] and depth <= 60:
            return CkksParams(poly_degree=n, levels=depth, first_bits=first_bits, scale_bits=scale_bits,
                              special_bits=60, dnum=dnum)
    raise ParameterError(f"cannot choose parameters: depth {depth} at {scale_bits}-bit scale does not fit "
                         f"{security}-bit security with N <= 65536")
