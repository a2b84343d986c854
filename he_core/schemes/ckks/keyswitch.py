"""Hybrid key switching over an :class:`~.ring.RnsRing`: ModUp, the inner product with a key, ModDown.

Key switching is RLWE, not ring arithmetic: it turns a polynomial d that multiplies an
old secret into a pair (c0, c1) that decrypts to the same value under a new secret,
using a switching key of ``dnum`` digits (see :mod:`.keys`). With q_0 .. q_{nq-1} the
ciphertext primes at the current level and P the product of the special primes:

1. **ModUp** — d's limbs are cut into digits of ``alpha`` consecutive primes; each
   digit is raised to the extended basis Q_l * P by fast base conversion (a one-prime
   digit centred, a several-prime one as the conversion leaves it);
2. **inner product** — sum over the digits of digit_j * (b_j, a_j), over Q_l * P;
3. **ModDown** — both parts are divided by P, rounded to nearest (the P part is taken
   off centred), leaving a pair over Q_l.

All three run in one native call (``csrc/ckks_keyswitch.c``); :meth:`KeySwitcher.mod_up`
and :meth:`KeySwitcher.key_switch_hoisted` split it after step 1 so that several
rotations of one ciphertext share its ModUp (hoisting). ModDown has no entry point of
its own: both native calls end with it. The slow definition of every step is
:func:`.reference.key_switch`; ``tests/he_core/schemes/ckks/test_keyswitch.py`` requires
exact equality with it.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ... import native
from ...errors import ParameterError
from .params import CkksParams
from .ring import RnsRing


def digit_bounds(nq: int, alpha: int) -> list[tuple[int, int]]:
    """Limb ranges [lo, hi) of the digits of a polynomial with nq limbs: alpha primes each, the last may be short."""
    return [(lo, min(lo + alpha, nq)) for lo in range(0, nq, alpha)]


def mod_up_constants(ring: RnsRing, nq: int, alpha: int) -> np.ndarray:
    """Base-conversion constants of ModUp at nq limbs, in the layout the C kernels read.

    Per digit, in order: its (Q_j/q_i)^-1 mod q_i (one per prime of the digit), then its
    (Q_j/q_i) mod t for every target t of Q_l * P (row-major, one row per digit prime).
    """
    targets = ring.moduli(nq, special=True)
    parts = []
    for lo, hi in digit_bounds(nq, alpha):
        inv_hat, hat = RnsRing.conv_constants(ring.q[lo:hi], targets)
        parts += [inv_hat, hat.reshape(-1)]
    return np.concatenate(parts)


def mod_down_constants(ring: RnsRing, nq: int) -> np.ndarray:
    """Constants of ModDown to nq limbs: (P/p_i)^-1 mod p_i, then (P/p_i) mod q_t (row-major), then P^-1 mod q_t."""
    inv_p, hat_p = RnsRing.conv_constants(ring.p, ring.q[:nq])
    big_p = 1
    for p in ring.p:
        big_p *= p
    p_inv = np.array([pow(big_p % q, -1, q) for q in ring.q[:nq]], dtype=np.uint64)
    return np.concatenate([inv_p, hat_p.reshape(-1), p_inv])


class KeySwitcher:
    """Key switching over one ring: validates shapes in Python, caches the constants, calls the kernels.

    One switcher per ring (see :meth:`for_ring`) so every scheme on a parameter set shares
    the constants. Like the ring's own kernels it reuses the ring's scratch buffer, one per
    Python thread, so several threads may switch keys at once.

    Args:
        ring: the ring whose ciphertext and special primes the keys live over.
    """

    def __init__(self, ring: RnsRing):
        self.ring = ring
        self._up: dict[tuple[int, int], np.ndarray] = {}
        self._down: dict[int, np.ndarray] = {}

    @classmethod
    def for_ring(cls, ring: RnsRing) -> "KeySwitcher":
        """The shared switcher of ``ring``."""
        return _switcher_for(ring)

    @classmethod
    def for_params(cls, params: CkksParams) -> "KeySwitcher":
        """The shared switcher of the parameter set's (shared) ring."""
        return _switcher_for(RnsRing.for_params(params))

    def constants(self, nq: int, alpha: int) -> tuple[np.ndarray, np.ndarray]:
        """(ModUp, ModDown) constants at nq limbs for digits of alpha primes (cached)."""
        return self._up_constants(nq, alpha), self._down_constants(nq)

    def _up_constants(self, nq: int, alpha: int) -> np.ndarray:
        if (nq, alpha) not in self._up:
            self._up[nq, alpha] = mod_up_constants(self.ring, nq, alpha)
        return self._up[nq, alpha]

    def _down_constants(self, nq: int) -> np.ndarray:
        if nq not in self._down:
            self._down[nq] = mod_down_constants(self.ring, nq)
        return self._down[nq]

    def _check_alpha(self, alpha: int) -> None:
        if not 1 <= alpha <= len(self.ring.p):
            raise ParameterError(f"cannot decompose with alpha={alpha}: the ring has {len(self.ring.p)} special primes")

    def _check_key(self, key: np.ndarray) -> int:
        """The key's total limb count; refuses a key that is not (dnum, 2, L+1+k, N) contiguous uint64."""
        r = self.ring
        ltot = len(r.q) + len(r.p)
        if key.dtype != np.uint64 or key.ndim != 4 or key.shape[1:] != (2, ltot, r.n) or not key.flags.c_contiguous:
            raise ParameterError(f"cannot key-switch with a key of shape {key.shape}")
        return ltot

    def key_switch(self, d: np.ndarray, key: np.ndarray, alpha: int) -> np.ndarray:
        """ModUp, inner product and ModDown of d (NTT form, nq limbs) in one call: (2, nq, N), NTT form.

        Raises:
            ParameterError: for a malformed d or key, fewer special primes than alpha, or a
                key with fewer digits than d has at this level.
        """
        r = self.ring
        nq = r._check(d)
        ltot = self._check_key(key)
        self._check_alpha(alpha)
        if -(-nq // alpha) > key.shape[0]:
            raise ParameterError("cannot key-switch: the key has too few digits for this level")
        up, down = self.constants(nq, alpha)
        out = np.empty((2, nq, r.n), dtype=np.uint64)
        scratch = r._scratch(r.lib.ckks_keyswitch_scratch(nq, len(r.p), r.n, alpha))
        native.check(r.lib.ckks_keyswitch(r.basis(nq, True), nq, len(r.p), r.n, r._ptr(d), r._ptr(key),
                                          key.shape[0], ltot, alpha, r._ptr(up), r._ptr(down), r._out(out),
                                          r._ptr(scratch), scratch.size), "keyswitch")
        return out

    def mod_up(self, d: np.ndarray, alpha: int) -> np.ndarray:
        """The digits of d (NTT form, nq limbs) raised to Q_l * P, NTT form: (beta, nq + k, N).

        Computed once and reused by :meth:`key_switch_hoisted` for every rotation of d.

        Raises:
            ParameterError: for a malformed d or an alpha outside 1 .. (number of special primes).
        """
        r = self.ring
        nq = r._check(d)
        self._check_alpha(alpha)
        up = self._up_constants(nq, alpha)
        ext = np.empty((-(-nq // alpha), nq + len(r.p), r.n), dtype=np.uint64)
        scratch = r._scratch(r.lib.ckks_modup_scratch(nq, r.n))
        native.check(r.lib.ckks_modup(r.basis(nq, True), nq, len(r.p), r.n, r._ptr(d), alpha, r._ptr(up),
                                      r._out(ext), r._ptr(scratch), scratch.size), "modup")
        return ext

    def key_switch_hoisted(self, ext: np.ndarray, key: np.ndarray, alpha: int,
                           perm: np.ndarray | None = None) -> np.ndarray:
        """Inner product and ModDown of the digits ``ext`` (see :meth:`mod_up`), permuted by ``perm``: (2, nq, N).

        With ``perm`` the permutation of a Galois element g (:meth:`RnsRing.galois_perm`)
        this switches d(X^g), the automorphism applied to d's lifted digits. With one-prime
        digits (alpha = 1) that is exactly :meth:`key_switch` of the permuted d; with
        several-prime digits the uncentred lift of -x is not minus the lift of x, so the
        two differ by a multiple of Q_j in a digit and decrypt alike within the switch's error.

        Raises:
            ParameterError: for digits or a key of the wrong shape, or a bad permutation.
        """
        r = self.ring
        if ext.dtype != np.uint64 or ext.ndim != 3 or not ext.flags.c_contiguous or ext.shape[2] != r.n:
            raise ParameterError(f"cannot key-switch from digits of shape {ext.shape}")
        beta, ntot = ext.shape[:2]
        nq = ntot - len(r.p)
        if not 1 <= nq <= len(r.q) or alpha < 1 or beta != -(-nq // alpha):
            raise ParameterError(f"cannot key-switch from digits of shape {ext.shape} with alpha={alpha}")
        ltot = self._check_key(key)
        if beta > key.shape[0]:
            raise ParameterError("cannot key-switch: the key has too few digits for this level")
        if perm is not None:
            perm = np.ascontiguousarray(perm, dtype=np.uint32)
            if perm.shape != (r.n,):
                raise ParameterError(f"cannot key-switch with a permutation of shape {perm.shape}")
        down = self._down_constants(nq)
        out = np.empty((2, nq, r.n), dtype=np.uint64)
        scratch = r._scratch(r.lib.ckks_ks_dot_scratch(nq, len(r.p), r.n))
        pp = r.ffi.NULL if perm is None else r.ffi.cast("const uint32_t *", perm.ctypes.data)
        native.check(r.lib.ckks_ks_dot(r.basis(nq, True), nq, len(r.p), r.n, r._ptr(ext), beta, pp, r._ptr(key),
                                       key.shape[0], ltot, r._ptr(down), r._out(out), r._ptr(scratch),
                                       scratch.size), "keyswitch")
        return out


@lru_cache(maxsize=8)
def _switcher_for(ring: RnsRing) -> KeySwitcher:
    return KeySwitcher(ring)
