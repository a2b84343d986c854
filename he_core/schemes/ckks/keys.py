"""CKKS key generation: secret, public key and hybrid key-switching keys.

All key material is kept in NTT form. A switching key from s_from to s_to has ``dnum``
digits over the full basis Q*P; digit j is an RLWE encryption of P * g_j * s_from under
s_to, where the gadget g_j is 1 modulo the primes of digit j and 0 modulo the others.
The uniform halves of a switching key's digits are expanded from one 32-byte seed per
key (:func:`switch_a`), so a key file can carry the seed in their place
(:mod:`.seeded_keys`).
"""
from __future__ import annotations

import numpy as np

from ...randomness import RandomSource, XofRandom
from . import seeded
from .params import CkksParams
from .ring import RnsRing


def sample_secret(params: CkksParams, rng: RandomSource) -> np.ndarray:
    """Ternary secret coefficients (int64), uniform or of fixed Hamming weight."""
    n = params.poly_degree
    if params.secret == "ternary":
        return rng.ternary(n).astype(np.int64)
    # Fixed weight h: a partial Fisher-Yates shuffle picks h positions, signs are uniform.
    idx = np.arange(n)
    for i in range(params.hamming_weight):
        j = int(rng.integers(i, n - 1, 1)[0])
        idx[i], idx[j] = idx[j], idx[i]
    s = np.zeros(n, dtype=np.int64)
    s[idx[: params.hamming_weight]] = 2 * rng.integers(0, 1, params.hamming_weight) - 1
    return s


def sample_ephemeral(params: CkksParams, rng: RandomSource) -> np.ndarray:
    """The ephemeral ``u`` of a public-key encryption: uniform ternary, whatever the secret's distribution.

    A sparse ``u`` (as a Hamming-weight secret would give) makes the encryption's
    randomness easier to guess; the uniform ternary one is what the RLWE hardness of
    the public key vouches for.
    """
    return rng.ternary(params.poly_degree).astype(np.int64)


def full_ntt(ring: RnsRing, coeffs: np.ndarray) -> np.ndarray:
    """Signed coefficients to NTT form over every prime (Q then P)."""
    return ring.ntt(ring.from_signed(coeffs, len(ring.q), special=True), special=True)


def uniform(ring: RnsRing, nlimbs: int, rng: RandomSource, out: np.ndarray | None = None) -> np.ndarray:
    """A uniform polynomial over the first ``nlimbs`` primes of Q*P (uniform in either form), written to ``out`` if given."""
    primes = ring.q + ring.p
    out = np.empty((nlimbs, ring.n), dtype=np.uint64) if out is None else out
    for i, q in enumerate(primes[:nlimbs]):
        out[i] = rng.uniform_mod(q, ring.n)
    return out


def error(ring: RnsRing, params: CkksParams, nlimbs: int, rng: RandomSource) -> np.ndarray:
    """A fresh Gaussian error polynomial in NTT form over q_0 .. q_{nlimbs-1} (or all of Q*P)."""
    e = rng.gaussian(params.sigma, ring.n)
    if nlimbs == len(ring.q) + len(ring.p):
        return full_ntt(ring, e)
    return ring.ntt(ring.from_signed(e, nlimbs))


#: Domain separation of the public key's uniform part (see :func:`public_a`).
PK_DOMAIN = b"henn-ckks-public-key-a"
PK_SEED_BYTES = 32


def public_a(ring: RnsRing, seed: bytes) -> np.ndarray:
    """The uniform part ``a`` of a public key, expanded from its published seed (SHAKE-256).

    Whoever receives the key recomputes ``a`` and so knows it was not chosen: a party
    that re-randomises ciphertexts with the key (a server sanitising its answers) then
    gets uniform randomness even from a malicious key holder.
    """
    return uniform(ring, len(ring.q) + len(ring.p), XofRandom(seed, PK_DOMAIN))


def public_key(ring: RnsRing, params: CkksParams, s_full: np.ndarray, rng: RandomSource
               ) -> tuple[np.ndarray, bytes]:
    """((b, a), seed) with b = -a*s + e over Q*P, shape (2, L+1+k, N), and ``a`` expanded from ``seed``.

    Over Q*P (not just Q) so that encryption can divide its noise by P (see
    :meth:`RnsRing.drop_special`), as SEAL does; fresh ciphertexts then carry only
    rounding noise instead of e*v + e0 + e1*s (4 bits more precision at 21-bit scales).
    """
    ltot = len(ring.q) + len(ring.p)
    seed = rng.bytes(PK_SEED_BYTES)
    a = public_a(ring, seed)
    b = ring.sub(error(ring, params, ltot, rng), ring.mul(a, s_full))
    return np.stack([b, a]), seed


#: Domain separation of a switching key's uniform halves (the public key's and the ciphertexts' are others).
SWITCH_DOMAIN = b"henn-ckks-switch-key-a-v1\0"  # terminated: no later domain can extend it
SWITCH_SEED_BYTES = seeded.SEED_BYTES


def key_digits(params: CkksParams) -> int:
    """Digits of a switching key: ceil((L+1) / alpha), which is ``dnum`` unless ``dnum`` does not divide L+1
    (L+1 = 20 primes, dnum = 6: alpha = 4, so 5 digits)."""
    return -(-len(params.q_primes) // params.alpha)


def switch_a(primes, n: int, seed: bytes, digit: int, out: np.ndarray | None = None) -> np.ndarray:
    """The uniform half of digit ``digit`` of a switching key over ``primes`` (Q then P), expanded from its seed.

    SHAKE-256 of (domain, seed, digit, prime index), rejection-sampled below each prime: the
    ciphertexts' expansion (:func:`.seeded.expand`) under this domain.
    """
    return seeded.expand(seed, primes, n, domain=SWITCH_DOMAIN, label=digit.to_bytes(4, "little"), out=out)


def switch_key(ring: RnsRing, params: CkksParams, s_from: np.ndarray, s_to: np.ndarray,
               rng: RandomSource, seed: bytes | None = None) -> np.ndarray:
    """Hybrid switching key from s_from to s_to (both NTT over Q*P): (digits, 2, L+1+k, N) (:func:`key_digits`).

    Each digit's uniform half ``a`` is :func:`switch_a` of ``seed`` (default: 32 bytes drawn
    from ``rng``; pass them to keep them, as key generation does). ``a`` is public, so its
    seed may travel in its place. Built in place in the key's own array in uint64
    arithmetic (keys at N = 2^16 run to hundreds of megabytes: no temporaries the size of
    a digit, no Python integers).
    """
    nq, ltot = len(ring.q), len(ring.q) + len(ring.p)
    seed = rng.bytes(SWITCH_SEED_BYTES) if seed is None else seed
    alpha = params.alpha
    p_prod = 1
    for p in ring.p:
        p_prod *= p
    digits = -(-nq // alpha)
    out = np.empty((digits, 2, ltot, ring.n), dtype=np.uint64)
    for j in range(digits):
        b, a = out[j, 0], out[j, 1]
        switch_a(ring.q + ring.p, ring.n, seed, j, out=a)
        e = error(ring, params, ltot, rng)
        ring.sub(e, ring.mul(a, s_to, out=b), out=b)  # b = e - a s_to
        for i in range(j * alpha, min((j + 1) * alpha, nq)):
            b[i] = add_mod(b[i], ring.mul_scalar_limb(s_from[i], p_prod, i), ring.q[i])
    return out


def add_mod(x: np.ndarray, y: np.ndarray, q: int) -> np.ndarray:
    """(x + y) mod q for uint64 arrays reduced modulo q < 2^61 (the sum cannot wrap)."""
    total = x + y
    return np.where(total >= np.uint64(q), total - np.uint64(q), total)
