"""The CKKS side of the masked refresh: masks in the coefficient domain, maps the key holder applies.

The masked-refresh role of :class:`~he_core.schemes.ckks.scheme.CkksScheme`; the protocol is in
:mod:`he_core.refresh`. Everything happens on the integer polynomial ``y = c0 + c1 s``
(the decrypted *phase*, before any decoding), so no floating-point FFT ever touches a
masked value:

* a target is a **coefficient map**: the identity (same layout, full budget), or the
  selection of the coefficients that hold a coefficient-packed batch's values, placed
  where the target layout wants them (reversed row, table row, or a constant
  polynomial, whose slots all hold the value). Between slot and coefficient packing only
  two shapes move, through an exact integer transform both parties apply alike
  (:mod:`.reencode`): a clean ``(B, 1)`` batch at stride ``N / B`` into ``B`` replicated
  slots, and ``B`` replicated slots into a ``(B, 1)`` batch at stride 1; other domain
  changes would need a DFT of masked ~100-bit integers in floating point and are refused;
* the trainer adds a uniform mask ``width`` bits wide to the coefficients the map
  reads and a mask uniform modulo Q to every other coefficient, after re-randomising
  the ciphertext with a fresh public-key encryption of zero (so ``c1`` tells the key
  holder nothing about how the ciphertext was computed);
* the key holder lifts the read coefficients exactly (:mod:`.exact`), changes their
  scale from the ciphertext's to the target's with exact rounding, and encrypts the
  mapped polynomial afresh at the target level; the trainer subtracts the same map of
  its mask.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import EncodingError
from ...refresh import Mask, MaskPlan
from . import exact, layout, noise, reencode
from .arith import Evaluator
from .coeff_layout import coeff_meta, coeff_positions, is_coeff
from .context import CkksContext
from .decryption import Decryptor
from .encryption import Encryptor
from .keyset import KeySet
from .noise_records import NoiseRecords

FRESH_LAYOUTS = ("coeff", "constant", "slots")
#: Metadata that says where the values are: an unmasked answer takes them from the map alone.
LAYOUT_KEYS = ("coeff", "rev", "stride", "rep", "dirty", "level")


class RefreshMap:
    """Where a refresh reads and writes: source (ct, coefficient) -> target (ct, coefficient).

    Attributes:
        src_ct, src_pos, dst_ct, dst_pos: equal-length int64 arrays.
        n_out: ciphertexts in the answer.
        level, scale: the answer's level and recorded scale.
        meta: the answer's layout metadata.
    """

    def __init__(self, src: tuple[np.ndarray, np.ndarray], dst: tuple[np.ndarray, np.ndarray], n_out: int,
                 level: int, scale: float, meta: dict, shape: tuple[int, int] | None = None, transform=None):
        self.src_ct, self.src_pos = (np.ascontiguousarray(a, dtype=np.int64) for a in src)
        self.dst_ct, self.dst_pos = (np.ascontiguousarray(a, dtype=np.int64) for a in dst)
        self.n_out, self.level, self.scale, self.meta = n_out, level, float(scale), meta
        # A move between coefficient and slot packing: the answer's shape, and the exact map
        # (read integers, source scale) -> integers at dst_pos, instead of a rescaled copy.
        self.shape, self.transform = shape, transform


class MaskedRefresher:
    """Both sides' steps of the masked refresh: the map, the trainer's mask and unmask, the key holder's re-encryption.

    Args:
        ctx: the parameter set's objects; keyset: the installed public key and the secret;
        records: noise records; evaluator: relinearises; encryptor: encryptions (of zero);
        decryptor: exact phases.
    """

    def __init__(self, ctx: CkksContext, keyset: KeySet, records: NoiseRecords, evaluator: Evaluator,
                 encryptor: Encryptor, decryptor: Decryptor) -> None:
        self.ctx, self.params, self.ring, self.scales, self.noise = ctx, ctx.params, ctx.ring, ctx.scales, ctx.noise
        self.keyset, self.records, self.evaluator = keyset, records, evaluator
        self.encryptor, self.decryptor = encryptor, decryptor

    # ------------------------------------------------------------------ the map
    def map(self, ct: Ciphertext, target: Any) -> RefreshMap:
        """The public map a refresh of ``ct`` into ``target`` applies (identical on both sides)."""
        n, top = self.ring.n, self.params.levels
        if target is None:
            nct = ct.data.shape[0]
            every = np.arange(nct * n)
            pos = (every // n, every % n)
            meta = {**ct.meta, "level": top}
            return RefreshMap(pos, pos, nct, top, self.scales.at(top), meta)
        if not isinstance(target, dict) or target.get("layout") not in FRESH_LAYOUTS:
            raise EncodingError(f"cannot refresh into {target!r}: a refresh target is None or a layout dict "
                                f"with layout in {FRESH_LAYOUTS}")
        level, scale = self.target_level_scale(target)
        kind = target["layout"]
        if kind == "slots":
            if is_coeff(ct):
                return self.coeffs_to_slots(ct, target, level, scale)
            nct = ct.data.shape[0]
            every = np.arange(nct * n)
            pos = (every // n, every % n)
            return RefreshMap(pos, pos, nct, level, scale, {**ct.meta, "level": level})
        if not is_coeff(ct):
            return self.slots_to_coeffs(ct, target, level, scale)
        src = coeff_positions(ct, self.ring.n)
        if kind == "constant":
            if ct.shape != (1, 1):
                raise EncodingError(f"cannot refresh {ct.describe()} into a constant: it holds {ct.shape} values")
            return RefreshMap((src[0].reshape(-1), src[1].reshape(-1)), (np.zeros(1), np.zeros(1)), 1, level, scale,
                              layout.meta(level, 1, rep=True))
        stride, rev = target.get("stride"), target.get("rev")
        if stride != ct.meta["stride"] or not isinstance(rev, bool):
            raise EncodingError(f"cannot refresh {ct.describe()} into {target!r}: a coefficient target keeps the "
                                f"stride ({ct.meta['stride']}) and names rev")
        like = ct.replace(meta={**ct.meta, "rev": rev})
        dst = coeff_positions(like, self.ring.n)
        return RefreshMap((src[0].reshape(-1), src[1].reshape(-1)), (dst[0].reshape(-1), dst[1].reshape(-1)),
                          ct.data.shape[0], level, scale, coeff_meta(level, stride, rev, dirty=False))

    def coeffs_to_slots(self, ct: Ciphertext, target: dict, level: int, scale: float) -> RefreshMap:
        """A clean ``(B, 1)`` batch at stride ``N / B`` (packed constants) -> ``B`` values replicated in slots."""
        n, count = self.ring.n, ct.rows
        if not (ct.shape == (count, 1) and ct.data.shape[0] == 1 and count & (count - 1) == 0 and count <= n // 2
                and ct.meta["stride"] == n // count and not ct.meta["dirty"] and not ct.meta["rev"]
                and target.get("batch") == count):
            raise self.no_domain_change(ct, target)
        src = (np.zeros(count), np.arange(count) * (n // count))
        spacing = n // (2 * count)  # the answer's non-zero coefficients

        def transform(ints: list[int], scale_in: float) -> list[int]:
            return reencode.coeffs_to_slots(ints, n, scale_in, scale)[::spacing]

        return RefreshMap(src, (np.zeros(2 * count), np.arange(2 * count) * spacing), 1, level, scale,
                          layout.meta(level, count, rep=True), shape=self.answer_shape(ct, target),
                          transform=transform)

    def slots_to_coeffs(self, ct: Ciphertext, target: dict, level: int, scale: float) -> RefreshMap:
        """``B`` values replicated in slots -> a clean ``(B, 1)`` batch at coefficients ``0 .. B - 1``."""
        n, count = self.ring.n, ct.size
        if not (ct.rows == 1 and ct.data.shape[0] == 1 and ct.meta["rep"] and not ct.meta["dirty"]
                and ct.meta["stride"] == count and count & (count - 1) == 0 and count <= n // 2
                and target.get("layout") == "coeff" and target.get("stride") == 1 and target.get("rev") is False):
            raise self.no_domain_change(ct, target)
        spacing = n // (2 * count)
        # Coefficient N / 2 (k = B) only carries imaginary parts: it is not read (one masked entry less).
        ks = [k for k in range(2 * count) if k != count]
        src = (np.zeros(len(ks)), np.array(ks) * spacing)

        def transform(ints: list[int], scale_in: float) -> list[int]:
            return reencode.slots_to_coeffs(ints[:count] + [0] + ints[count:], n, count, scale_in, scale)

        return RefreshMap(src, (np.zeros(count), np.arange(count)), 1, level, scale,
                          coeff_meta(level, 1, False, dirty=False), shape=self.answer_shape(ct, target),
                          transform=transform)

    @staticmethod
    def answer_shape(ct: Ciphertext, target: Any) -> tuple[int, ...]:
        """The answer's shape, without building the map: a move between packings transposes the batch."""
        kind = target.get("layout") if isinstance(target, dict) else None
        if kind == "slots" and is_coeff(ct):
            return (1, ct.rows)
        if kind == "coeff" and not is_coeff(ct):
            return (ct.size, 1)
        return tuple(ct.shape)

    def target_level_scale(self, target: dict) -> tuple[int, float]:
        """The level and scale a refresh target names, checked (the scale must be its level's working one)."""
        level, scale = target.get("level"), target.get("scale")
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= self.params.levels:
            raise EncodingError(f"cannot refresh: target level {level!r} is not in 0 .. {self.params.levels}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) \
                or not scale == self.scales.at(level):
            raise EncodingError(f"cannot refresh: target scale {scale!r} is not the working scale of level {level}")
        return level, float(scale)

    def no_domain_change(self, ct: Ciphertext, target: dict) -> EncodingError:
        """The error for a refresh between slot and coefficient packing other than the two exact moves."""
        return EncodingError(f"cannot refresh {ct.describe()} into {target!r}: between slot and coefficient packing "
                             "only a clean (B, 1) batch at stride N/B moves into B replicated slots (target "
                             "'slots' with batch B), and B clean replicated slots into a (B, 1) batch at stride 1; "
                             "anything else would decode masked values in floating point")

    # ------------------------------------------------------------------ trainer: plan and mask
    def plan(self, ct: Ciphertext, target: Any, value_bound: float | None) -> MaskPlan:
        """The trainer's mask plan for refreshing ``ct`` into ``target`` (``value_bound``: a declared bound)."""
        rmap = self.map(ct, target)
        est = self.records.estimate(ct)
        # A declared bound is used as it is, never tightened by the tracked one: the tracked
        # bound depends on the data (e.g. a review's length), and the mask's width shows.
        values = float(est["value_bound"]) if value_bound is None else float(value_bound)
        bound = float(ct.scale) * values + float(est["coeff_bound"])
        primes = self.ring.q[: layout.level(ct) + 1]
        room = sum(math.log2(q) for q in primes) - 1.0
        return MaskPlan(read=(rmap.src_ct, rmap.src_pos), bound_bits=math.log2(max(bound, 1.0)), room_bits=room,
                        moduli=tuple(primes), n_cts=int(ct.data.shape[0]), n_entries=self.ring.n)

    def apply_mask(self, ct: Ciphertext, mask: Mask, rng) -> Ciphertext:
        """``ct`` re-randomised and masked per ``mask`` (the trainer's step before the key holder)."""
        ct = self.evaluator.relin(ct)
        nl = layout.level(ct) + 1
        plan = mask.plan
        data = ct.data.copy()
        public = self.keyset.for_key(ct.key_id, "mask").data["pk"]
        bounded = [self.bounded_residues(mask, limb) for limb in range(len(plan.moduli))]
        for i in range(data.shape[0]):
            poly = np.ascontiguousarray(mask.residues[i]).copy()
            sel = plan.read[0] == i
            for j in range(nl):
                poly[j, plan.read[1][sel]] = bounded[j][sel]
            self.ring.ntt(poly)
            z0, z1 = self.encryptor.public_zero(public, rng, nl)  # re-randomises c1: it no longer shows the computation
            self.ring.add(data[i, 0], np.ascontiguousarray(z0[:nl]), data[i, 0])
            self.ring.add(data[i, 0], poly, data[i, 0])
            self.ring.add(data[i, 1], np.ascontiguousarray(z1[:nl]), data[i, 1])
        return ct.replace(data=data, meta=self.outbound_meta(ct))

    def outbound_meta(self, ct: Ciphertext) -> dict:
        """Metadata for a ciphertext that leaves the trainer: its layout, and public noise fields only.

        The tracked noise and value bounds follow the computation, so they depend on the
        data (a gathered row's bound grows with the review's length): they stay behind.
        What is sent claims the noise of a fresh public-key encryption and no value bound,
        the same for every request of a signature.
        """
        meta = {k: v for k, v in ct.meta.items() if k not in noise.NOISE_KEYS + ("fresh", "flood")}
        return self.records.meta(meta, layout.level(ct), self.noise.fresh(True), noise.FLOAT_LIMIT)

    def bounded_residues(self, mask: Mask, limb: int) -> np.ndarray:
        """The mask's bounded entries (high * 2^63 + low) modulo ring prime ``limb``, vectorised."""
        q = self.ring.q[limb]
        high = np.mod(mask.high, q).astype(np.uint64)
        low = (mask.low.astype(np.uint64) % np.uint64(q))
        return exact.addmod(exact.mulmod(self.ring, high, pow(2, 63, q), limb), low, q)

    # ------------------------------------------------------------------ key holder
    def reencrypt_masked(self, masked: Ciphertext, target: Any, key, rng) -> Ciphertext:
        """The key holder's step: the map of the masked phase, encrypted afresh at the target."""
        rmap = self.map(masked, target)
        phases = self.decryptor.phase_limbs(masked, self.keyset.s_full(key))
        nl = layout.level(masked) + 1
        read = np.stack([phases[c][:, p] for c, p in zip(rmap.src_ct, rmap.src_pos)], axis=1) \
            if rmap.src_ct.size else np.zeros((nl, 0), dtype=np.uint64)
        lifted = exact.lift(self.ring, np.ascontiguousarray(read))
        out_nl = rmap.level + 1
        if rmap.transform is not None:
            mapped = self.residues(rmap.transform(lifted.to_ints(), masked.scale), out_nl)
        else:
            mod_p = {limb: lifted.mod_prime(limb) for limb in range(out_nl)}
            mapped = exact.scale_round(self.ring, mod_p, lifted.mod_2_64(), exact.scale_ratio(rmap.scale, masked.scale))
        pts = self.place(rmap, mapped, out_nl)
        seeds: list[bytes] = []
        data = self.encryptor.encrypt_pts(pts, out_nl, rng, secret=self.keyset.s_full(key), seeds_out=seeds)
        shape = masked.shape if rmap.shape is None else rmap.shape
        fresh = self.ctx.ciphertext(masked.key_id, shape, rmap.scale, data, self.fresh_meta(rmap))
        return self.encryptor.seeded(fresh, seeds)  # travels back to the trainer at half size

    def residues(self, ints: list[int], nl: int) -> dict[int, np.ndarray]:
        """Signed integers reduced modulo each of the first ``nl`` primes."""
        return {limb: np.array([v % q for v in ints], dtype=np.uint64)
                for limb, q in enumerate(self.ring.q[:nl])}

    def place(self, rmap: RefreshMap, mapped: dict[int, np.ndarray], nl: int) -> list[np.ndarray]:
        """NTT-form plaintexts with the mapped residues at the map's target coefficients."""
        pts = []
        for i in range(rmap.n_out):
            poly = np.zeros((nl, self.ring.n), dtype=np.uint64)
            sel = rmap.dst_ct == i
            for limb in range(nl):
                poly[limb, rmap.dst_pos[sel]] = mapped[limb][sel]
            pts.append(self.ring.ntt(poly))
        return pts

    def fresh_meta(self, rmap: RefreshMap) -> dict:
        """Layout and noise metadata of the answer: a fresh secret-key encryption.

        Its value bound is the masked one's (the key holder knows nothing tighter); the
        trainer sets the real one when it removes the mask.
        """
        meta = {k: v for k, v in rmap.meta.items() if k not in noise.NOISE_KEYS}
        return self.records.meta({**meta, "level": rmap.level}, rmap.level, self.noise.fresh(False),
                                 noise.FLOAT_LIMIT)

    # ------------------------------------------------------------------ trainer: unmask
    def remove_mask(self, fresh: Ciphertext, mask: Mask, target: Any, source: Ciphertext,
                    value_bound: float | None) -> Ciphertext:
        """The trainer's last step: the same map of the mask subtracted from the key holder's answer."""
        rmap = self.map(source, target)
        if layout.level(fresh) != rmap.level or fresh.data.shape[0] != rmap.n_out or fresh.scale != rmap.scale \
                or (rmap.shape is not None and tuple(fresh.shape) != tuple(rmap.shape)):
            raise EncodingError(f"cannot unmask: the answer {fresh.describe()} is not at the target's level and scale")
        nl = rmap.level + 1
        if rmap.transform is not None:  # the same exact map of the mask (map(M) - map(m) = map(M - m) +- 1)
            mapped = self.residues(rmap.transform(mask.as_ints(), source.scale), nl)
        else:
            mod_p = {limb: self.bounded_residues(mask, limb) for limb in range(nl)}
            mapped = exact.scale_round(self.ring, mod_p, mask.mod_2_64(), exact.scale_ratio(rmap.scale, source.scale))
        pts = self.place(rmap, mapped, nl)
        data = fresh.data.copy()
        for i, pt in enumerate(pts):
            self.ring.sub(data[i, 0], pt, data[i, 0])
        # Both sides round their scaled values: the answer is off by at most one unit per coefficient.
        var = self.records.nv(fresh)[0] + 1.0 / 3.0
        # A declared bound replaces the tracked one (public: the answer's metadata shows nothing of the data).
        vmax = float(source.meta["vmax"]) if value_bound is None else float(value_bound)
        # The layout is the map's, never the answer's own claim (a relabelled answer would decrypt wrong).
        kept = {k: v for k, v in fresh.meta.items() if k not in LAYOUT_KEYS}
        layout_fields = {k: v for k, v in rmap.meta.items() if k not in noise.NOISE_KEYS}
        meta = self.records.meta({**kept, **layout_fields, "level": rmap.level}, rmap.level, var, vmax)
        return fresh.replace(data=data, meta={**meta, "fresh": True})  # its noise is the key holder's, fresh

    def target_signature(self, ct: Ciphertext, target: Any) -> dict:
        """What the key holder sees of a refresh of ``ct`` into ``target`` (layouts, levels, scale)."""
        rmap = self.map(ct, target)
        kind = "same" if target is None else target["layout"]
        sig = {"layout": kind, "shape": list(ct.shape), "level_in": layout.level(ct), "level_out": rmap.level,
               "scale_out": rmap.scale, "coeff": bool(rmap.meta.get("coeff", False)),
               "stride": int(rmap.meta["stride"])}
        if rmap.transform is not None:  # a move between coefficient and slot packing: the answer's shape
            sig["shape_out"] = list(rmap.shape)
        if rmap.meta.get("coeff"):
            sig["rev"] = bool(rmap.meta["rev"])
        return sig
