"""The CKKS noise formulas (:mod:`.noise`) bound to one parameter set, per-level constants cached."""
from __future__ import annotations

import math

from .noise import (FLOAT_LIMIT, NOISE_KEYS, cap_limit, finite, fresh_public_var, fresh_secret_var, keyswitch_var, modulus_cap,
                    rescale_var, rounding_var, secret_norm2)


class NoiseModel:
    """The formulas of :mod:`.noise` bound to one parameter set, with the per-level constants cached.

    Args:
        params: a :class:`~he_core.schemes.ckks.params.CkksParams`.
    """

    def __init__(self, params) -> None:
        self.n, self.sigma = params.poly_degree, params.sigma
        self.s_norm2 = secret_norm2(self.n, params.secret, params.hamming_weight)
        self.q, self.p, self.alpha = params.q_primes, params.p_primes, params.alpha
        self.q_log2 = [sum(math.log2(q) for q in self.q[: level + 1]) for level in range(len(self.q))]
        self._ks: dict[int, float] = {}

    def cap(self, var, level: int):
        """:func:`modulus_cap` at Q_level."""
        return modulus_cap(var, self.q_log2[level])

    def cap_limit(self, level: int) -> float:
        """The cap of :meth:`cap` at Q_level, as a float (for records kept as Python floats)."""
        return cap_limit(self.q_log2[level])

    def fresh(self, public: bool, over_qp: bool = True) -> float:
        """Variance of a fresh encryption: secret key, or public key over Q*P (or over Q alone)."""
        if not public:
            return fresh_secret_var(self.sigma)
        p_log2 = sum(math.log2(p) for p in self.p) if over_qp else None
        return fresh_public_var(self.sigma, self.s_norm2, p_log2)

    def keyswitch(self, level: int) -> float:
        """:func:`keyswitch_var` of a ciphertext at ``level`` (the digits of alpha primes present there)."""
        if level not in self._ks:
            primes = self.q[: level + 1]
            digits = [primes[i: i + self.alpha] for i in range(0, len(primes), self.alpha)]
            self._ks[level] = keyswitch_var(self.n, self.sigma, self.s_norm2, digits, self.p)
        return self._ks[level]

    def rescale(self, var, level: int, parts: int = 2):
        """:func:`rescale_var` of a ``parts``-part ciphertext at ``level`` divided by q_level."""
        return rescale_var(var, self.q[level], rounding_var(self.s_norm2, parts))

    def fill_unknown(self, meta: dict, level: int, scale: float) -> None:
        """Give ``meta`` (of a ciphertext from before these fields) the most pessimistic public values.

        The largest error and value a decryption can still represent: decryption reads
        the phase modulo q_0 (level 0) or q_0 q_1, so |e| < M / 2 and |value| < M / (2 scale).
        Fields already present are kept.
        """
        if all(key in meta for key in NOISE_KEYS):
            return
        m_log2 = self.q_log2[min(level, 1)]
        for key in NOISE_KEYS[:3]:
            meta.setdefault(key, float(modulus_cap(FLOAT_LIMIT, m_log2)))
        meta.setdefault("vmax", finite(2.0 ** (m_log2 - 1.0) / scale))
