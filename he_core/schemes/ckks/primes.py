"""NTT-friendly primes: deterministic Miller-Rabin search and primitive roots."""
from __future__ import annotations

from functools import lru_cache

from ...errors import ParameterError

# With these bases Miller-Rabin is deterministic for every n < 3.3e24 (far above 2^64).
_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)


def is_prime(n: int) -> bool:
    """Deterministic primality test for n < 2^81."""
    if n < 2:
        return False
    for p in _MR_BASES:
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def ntt_primes(bits: int, n: int, count: int, exclude: frozenset[int] = frozenset(), *,
               around: bool = False) -> list[int]:
    """``count`` primes q = 1 mod 2n of about ``bits`` bits, deterministic order.

    Args:
        bits: target size; primes lie below 2^bits (or around it with ``around``).
        n: ring dimension (a power of two).
        count: how many primes.
        exclude: primes already taken.
        around: alternate above and below 2^bits, nearest first, so products of such
            primes stay close to powers of 2^bits (keeps CKKS scales near 2^bits).

    Raises:
        ParameterError: if not enough primes exist in range.
    """
    if not 20 <= bits <= 61:
        raise ParameterError(f"cannot choose primes: {bits} bits is outside [20, 61]")
    step = 2 * n
    centre = (1 << bits) // step * step + 1
    below, above = centre, centre + step
    out: list[int] = []
    take_above = around
    while len(out) < count:
        if below < (1 << (bits - 1)) and (not around or above >= (1 << 61)):
            raise ParameterError(f"cannot choose primes: not enough {bits}-bit primes = 1 mod {step}")
        if take_above and above < (1 << 61):
            cand, above = above, above + step
        else:
            cand, below = below, below - step
        if around:
            take_above = not take_above
        if cand < (1 << bits) or around:
            if cand not in exclude and cand not in out and is_prime(cand):
                out.append(cand)
            elif around:
                take_above = not take_above  # retry the same side until it yields a prime
    return out


@lru_cache(maxsize=None)
def primitive_root_2n(q: int, n: int) -> int:
    """The smallest primitive 2n-th root of unity modulo the prime q (q = 1 mod 2n)."""
    if (q - 1) % (2 * n):
        raise ParameterError(f"cannot find a 2n-th root: {q} is not 1 mod {2 * n}")
    exponent = (q - 1) // (2 * n)
    for g in range(2, 1 << 20):
        psi = pow(g, exponent, q)
        if pow(psi, n, q) == q - 1:  # order exactly 2n, since n is a power of two
            return psi
    raise ParameterError(f"cannot find a primitive {2 * n}-th root modulo {q}")
