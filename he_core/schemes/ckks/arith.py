"""Ciphertext arithmetic of the CKKS scheme on aligned operands: +, *, rescale, plaintext factors, re-keying.

:class:`Evaluator` is the scheme's evaluator role (levels and scales are brought together
first by :class:`~.alignment.LevelAligner`). Ciphertext payloads are uint64 arrays of
shape (nct, 2, level + 1, N) in NTT form.

Scale management: the working scale of level l is fixed by the level alone,
Delta_L = 2^scale_bits and Delta_{l-1} = Delta_l^2 / q_l (:class:`~.scales.ScaleLadder`),
so that products of operands at their level's scale land exactly on the next level's
scale. Plaintext factors are encoded at whatever real scale makes the rescaled product
land on Delta_{l-1}. Scalar factors of moderate size only change the recorded scale (no
level). The exact scale is always the one recorded on the ciphertext.
"""
from __future__ import annotations

import math

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import EncodingError, HEOverflowError, LevelExhaustedError
from ...keys import SwitchKey
from . import encoder, layout, noise
from .context import CkksContext
from .encoder import PlaintextEncoder
from .keyset import KeySet

_TINY = float(np.finfo(np.float64).tiny)  # the smallest normal float64
from .noise_records import NoiseRecords
from .scales import FREE_SCALAR_MIN


class Evaluator:
    """Sums, products (relinearised or deferred), rescaling, plaintext and scalar factors, key switches to a new key.

    Args:
        ctx: the parameter set's objects; encoder: encodes the plaintext factors;
        records: writes the results' noise records; keyset: the relinearisation key.
    """

    def __init__(self, ctx: CkksContext, encoder: PlaintextEncoder, records: NoiseRecords, keyset: KeySet) -> None:
        self.params, self.ring, self.switcher, self.scales, self.noise = (ctx.params, ctx.ring, ctx.switcher,
                                                                          ctx.scales, ctx.noise)
        self.encoder, self.records, self.keyset = encoder, records, keyset

    def rescale(self, ct: Ciphertext) -> Ciphertext:
        """``ct`` divided by its top prime: one level down, scale / q_level.

        Raises:
            LevelExhaustedError: ``ct`` is at level 0.
            HEOverflowError: its recorded values would not fit the smaller modulus (they would
                wrap, and a wrap at level 0 can decode to a plausible wrong value).
        """
        level = layout.level(ct)
        if level == 0:
            raise LevelExhaustedError(f"cannot rescale {ct.describe()}: no level left (level 0)")
        self._check_fits(ct, level - 1, ct.scale / self.ring.q[level])
        data = np.empty(ct.data.shape[:2] + (level, self.ring.n), dtype=np.uint64)
        x_parts = ct.data.shape[1]  # 3 for a product whose relinearisation was deferred
        for i in range(ct.data.shape[0]):
            for p in range(x_parts):
                self.ring.rescale(ct.data[i, p], data[i, p])
        meta = self.records.meta({**ct.meta, "level": level - 1}, level - 1,
                                 self.noise.rescale(self.records.nv(ct)[0], level, x_parts), ct.meta["vmax"])
        return ct.replace(data=data, scale=ct.scale / self.ring.q[level], meta=meta)

    def _check_fits(self, ct: Ciphertext, level: int, scale: float) -> None:
        """Refuse a result whose recorded bound times ``scale`` reaches Q_level / 2, where its phase would wrap.

        The record is a sound bound, so a refusal may be cautious; a wrap at level 0 would not be
        seen at all (a full-slot constant wraps as one coefficient and decodes to a plausible value).
        """
        phase = float(scale) * float(ct.meta["vmax"])
        room = sum(math.log2(q) for q in self.ring.q[: level + 1])
        if math.log2(max(phase, 1.0)) >= room - 1.0:
            raise HEOverflowError(f"cannot rescale {ct.describe()} to level {level}: its values (up to "
                                  f"{float(ct.meta['vmax']):.4g}) at scale 2^{math.log2(scale):.1f} would not fit "
                                  f"level {level}'s modulus (2^{room:.1f}) and would wrap; keep values smaller or "
                                  "stop a level higher")

    @staticmethod
    def combined_meta(a: Ciphertext, b: Ciphertext, either: bool) -> dict:
        """Layout flags of a sum (garbage if either operand has some) or a product (if both do).

        A replicated operand counts as garbage outside its first block unless both are replicated.
        """
        rep = a.meta["rep"] and b.meta["rep"]
        ga = a.meta["dirty"] or a.meta["rep"]
        gb = b.meta["dirty"] or b.meta["rep"]
        garbage = (ga or gb) if either else (ga and gb)
        return {**a.meta, "rep": rep, "dirty": garbage and not rep or (rep and (a.meta["dirty"] or b.meta["dirty"]))}

    def add(self, a: Ciphertext, b: Ciphertext, sub: bool = False, rule: str = "robust") -> Ciphertext:
        """a + b (or a - b) of aligned operands, at a's scale.

        ``rule`` says how the errors combine: ``"robust"`` (any correlation: operands the
        caller chose), ``"independent"`` (differently masked or weighted rotations) or
        ``"rotation"`` (b is a rotation of a: see :func:`.noise.rotation_sum_var`).
        """
        a, b = self.relin(a), self.relin(b)
        data = self.ring.add_stacked(a.data, b.data, sub)
        return a.replace(data=data, meta=self.sum_meta(a, b, rule))

    def sum_meta(self, a: Ciphertext, b: Ciphertext, rule: str = "robust") -> dict:
        """The metadata of ``a + b`` (see :meth:`add`): only the operands' records, scales and levels are read."""
        # b's message is read at a's scale: a (tiny) deterministic error when the scales differ.
        if rule == "rotation":
            (va, ma), (vb, mb) = self.records.nv(a), self.records.nv(b)
            nvar = noise.rotation_sum_var(va, vb) + noise.mismatch_var(a.scale, b.scale, mb)
        else:
            (va, ma), (vb, mb) = self.records.trio(a), self.records.trio(b)
            extra = noise.mismatch_var(a.scale, b.scale, mb)
            nvar = tuple(v + extra for v in noise.sum_var_pair(va, vb, rule == "independent"))
        return self.records.meta(self.combined_meta(a, b, either=True), layout.level(a), nvar,
                                 ma + mb * b.scale / a.scale)

    def product_noise(self, a: Ciphertext, b: Ciphertext, keyswitch: bool) -> tuple[np.ndarray, float]:
        """(variances, vmax) of the product a * b of aligned operands (relinearised or not).

        A coefficient of e_a (Delta m_b) is p^T Cov(e_a) p with ||p||^2 = ||Delta m_b||^2: the
        spectral bounds feed nvar and nspec; a slot's error is z_b e_a, so nslot feeds nslot.
        """
        (va, ma), (vb, mb) = self.records.nv(a), self.records.nv(b)
        spec, slot = (noise.product_var(va[i], vb[i], self.records.msg_norm2(a), self.records.msg_norm2(b), self.ring.n)
                      for i in (2, 1))
        var = np.array([spec, slot, spec])
        return var + (self.noise.keyswitch(layout.level(a)) if keyswitch else 0.0), ma * mb

    def mul(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        """The relinearised product of aligned operands (not rescaled; scale a.scale * b.scale)."""
        a, b = self.relin(a), self.relin(b)
        r = self.ring
        key = self.keyset.relin_key(a.key_id)
        data = np.empty_like(a.data)
        for i in range(a.data.shape[0]):
            a0, a1 = a.data[i]
            b0, b1 = b.data[i]
            d1 = r.dot([a0, a1], [b1, b0])
            ks = self.switcher.key_switch(r.mul(a1, b1), key, self.params.alpha)
            r.add(r.mul(a0, b0), ks[0], data[i, 0])
            r.add(d1, ks[1], data[i, 1])
        meta = self.records.meta(self.combined_meta(a, b, either=False), layout.level(a),
                                 *self.product_noise(a, b, keyswitch=True))
        return a.replace(data=data, scale=a.scale * b.scale, meta=meta)

    def tensor(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        """The product's three components (d0, d1, d2), decryptable with (1, s, s^2): relinearisation deferred.

        Worth it for a product that goes straight to the key holder (who decrypts with
        s^2 as easily as with s): it saves the key switch. :meth:`relin` finishes it.
        """
        r = self.ring
        data = np.empty((a.data.shape[0], 3) + a.data.shape[2:], dtype=np.uint64)
        for i in range(a.data.shape[0]):
            a0, a1 = a.data[i]
            b0, b1 = b.data[i]
            r.mul(a0, b0, data[i, 0])
            r.dot([a0, a1], [b1, b0], data[i, 1])
            r.mul(a1, b1, data[i, 2])
        meta = self.records.meta(self.combined_meta(a, b, either=False), layout.level(a),
                                 *self.product_noise(a, b, keyswitch=False))
        return a.replace(data=data, scale=a.scale * b.scale, meta=meta)

    def relin(self, ct: Ciphertext) -> Ciphertext:
        """Relinearise a deferred product (no-op on an ordinary ciphertext)."""
        if ct.data.shape[1] == 2:
            return ct
        r, key = self.ring, self.keyset.relin_key(ct.key_id)
        data = np.empty((ct.data.shape[0], 2) + ct.data.shape[2:], dtype=np.uint64)
        for i in range(ct.data.shape[0]):
            ks = self.switcher.key_switch(np.ascontiguousarray(ct.data[i, 2]), key, self.params.alpha)
            r.add(np.ascontiguousarray(ct.data[i, 0]), ks[0], data[i, 0])
            r.add(np.ascontiguousarray(ct.data[i, 1]), ks[1], data[i, 1])
        nvar, vmax = self.records.nv(ct)
        return self.records.noisy(ct.replace(data=data), nvar + self.noise.keyswitch(layout.level(ct)), vmax)

    def mul_slots(self, a: Ciphertext, slotvecs: np.ndarray, rescale: bool, clean: bool) -> Ciphertext:
        """Multiply each ciphertext of ``a`` by a plaintext slot vector (nct or 1 rows).

        The plaintext scale is chosen so the rescaled result sits exactly at the next
        level's working scale.
        """
        level = layout.level(a)
        if level == 0 and rescale:
            raise LevelExhaustedError(f"cannot multiply {a.describe()}: no level left to rescale")
        pts, pt_scale = self.plain_factors(a, slotvecs)
        out = self.mul_pts(a, pts, pt_scale, clean, *noise.plain_stats(slotvecs))
        return self.rescale(out) if rescale else out

    def plain_factors(self, a: Ciphertext, slotvecs: np.ndarray) -> tuple[list[np.ndarray], float]:
        """Slot vectors encoded as factors for ``a``: the rescaled product lands on the next working scale.

        Raises:
            EncodingError: for values too large for that plaintext scale.
        """
        level = layout.level(a)
        target = self.scales.at(level - 1) if level > 0 else a.scale
        pt_scale = target * self.ring.q[level] / a.scale if level > 0 else self.params.default_scale
        if not np.all(np.abs(slotvecs) * pt_scale < encoder.MAX_COEFF / 4):
            raise EncodingError(f"cannot multiply by plaintext: values up to {np.max(np.abs(slotvecs)):.4g} are "
                                f"out of range for scale 2^{math.log2(pt_scale):.1f}")
        return self.encoder.encode_many(np.asarray(slotvecs), pt_scale, level + 1), pt_scale

    def mul_pts(self, a: Ciphertext, pts: list[np.ndarray], pt_scale: float, clean: bool,
                wmax: float, mean_w2: float) -> Ciphertext:
        """a times encoded factors (one per ciphertext, or one for all), not rescaled.

        Args:
            wmax, mean_w2: the largest |slot value| the factors encode, and the largest
                mean of |w_j|^2 over one factor's slots (:func:`plain_stats`, for the noise estimate).
        """
        a = self.relin(a)
        data = np.empty_like(a.data)
        for i in range(a.data.shape[0]):
            pt = pts[i if len(pts) > 1 else 0]
            for p in range(2):
                self.ring.mul(a.data[i, p], pt, data[i, p])
        var, vmax = self.plain_product_noise(a, pt_scale, wmax, mean_w2)
        meta = self.records.meta({**a.meta, "dirty": a.meta["dirty"] and not clean}, layout.level(a), var, vmax)
        return a.replace(data=data, scale=a.scale * pt_scale, meta=meta)

    def plain_product_noise(self, a: Ciphertext, pt_scale: float, wmax: float,
                            mean_w2: float) -> tuple[np.ndarray, float]:
        """((nvar, nslot, nspec), vmax) of ``a`` times factors of :meth:`mul_pts` (not rescaled)."""
        var, vmax = self.records.nv(a)
        wide, msg = noise.plain_norm2(pt_scale, wmax, self.ring.n), self.records.msg_norm2(a)
        # Each coefficient: nspec ||pt||^2 (the mean of |w|^2); slots and the spectrum: max |w|^2.
        var = np.array([noise.plain_product_var(var[2], noise.plain_mean_norm2(pt_scale, mean_w2, self.ring.n), msg),
                        noise.plain_product_var(var[1], wide, msg), noise.plain_product_var(var[2], wide, msg)])
        return var, vmax * wmax

    def mul_scalar(self, a: Ciphertext, value: float, rescale: bool) -> Ciphertext:
        """Multiply every slot by one real.

        A factor within 2^-10 .. 2^10 in magnitude is absorbed into the recorded scale
        (the encrypted polynomial is unchanged up to the sign, so it costs no level and no
        noise); the scale then leaves the working scale, and a later addition at the same
        level may spend a level to realign. Other factors multiply by the constant
        polynomial round(value * pt_scale) and rescale (no FFT).
        """
        if rescale and value != 0.0 and FREE_SCALAR_MIN <= abs(value) <= 1.0 / FREE_SCALAR_MIN:
            out = self.neg(a) if value < 0 else a.replace(data=a.data.copy())
            # Same polynomial, smaller recorded scale: the error (in integer units) is unchanged.
            var, vmax = self.records.nv(a)
            return self.records.noisy(out.replace(scale=a.scale / abs(value)), var, vmax * abs(value))
        if layout.level(a) == 0 and rescale:
            raise LevelExhaustedError(f"cannot multiply {a.describe()}: no level left to rescale")
        factor, scale, meta = self.scalar_factor(a, value)
        data = np.empty_like(a.data)
        x_parts = a.data.shape[1]
        for i in range(a.data.shape[0]):
            for p in range(x_parts):
                self.ring.mul_int(a.data[i, p], factor, data[i, p])
        out = a.replace(data=data, scale=scale, meta=meta)
        return self.rescale(out) if rescale else out

    def scalar_factor(self, a: Ciphertext, value: float) -> tuple[int, float, dict]:
        """``(factor, scale, meta)`` of ``a`` times ``value`` as an integer polynomial (no rescale).

        ``value`` becomes the integer ``round(value * pt_scale)`` with ``pt_scale`` chosen so that a
        rescale lands on the working scale of the level below.

        Raises:
            EncodingError: the factor does not fit an encoded coefficient.
        """
        level = layout.level(a)
        pt_scale = (self.scales.at(level - 1) * self.ring.q[level] / a.scale if level > 0
                    else self.params.default_scale)
        factor = round(value * pt_scale)
        if abs(factor) >= encoder.MAX_COEFF:
            raise EncodingError(f"cannot multiply by {value:.4g}: out of range for scale 2^{math.log2(pt_scale):.1f}")
        # An integer polynomial (no rounding) times the error, plus the factor's own rounding
        # (factor - value * pt_scale) Delta m: deterministic, each coefficient at most |.| Delta V.
        nvar, vmax = self.records.nv(a)
        miss = (factor - value * pt_scale) * a.scale * vmax
        # Below ~1e-154 the square underflows to 0 in float64: count it as the smallest normal, never as nothing.
        miss_sq = max(miss * miss, _TINY) if miss else 0.0
        nvar = noise.plain_product_var(nvar, float(factor) ** 2, 0.0, 0.0) + miss_sq
        return factor, a.scale * pt_scale, self.records.meta(a.meta, level, nvar, vmax * abs(factor) / pt_scale)

    def neg(self, a: Ciphertext) -> Ciphertext:
        """-a (the noise record unchanged)."""
        data = np.empty_like(a.data)
        x_parts = a.data.shape[1]
        for i in range(a.data.shape[0]):
            for p in range(x_parts):
                self.ring.neg(a.data[i, p], data[i, p])
        return a.replace(data=data)

    def add_slots(self, a: Ciphertext, slotvecs: np.ndarray) -> Ciphertext:
        """``a`` plus plaintext slot vectors (nct or 1 rows) encoded at a's scale."""
        nl = layout.level(a) + 1
        pts = [self.encoder.encode(v, a.scale, nl) for v in slotvecs]
        data = a.data.copy()
        for i in range(a.data.shape[0]):
            self.ring.add(a.data[i, 0], pts[i if len(pts) > 1 else 0], data[i, 0])
        nvar, vmax = self.records.nv(a)  # the encoding's rounding, and the values added
        return self.records.noisy(a.replace(data=data), nvar + noise.ROUND_VAR,
                                  vmax + float(np.max(np.abs(slotvecs), initial=0.0)))

    def rekey(self, ct: Ciphertext, switch_key: SwitchKey) -> Ciphertext:
        """``ct`` key-switched to ``switch_key``'s new key (a sanitising flood in it stays key-free)."""
        ct = self.relin(ct)
        r = self.ring
        data = np.empty_like(ct.data)
        for i in range(ct.data.shape[0]):
            ks = self.switcher.key_switch(ct.data[i, 1], switch_key.data["key"], self.params.alpha)
            r.add(ct.data[i, 0], ks[0], data[i, 0])
            data[i, 1] = ks[1]
        nvar, vmax = self.records.nv(ct)
        return self.records.noisy(ct.replace(data=data, key_id=switch_key.to_key_id),
                                  nvar + self.noise.keyswitch(layout.level(ct)), vmax, keep_flood=True)
