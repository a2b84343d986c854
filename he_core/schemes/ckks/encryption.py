"""CKKS encryption: packed slot vectors (or a layout's plaintexts) under a secret or a public key.

Slot vectors are encoded (canonical embedding, :mod:`.encoder`) into NTT-form plaintexts
over the first limbs; a fresh ciphertext is (b, a) with b = -a s + e + m under the
secret key, or a public-key encryption of m with its own ternary and Gaussian samples;
its noise record comes from :class:`~.noise_model.NoiseModel`. Decryption: :mod:`.decryption`.
"""
from __future__ import annotations

import math

import numpy as np

from ...ciphertext import Ciphertext
from ...keys import PublicKeys, SecretKey
from ...errors import EncodingError
from . import keys as keygen, seeded, layout, noise
from .coeff_layout import coeff_meta, coeff_polys
from .context import CkksContext
from .encoder import PlaintextEncoder
from .keyset import KeySet
from .noise_records import NoiseRecords
from .ring import RnsRing
from .targets import LayoutTargets


class Encryptor:
    """The encryptor role: fresh ciphertexts (any layout) and public-key encryptions of zero.

    Args:
        ctx: the parameter set's objects; encoder: slot vectors to plaintexts; records: the
        fresh noise records; keyset: the secret in NTT form; targets: checks a layout target.
    """

    def __init__(self, ctx: CkksContext, encoder: PlaintextEncoder, records: NoiseRecords, keyset: KeySet,
                 targets: LayoutTargets) -> None:
        self.ctx, self.params, self.ring, self.noise = ctx, ctx.params, ctx.ring, ctx.noise
        self.encoder, self.records, self.keyset, self.targets = encoder, records, keyset, targets
        self._prefix_rings: dict[int, RnsRing] = {}  # kept: their tables cost a little to build

    def encrypt(self, values: np.ndarray, key_id: str, scale: float | None, rng, secret=None, public=None):
        """A fresh slot-packed encryption of (rows, size) ``values`` (``secret``: NTT form, or ``public``: (b, a))."""
        scale = float(self.params.default_scale if scale is None else scale)
        if not (math.isfinite(scale) and scale >= 1.0):
            raise EncodingError(f"cannot encrypt: invalid scale {scale}")
        self.encoder.check_range(values, scale, "encrypt")
        rows, size = values.shape
        stride = layout.next_pow2(size)
        if stride > self.params.slots:
            raise EncodingError(f"cannot encrypt: vectors of size {size} exceed the {self.params.slots} slots")
        slotvecs = layout.pack(values, self.params.slots, stride)
        nq, seeds = len(self.ring.q), []
        data = self.encrypt_pts(self.encoder.encode_many(slotvecs, scale, nq), nq, rng, secret=secret, public=public,
                                seeds_out=seeds)
        nvar, vmax = self.fresh_noise(values, scale, public)
        return self.seeded(self.wrap(key_id, (rows, size), scale, data, nvar, vmax, stride=stride), seeds)

    @staticmethod
    def seeded(ct: Ciphertext, seeds: list[bytes]) -> Ciphertext:
        """ct naming the seeds of its uniform halves (a secret-key encryption's), so it travels seeded."""
        return ct.replace(meta=seeded.with_seeds(ct.meta, seeds)) if seeds else ct

    def wrap(self, key_id: str, shape, scale: float, data: np.ndarray, nvar: float, vmax: float,
             **meta) -> Ciphertext:
        """A ciphertext of ``data`` with a slot layout (``meta``: :func:`.layout.meta`'s flags) and its noise record."""
        level = data.shape[2] - 1
        meta = self.records.meta(layout.meta(level, **meta), level, nvar, vmax)
        return self.ctx.ciphertext(key_id, shape, scale, data, meta)

    def encrypt_layout(self, values: np.ndarray, key: SecretKey | None, public: PublicKeys | None, scale, rng,
                       target) -> Ciphertext:
        """A fresh encryption of ``values`` into the layout ``target`` names (:meth:`LayoutTargets.check`)."""
        target = self.targets.check(target, values)
        level = target["level"]
        scale = float(target["scale"] if scale is None else scale)
        self.encoder.check_range(values, scale, "encrypt", level)
        nl = level + 1
        if target["layout"] == "slots":
            stride = layout.next_pow2(values.shape[1])
            pts = self.encoder.encode_many(layout.pack(values, self.params.slots, stride), scale, nl)
            meta = layout.meta(level, stride)
        elif target["layout"] == "constant":
            pts = [self.encoder.encode(np.full(self.params.slots, values[0, 0]), scale, nl)]
            meta = layout.meta(level, 1, rep=True)
        else:
            stride, rev = target["stride"], target["rev"]
            polys = coeff_polys(values, stride, rev, scale, self.ring.n)
            pts = [self.ring.ntt(self.ring.from_signed(c, nl)) for c in polys]
            meta = coeff_meta(level, stride, rev, dirty=False)
        secret = None if key is None else self.keyset.s_full(key)
        pk = None if public is None else public.data["pk"]
        seeds: list[bytes] = []
        data = self.encrypt_pts(pts, nl, rng, secret=secret, public=pk, seeds_out=seeds)
        key_id = key.key_id if key is not None else public.key_id
        meta = self.records.meta(meta, level, *self.fresh_noise(values, scale, pk))  # rint: the same 1/12
        return self.seeded(self.ctx.ciphertext(key_id, values.shape, scale, data, meta), seeds)

    def fresh_noise(self, values: np.ndarray, scale: float, public) -> tuple[float, float]:
        """(nvar, vmax) of a fresh encryption of ``values`` (``public``: the key used, or None)."""
        top = float(np.max(np.abs(values))) if values.size else 0.0
        # A public key over Q alone (older key files) leaves e v + e0 + e1 s: see public_zero.
        nvar = self.noise.fresh(public is not None, public is not None and public.shape[1] != len(self.ring.q))
        return nvar, noise.value_bound(top, scale)

    def encrypt_pts(self, pts, nl: int, rng, secret=None, public=None, seeds_out: list | None = None) -> np.ndarray:
        """Encryptions of NTT-form plaintexts over the first ``nl`` primes (secret or public key).

        Under the secret key each ``a`` is the expansion of a fresh seed (:mod:`.seeded`),
        appended to ``seeds_out`` when given.
        """
        r = self.ring
        data = np.empty((len(pts), 2, nl, r.n), dtype=np.uint64)
        for i, m in enumerate(pts):
            if secret is not None:
                seed = rng.bytes(seeded.SEED_BYTES)
                a = seeded.expand(seed, r.q[:nl], r.n)
                if seeds_out is not None:
                    seeds_out.append(seed)
                c0 = r.sub(keygen.error(r, self.params, nl, rng), r.mul(a, np.ascontiguousarray(secret[:nl])))
                data[i, 0], data[i, 1] = r.add(c0, m), a
            else:
                c0, c1 = self.public_zero(public, rng, nl)
                data[i, 0], data[i, 1] = c0[:nl], c1[:nl]  # a lower level: the other primes are not computed
                r.add(np.ascontiguousarray(data[i, 0]), m, data[i, 0])
        return data

    def public_zero(self, public: np.ndarray, rng, limbs: int | None = None) -> tuple[np.ndarray, np.ndarray]:
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
            r = self.prefix_ring(limbs)
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

    def prefix_ring(self, limbs: int) -> RnsRing:
        """The ring over q_0 .. q_{limbs-1} and the special primes (kept: its tables cost a little to build)."""
        if limbs not in self._prefix_rings:
            self._prefix_rings[limbs] = RnsRing(self.ring.n, self.ring.q[:limbs], self.ring.p)
        return self._prefix_rings[limbs]
