"""Randomness for keys, noise and masks.

Cryptographic material is drawn from the operating system's CSPRNG (``os.urandom``)
by default; numpy's global generator is never used. Tests and reproducible
experiments may pass an explicitly seeded :class:`SeededRandom` instead, which is
*not* cryptographically secure and says so in its name.
"""
from __future__ import annotations

import hashlib
import math
import os

import numpy as np

from .errors import ParameterError

#: The widest Gaussian :meth:`RandomSource.gaussian` samples: 53-bit uniforms leave a few
#: random bits below the unit up to here (flooding in henn's sets stays below 2^40).
MAX_GAUSSIAN_LOG2 = 48


class RandomSource:
    """Interface of a source of uniform integers; subclasses supply ``_words``."""

    secure: bool = False

    def _words(self, n: int) -> np.ndarray:  # pragma: no cover - abstract
        """Return ``n`` independent uniform uint64 words."""
        raise NotImplementedError

    def integers(self, low: int, high: int, size) -> np.ndarray:
        """Uniform int64 values in ``[low, high]`` (both ends included), without modulo bias."""
        if high < low:
            raise ParameterError(f"cannot draw integers: empty range [{low}, {high}]")
        if low < -(2**63) or high > 2**63 - 1:
            raise ParameterError(f"cannot draw integers: [{low}, {high}] does not fit in int64")
        shape = (int(size),) if isinstance(size, (int, np.integer)) else tuple(size)
        count = math.prod(shape)
        span = int(high) - int(low) + 1
        out = self._uniform_below(span, count)
        # Two's-complement addition maps [0, span) onto [low, high] exactly.
        out += np.uint64(int(low) % 2**64)
        return out.view(np.int64).reshape(shape)

    def _uniform_below(self, span: int, count: int) -> np.ndarray:
        """``count`` uniform uint64 values in ``[0, span)``, ``1 <= span <= 2**64``."""
        if span == 2**64:
            return self._words(count)
        if span & (span - 1) == 0:  # a power of two: masking is exact
            return self._words(count) & np.uint64(span - 1)
        # Rejection sampling on the largest multiple of span below 2^64: almost never rejects
        # for small spans, so try once on exactly `count` words before looping.
        limit = np.uint64((2**64 // span) * span)
        words = self._words(count)
        if not (words >= limit).any():
            return words % np.uint64(span)
        kept = [words[words < limit]]
        filled = kept[0].size
        while filled < count:
            more = self._words(count - filled + 8)
            more = more[more < limit]
            kept.append(more)
            filled += more.size
        return np.concatenate(kept)[:count] % np.uint64(span)

    def uniform_mod(self, modulus: int, size) -> np.ndarray:
        """Uniform uint64 values in ``[0, modulus)``."""
        return self.integers(0, modulus - 1, size).astype(np.uint64)

    def ternary(self, size) -> np.ndarray:
        """Uniform values in {-1, 0, 1}."""
        return self.integers(-1, 1, size)

    def gaussian(self, sigma: float, size, bound: float | None = None) -> np.ndarray:
        """Rounded Gaussian integers of standard deviation ``sigma``, clipped at ``bound`` (default 6 sigma).

        Uses the Box-Muller transform on 53-bit uniforms from this source, which keeps
        every integer of the result reachable while ``sigma <= 2^MAX_GAUSSIAN_LOG2``.

        Raises:
            ParameterError: ``sigma`` negative, not finite or above ``2^MAX_GAUSSIAN_LOG2``
                (the low bits would no longer be random).
        """
        if not (isinstance(sigma, (int, float, np.floating)) and 0 <= sigma <= 2.0**MAX_GAUSSIAN_LOG2):
            raise ParameterError(f"cannot sample a Gaussian of standard deviation {sigma!r}: need 0 .. "
                                 f"2^{MAX_GAUSSIAN_LOG2} (a float sampler has no random low bits beyond that)")
        shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
        count = int(np.prod(shape, dtype=np.int64))
        bound = 6.0 * sigma if bound is None else bound
        half = (count + 1) // 2
        u = (self._words(2 * half) >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)
        u1, u2 = u[:half], u[half:]
        radius = np.sqrt(-2.0 * np.log1p(-u1))  # 1 - u1 lies in (0, 1]
        z = np.concatenate([radius * np.cos(2 * math.pi * u2), radius * np.sin(2 * math.pi * u2)])[:count]
        return np.clip(np.rint(z * sigma), -bound, bound).astype(np.int64).reshape(shape)

    def normal(self, size) -> np.ndarray:
        """Standard normal float64 values (Box-Muller on 53-bit uniforms from this source)."""
        shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
        count = int(np.prod(shape, dtype=np.int64))
        half = (count + 1) // 2
        u = (self._words(2 * half) >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)
        radius = np.sqrt(-2.0 * np.log1p(-u[:half]))
        z = np.concatenate([radius * np.cos(2 * math.pi * u[half:]), radius * np.sin(2 * math.pi * u[half:])])
        return z[:count].reshape(shape)

    def bytes(self, n: int) -> bytes:
        """``n`` uniform bytes."""
        return self._words((n + 7) // 8).tobytes()[:n]


class OsRandom(RandomSource):
    """The operating system CSPRNG (``os.urandom``): the default for all key material."""

    secure = True

    def _words(self, n: int) -> np.ndarray:
        return np.frombuffer(os.urandom(8 * n), dtype=np.uint64).copy()


class SeededRandom(RandomSource):
    """A reproducible, NOT cryptographically secure source for tests and experiments."""

    secure = False

    def __init__(self, seed: int):
        self._gen = np.random.Generator(np.random.PCG64(seed))

    def _words(self, n: int) -> np.ndarray:
        return self._gen.integers(0, 2**64, size=n, dtype=np.uint64, endpoint=False)


class XofRandom(RandomSource):
    """A deterministic stream expanded from a seed with SHAKE-256: public randomness anyone can recompute.

    For values that must be random but need not be secret, and that a verifier must
    be able to check were not chosen (the uniform part of a public key, derived from a
    seed published beside it). Call order matters: the i-th request reads block i.
    """

    secure = True

    def __init__(self, seed: bytes, domain: bytes = b"henn-xof"):
        if not isinstance(seed, (bytes, bytearray)) or len(seed) < 16:
            raise ValueError("cannot expand randomness: the seed must be at least 16 bytes")
        self._prefix = bytes(domain) + b"\x00" + bytes(seed)
        self._calls = 0

    def _words(self, n: int) -> np.ndarray:
        block = hashlib.shake_256(self._prefix + self._calls.to_bytes(8, "little")).digest(8 * n)
        self._calls += 1
        return np.frombuffer(block, dtype=np.uint64).copy()


def resolve(rng: "RandomSource | None") -> RandomSource:
    """``None`` -> the OS CSPRNG; a :class:`RandomSource` as it is.

    A bare integer seed is refused: it would silently switch key generation and
    encryption to a non-cryptographic generator. Tests that need reproducible keys pass
    ``SeededRandom(seed)``, whose name says what it is.

    Raises:
        TypeError: anything else, an int seed included.
    """
    if rng is None:
        return OsRandom()
    if isinstance(rng, RandomSource):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        raise TypeError(f"cannot use the integer {int(rng)} as randomness: pass he_core.SeededRandom({int(rng)}) "
                        "explicitly for reproducible tests (it is not cryptographically secure), or nothing for "
                        "the OS CSPRNG")
    raise TypeError(f"rng must be None or a he_core.RandomSource, not {type(rng).__name__}")
