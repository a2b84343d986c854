"""CKKS encoding, encryption and decryption of packed slot vectors.

A mixin of :class:`~he_core.schemes.ckks.scheme.CkksScheme`. Slot vectors are encoded
(canonical embedding, :mod:`.encoder`) into NTT-form plaintexts over the first limbs;
a fresh ciphertext is (b, a) with b = -a s + e + m under the secret key, or a public-key
encryption of m with its own ternary and Gaussian samples; its noise record comes from
:class:`~.noise_model.NoiseModel`. Decryption returns the complex slots of the phase.
"""
from __future__ import annotations

import math

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import EncodingError
from . import encoder, keys as keygen, layout, noise
from .ring import RnsRing


class EncryptionMixin:
    """Encode slot vectors, encrypt them (secret or public key), and read the slots of a phase."""

    def encode_pt(self, slotvec: np.ndarray, scale: float, nlimbs: int) -> np.ndarray:
        """Slot values to an NTT-form plaintext polynomial over the first ``nlimbs`` primes."""
        coeffs = encoder.encode(slotvec, self.ring.n, scale)
        return self.ring.ntt(self.ring.from_signed(coeffs, nlimbs))

    def encode_pts(self, slotvecs: np.ndarray, scale: float, nlimbs: int) -> list[np.ndarray]:
        """:meth:`encode_pt` of each row of a (k, slots) array (one batched FFT)."""
        coeffs = encoder.encode_many(slotvecs, self.ring.n, scale)
        return [self.ring.ntt(self.ring.from_signed(c, nlimbs)) for c in coeffs]

    def _check_range(self, values: np.ndarray, scale: float, op: str, level: int | None = None) -> None:
        top = float(np.max(np.abs(values))) if values.size else 0.0
        limit = self._max_value(scale, level)
        if top >= limit:
            raise EncodingError(f"cannot {op}: |value| {top:.4g} is out of range for scale 2^{math.log2(scale):.1f} "
                                f"(must stay below {limit:.4g}: a quarter of q_0 "
                                f"at the scale it has once rescaled to level 0)")

    def _encrypt(self, values: np.ndarray, key_id: str, scale: float | None, rng, secret=None, public=None):
        scale = float(self.params.default_scale if scale is None else scale)
        if not (math.isfinite(scale) and scale >= 1.0):
            raise EncodingError(f"cannot encrypt: invalid scale {scale}")
        self._check_range(values, scale, "encrypt")
        rows, size = values.shape
        stride = layout.next_pow2(size)
        if stride > self.params.slots:
            raise EncodingError(f"cannot encrypt: vectors of size {size} exceed the {self.params.slots} slots")
        slotvecs = layout.pack(values, self.params.slots, stride)
        nq = len(self.ring.q)
        data = self._encrypt_pts(self.encode_pts(slotvecs, scale, nq), nq, rng, secret=secret, public=public)
        nvar, vmax = self._fresh_noise(values, scale, public)
        return self._wrap(key_id, (rows, size), scale, data, nvar, vmax, stride=stride)

    def _fresh_noise(self, values: np.ndarray, scale: float, public) -> tuple[float, float]:
        """(nvar, vmax) of a fresh encryption of ``values`` (``public``: the key used, or None)."""
        top = float(np.max(np.abs(values))) if values.size else 0.0
        # A public key over Q alone (older key files) leaves e v + e0 + e1 s: see _public_zero.
        nvar = self._noise.fresh(public is not None, public is not None and public.shape[1] != len(self.ring.q))
        return nvar, noise.value_bound(top, scale)

    def _encrypt_pts(self, pts, nl: int, rng, secret=None, public=None) -> np.ndarray:
        """Encryptions of NTT-form plaintexts over the first ``nl`` primes (secret or public key)."""
        r = self.ring
        data = np.empty((len(pts), 2, nl, r.n), dtype=np.uint64)
        for i, m in enumerate(pts):
            if secret is not None:
                a = keygen.uniform(r, nl, rng)
                c0 = r.sub(keygen.error(r, self.params, nl, rng), r.mul(a, np.ascontiguousarray(secret[:nl])))
                data[i, 0], data[i, 1] = r.add(c0, m), a
            else:
                c0, c1 = self._public_zero(public, rng, nl)
                data[i, 0], data[i, 1] = c0[:nl], c1[:nl]  # a lower level: the other primes are not computed
                r.add(np.ascontiguousarray(data[i, 0]), m, data[i, 0])
        return data

    def _public_zero(self, public: np.ndarray, rng, limbs: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A fresh public-key encryption of zero over Q (or its first ``limbs`` primes).

        With a key over Q*P the encryption is computed there and divided by P, which
        leaves only rounding noise; a key over Q alone (older key files) gives the
        plain e*v + e0 + e1*s noise. Dividing by P reads only limb i and the special
        limbs, so ``limbs`` computes over q_0 .. q_{limbs-1} and P alone: the same
        residues from the same draws as the full encryption's first limbs, for a
        fraction of the work (a masked refresh or a sanitised answer sits low).
        """
        nq = len(self.ring.q)
        full = public.shape[1] != nq
        if full and limbs is not None and limbs < nq:
            r = self._prefix_ring(limbs)
            keep = list(range(limbs)) + list(range(nq, public.shape[1]))
            public = public[:, keep]
        else:
            r = self.ring
        nl = public.shape[1]
        v = keygen.sample_ephemeral(self.params, rng)  # uniform ternary, even for a sparse secret
        v = keygen.full_ntt(r, v) if full else r.ntt(r.from_signed(v, nq))
        pk0, pk1 = np.ascontiguousarray(public[0]), np.ascontiguousarray(public[1])
        c0 = r.add(r.mul(pk0, v), keygen.error(r, self.params, nl, rng))
        c1 = r.add(r.mul(pk1, v), keygen.error(r, self.params, nl, rng))
        return (r.drop_special(c0), r.drop_special(c1)) if full else (c0, c1)

    def _prefix_ring(self, limbs: int) -> RnsRing:
        """The ring over q_0 .. q_{limbs-1} and the special primes (kept: its tables cost a little to build)."""
        rings = self.__dict__.setdefault("_prefix_rings", {})
        if limbs not in rings:
            rings[limbs] = RnsRing(self.ring.n, self.ring.q[:limbs], self.ring.p)
        return rings[limbs]

    def _decrypt_slots(self, ct: Ciphertext, s_full: np.ndarray) -> np.ndarray:
        """Decrypt to the (nct, slots) complex slot vectors."""
        return np.array([encoder.decode(coeffs, ct.scale) for coeffs in self._phases(ct, s_full)])

    def _phases(self, ct: Ciphertext, s_full: np.ndarray) -> list[np.ndarray]:
        """Each ciphertext's c0 + c1 s (+ c2 s^2 for a deferred product), as centred coefficients."""
        return [self._lift(m) for m in self._phase_limbs(ct, s_full)]

    def _phase_limbs(self, ct: Ciphertext, s_full: np.ndarray) -> list[np.ndarray]:
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

    def _lift(self, m: np.ndarray) -> np.ndarray:
        """Centred integer coefficients (as float64) from limbs 0 and 1 (Garner's CRT)."""
        q0 = self.ring.q[0]
        r0 = m[0].astype(np.int64)
        if m.shape[0] == 1:
            return np.where(r0 > q0 // 2, r0 - q0, r0).astype(np.float64)
        q1 = self.ring.q[1]
        inv = pow(q0, -1, q1)
        diff = (m[1] + np.uint64(q1) - m[0] % np.uint64(q1)) % np.uint64(q1)
        t = self.ring.mul_scalar_limb(diff, inv, 1).astype(np.int64)
        t = np.where(t > q1 // 2, t - q1, t)
        small = (t == 0) | (t == -1)  # |x| < q0: exact in int64
        exact = (r0 + np.int64(q0) * np.where(small, t, 0)).astype(np.float64)
        return np.where(small, exact, r0.astype(np.float64) + float(q0) * t.astype(np.float64))

    def _max_value(self, scale: float, level: int | None = None) -> float:
        """Largest |value| whose encoding decrypts correctly once rescaled down to q_0.

        Rescaling keeps a ciphertext's scale in the same ratio to its level's working scale,
        so at level 0 it is ``scale * Delta_0 / Delta_level`` (``level``: default the top,
        where fresh encryptions start). Chains whose floor primes are wider than their
        scaling primes reach level 0 at a smaller scale than they start with.
        """
        level = self.params.levels if level is None else level
        return self.ring.q[0] / (4.0 * scale * self._scale_at(0) / self._scale_at(level))
