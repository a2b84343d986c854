"""Ciphertext arithmetic of the CKKS scheme: +, *, rescale, alignment (encoding and encryption: :mod:`.encryption`).

A mixin of :class:`~he_core.schemes.ckks.scheme.CkksScheme`. Ciphertext payloads are
uint64 arrays of shape (nct, 2, level + 1, N) in NTT form.

Scale management: the working scale of level l is fixed by the level alone,
Delta_L = 2^scale_bits and Delta_{l-1} = Delta_l^2 / q_l, so that products of
operands at their level's scale land exactly on the next level's scale. Plaintext
factors are encoded at whatever real scale makes the rescaled product land on
Delta_{l-1}; a ciphertext brought down to a lower level for an addition or product
is multiplied by the integer round(target * q / scale) before its rescale, which
lands it within a relative 0.5 / factor of the target scale (about 2^-40 with 40-bit
primes, but only about 2^-22 with 21-bit primes). Scales therefore compare equal within
a tolerance tied to the scale itself (see :func:`scale_tolerance`). Scalar factors of moderate
size only change the recorded scale (no level). Two operands at the same level whose
scales differ are both brought to the next level's working scale (one level), or
refused when no level is left. The exact scale is always the one recorded on the
ciphertext.
"""
from __future__ import annotations

import math

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import AlignmentError, EncodingError, HEOverflowError, LevelExhaustedError
from . import encoder, layout, noise
from .scales import FREE_SCALAR_MIN, scale_tolerance, scales_match

class ArithMixin:
    """Encoding, encryption, decryption and the level / scale aware arithmetic."""

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def level(ct: Ciphertext) -> int:
        return ct.data.shape[2] - 1

    def _scale_at(self, level: int) -> float:
        return self._scales[level]

    def _wrap(self, like: Ciphertext | str, shape, scale: float, data: np.ndarray, nvar: float, vmax: float,
              **meta) -> Ciphertext:
        key_id = like if isinstance(like, str) else like.key_id
        level = data.shape[2] - 1
        return Ciphertext(self.name, self.params_id, key_id, tuple(shape), float(scale), data,
                          self._noise_meta(layout.meta(level, **meta), level, nvar, vmax), self.params)

    # ------------------------------------------------------------------ noise bookkeeping (formulas in .noise)
    def _noise_meta(self, meta: dict, level: int, var, vmax: float) -> dict:
        """``meta`` with the noise fields set from one variance (white noise) or (nvar, nslot, nspec).

        Variances are capped at (Q_level / 2)^2; nspec bounds the other two.
        """
        nvar, nslot, nspec = self._noise.cap(np.broadcast_to(np.asarray(var, dtype=np.float64), (3,)), level)
        # "fresh" marks noise independent of every other ciphertext's (a re-encryption's),
        # "flood" the variance of a sanitising flood (independent of the key); any operation
        # that recomputes the noise drops both.
        out = {k: v for k, v in meta.items() if k not in ("fresh", "flood")}
        return {**out, "nvar": float(min(nvar, nspec)), "nslot": float(min(nslot, nspec)), "nspec": float(nspec),
                "vmax": float(noise.finite(vmax))}

    def _noisy(self, ct: Ciphertext, var, vmax: float, *, keep_flood: bool = False) -> Ciphertext:
        """A shallow copy of ct with new noise metadata (never mutates ct: callers may hold it).

        ``keep_flood``: the new noise is the old plus independent terms only (a key switch,
        an added fresh update, a declared bound), so a sanitising flood in it stays a
        key-independent part of it.
        """
        meta = self._noise_meta(ct.meta, self.level(ct), var, vmax)
        if keep_flood and "flood" in ct.meta:
            meta["flood"] = float(min(ct.meta["flood"], meta["nvar"]))
        return ct.replace(meta=meta)

    @staticmethod
    def _nv(ct: Ciphertext) -> tuple[np.ndarray, float]:
        """((nvar, nslot, nspec), vmax) of a ciphertext: the variances as the vector .noise's formulas take."""
        var = np.array([ct.meta["nvar"], ct.meta["nslot"], ct.meta["nspec"]], dtype=np.float64)
        return var, float(ct.meta["vmax"])

    def _msg_norm2(self, ct: Ciphertext) -> float:
        """Bound on ||Delta m||_2^2 of each ciphertext of the batch (coefficient layouts: per non-zero coefficient)."""
        if ct.meta.get("coeff"):
            return noise.coeff_message_norm2(ct.scale, ct.meta["vmax"], self._nonzero_coeffs(ct))
        return noise.slot_message_norm2(ct.scale, ct.meta["vmax"])

    def _pairwise(self, fn, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.empty_like(a)
        for i in range(a.shape[0]):
            for p in range(2):
                fn(a[i, p], b[i, p], out[i, p])
        return out

    # ------------------------------------------------------------------ level and scale alignment
    def _drop(self, ct: Ciphertext, level: int) -> Ciphertext:
        if level == self.level(ct):
            return ct
        if level > self.level(ct) or level < 0:
            raise LevelExhaustedError(f"cannot drop {ct.describe()} from level {self.level(ct)} to {level}")
        # The value range decides whether the message wraps (the noise record is a compounding bound that
        # the arithmetic checks elsewhere; a real noise near q_0 would have failed long before).
        phase = float(ct.scale) * float(ct.meta["vmax"])
        if math.log2(max(phase, 1.0)) >= math.log2(self.ring.q[0]) + sum(math.log2(q) for q in self.ring.q[1: level + 1]) - 2.0:
            raise HEOverflowError(f"cannot drop {ct.describe()} to level {level}: its values (up to "
                                  f"{float(ct.meta['vmax']):.4g} at scale 2^{math.log2(ct.scale):.1f}) would not fit the "
                                  "smaller modulus; rescale it instead")
        data = np.ascontiguousarray(ct.data[:, :, : level + 1])
        # Dropping primes leaves the phase error as it is (it fits the smaller modulus: checked above).
        return ct.replace(data=data, meta=self._noise_meta({**ct.meta, "level": level}, level, *self._nv(ct)))

    def _adjust(self, ct: Ciphertext, level: int, scale: float) -> Ciphertext:
        """Bring ct to ``level`` with (almost exactly) ``scale``, using the spare level it has."""
        if self.level(ct) == level:
            return ct
        x = self._drop(ct, level + 1)
        q = self.ring.q[level + 1]
        factor = round(scale * q / x.scale)
        if factor < 1 or not self._fits_times(x, factor):
            return self._drop(ct, level)  # cannot fix the scale with an integer: keep it as it is (callers check)
        r = self.ring
        data = np.empty_like(x.data)
        x_parts = x.data.shape[1]
        for i in range(x.data.shape[0]):
            for p in range(x_parts):
                r.mul_int(x.data[i, p], factor, data[i, p])
        # The recorded scale absorbs the factor exactly: the value is unchanged, the error times factor.
        nvar, vmax = self._nv(x)
        scaled = x.replace(data=data, scale=x.scale * factor,
                           meta=self._noise_meta(x.meta, level + 1, float(factor) ** 2 * nvar, vmax))
        return self._rescale_ct(scaled)

    def _fits_times(self, ct: Ciphertext, factor: int) -> bool:
        """Whether ct's phase times ``factor`` stays inside its modulus (with a 4-bit margin).

        The factor may exceed every prime (the ring multiplies by its residues); what
        limits it is the scaled message and error, which must not wrap modulo Q_level.
        """
        var, vmax = self._nv(ct)
        phase = float(ct.scale) * float(vmax) + 8.0 * math.sqrt(float(np.max(var)))
        room = sum(math.log2(q) for q in self.ring.q[: self.level(ct) + 1])
        return math.log2(max(phase, 1.0)) + math.log2(factor) + 4.0 < room

    def _align_add(self, a: Ciphertext, b: Ciphertext, op: str) -> tuple[Ciphertext, Ciphertext]:
        la, lb = self.level(a), self.level(b)
        if la > lb:
            a = self._adjust(a, lb, b.scale)
        elif lb > la:
            b = self._adjust(b, la, a.scale)
        if not scales_match(a.scale, b.scale):
            level = self.level(a)
            if not self._can_realign(a) or not self._can_realign(b):
                raise AlignmentError(f"cannot {op}: scales 2^{math.log2(a.scale):.4f} and 2^{math.log2(b.scale):.4f} "
                                    f"differ at level {level} and cannot be aligned (no level left, or a scale "
                                    f"far from the working scale); rescale the operands first")
            # Same level, different scales: spend one level to bring both to the working scale.
            a = self._adjust(a, level - 1, self._scale_at(level - 1))
            b = self._adjust(b, level - 1, self._scale_at(level - 1))
        if not scales_match(a.scale, b.scale):
            # Adding at mismatched scales would silently weight one operand by their ratio.
            raise AlignmentError(f"cannot {op}: scales 2^{math.log2(a.scale):.4f} and 2^{math.log2(b.scale):.4f} "
                                f"at level {self.level(a)} cannot be aligned; rescale the operands first")
        return a, b

    def _can_realign(self, ct: Ciphertext) -> bool:
        """Whether an integer factor brings ct to the next level's working scale within the tolerance.

        The factor's rounding leaves a relative error of up to 0.5 / factor, which must
        stay within :func:`scale_tolerance` of the target scale.
        """
        level = self.level(ct)
        if level == 0:
            return False
        target = self._scale_at(level - 1)
        return target * self.ring.q[level] / ct.scale >= 0.5 / scale_tolerance(target)

    def _align_mul(self, a: Ciphertext, b: Ciphertext) -> tuple[Ciphertext, Ciphertext]:
        la, lb = self.level(a), self.level(b)
        if la > lb:
            a = self._adjust(a, lb, self._scale_at(lb))
        elif lb > la:
            b = self._adjust(b, la, self._scale_at(la))
        return a, b

    # ------------------------------------------------------------------ raw operations (aligned inputs)
    def _rescale_ct(self, ct: Ciphertext) -> Ciphertext:
        level = self.level(ct)
        if level == 0:
            raise LevelExhaustedError(f"cannot rescale {ct.describe()}: no level left (level 0)")
        data = np.empty(ct.data.shape[:2] + (level, self.ring.n), dtype=np.uint64)
        x_parts = ct.data.shape[1]  # 3 for a product whose relinearisation was deferred
        for i in range(ct.data.shape[0]):
            for p in range(x_parts):
                self.ring.rescale(ct.data[i, p], data[i, p])
        meta = self._noise_meta({**ct.meta, "level": level - 1}, level - 1,
                                self._noise.rescale(self._nv(ct)[0], level, x_parts), ct.meta["vmax"])
        return ct.replace(data=data, scale=ct.scale / self.ring.q[level], meta=meta)

    @staticmethod
    def _combined_meta(a: Ciphertext, b: Ciphertext, either: bool) -> dict:
        """Layout flags of a sum (garbage if either operand has some) or a product (if both do).

        A replicated operand counts as garbage outside its first block unless both are replicated.
        """
        rep = a.meta["rep"] and b.meta["rep"]
        ga = a.meta["dirty"] or a.meta["rep"]
        gb = b.meta["dirty"] or b.meta["rep"]
        garbage = (ga or gb) if either else (ga and gb)
        return {**a.meta, "rep": rep, "dirty": garbage and not rep or (rep and (a.meta["dirty"] or b.meta["dirty"]))}

    def _add_raw(self, a: Ciphertext, b: Ciphertext, sub: bool = False, rule: str = "robust") -> Ciphertext:
        """a + b (or a - b) of aligned operands, at a's scale.

        ``rule`` says how the errors combine: ``"robust"`` (any correlation: operands the
        caller chose), ``"independent"`` (differently masked or weighted rotations) or
        ``"rotation"`` (b is a rotation of a: see :func:`.noise.rotation_sum_var`).
        """
        a, b = self._relin(a), self._relin(b)
        fn = self.ring.sub if sub else self.ring.add
        data = self._pairwise(fn, a.data, b.data)
        (va, ma), (vb, mb) = self._nv(a), self._nv(b)
        total = noise.rotation_sum_var(va, vb) if rule == "rotation" else noise.sum_var([va, vb], rule == "independent")
        # b's message is read at a's scale: a (tiny) deterministic error when the scales differ.
        nvar = total + noise.mismatch_var(a.scale, b.scale, mb)
        meta = self._noise_meta(self._combined_meta(a, b, either=True), self.level(a), nvar, ma + mb * b.scale / a.scale)
        return a.replace(data=data, meta=meta)

    def _product_noise(self, a: Ciphertext, b: Ciphertext, keyswitch: bool) -> tuple[np.ndarray, float]:
        """(variances, vmax) of the product a * b of aligned operands (relinearised or not).

        A coefficient of e_a (Delta m_b) is p^T Cov(e_a) p with ||p||^2 = ||Delta m_b||^2: the
        spectral bounds feed nvar and nspec; a slot's error is z_b e_a, so nslot feeds nslot.
        """
        (va, ma), (vb, mb) = self._nv(a), self._nv(b)
        spec, slot = (noise.product_var(va[i], vb[i], self._msg_norm2(a), self._msg_norm2(b), self.ring.n)
                      for i in (2, 1))
        var = np.array([spec, slot, spec])
        return var + (self._noise.keyswitch(self.level(a)) if keyswitch else 0.0), ma * mb

    def _mul_raw(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        a, b = self._relin(a), self._relin(b)
        r = self.ring
        key = self._relin_key()
        data = np.empty_like(a.data)
        for i in range(a.data.shape[0]):
            a0, a1 = a.data[i]
            b0, b1 = b.data[i]
            d1 = r.mul(a0, b1)
            r.muladd(a1, b0, d1)
            ks = self.switcher.key_switch(r.mul(a1, b1), key, self.params.alpha)
            r.add(r.mul(a0, b0), ks[0], data[i, 0])
            r.add(d1, ks[1], data[i, 1])
        meta = self._noise_meta(self._combined_meta(a, b, either=False), self.level(a),
                                *self._product_noise(a, b, keyswitch=True))
        return a.replace(data=data, scale=a.scale * b.scale, meta=meta)

    def _tensor_raw(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        """The product's three components (d0, d1, d2), decryptable with (1, s, s^2): relinearisation deferred.

        Worth it for a product that goes straight to the key holder (who decrypts with
        s^2 as easily as with s): it saves the key switch. :meth:`_relin` finishes it.
        """
        r = self.ring
        data = np.empty((a.data.shape[0], 3) + a.data.shape[2:], dtype=np.uint64)
        for i in range(a.data.shape[0]):
            a0, a1 = a.data[i]
            b0, b1 = b.data[i]
            r.mul(a0, b0, data[i, 0])
            r.mul(a0, b1, data[i, 1])
            r.muladd(a1, b0, data[i, 1])
            r.mul(a1, b1, data[i, 2])
        meta = self._noise_meta(self._combined_meta(a, b, either=False), self.level(a),
                                *self._product_noise(a, b, keyswitch=False))
        return a.replace(data=data, scale=a.scale * b.scale, meta=meta)

    def _relin(self, ct: Ciphertext) -> Ciphertext:
        """Relinearise a deferred product (no-op on an ordinary ciphertext)."""
        if ct.data.shape[1] == 2:
            return ct
        r, key = self.ring, self._relin_key()
        data = np.empty((ct.data.shape[0], 2) + ct.data.shape[2:], dtype=np.uint64)
        for i in range(ct.data.shape[0]):
            ks = self.switcher.key_switch(np.ascontiguousarray(ct.data[i, 2]), key, self.params.alpha)
            r.add(np.ascontiguousarray(ct.data[i, 0]), ks[0], data[i, 0])
            r.add(np.ascontiguousarray(ct.data[i, 1]), ks[1], data[i, 1])
        nvar, vmax = self._nv(ct)
        return self._noisy(ct.replace(data=data), nvar + self._noise.keyswitch(self.level(ct)), vmax)

    def _mul_slots(self, a: Ciphertext, slotvecs: np.ndarray, rescale: bool, clean: bool) -> Ciphertext:
        """Multiply each ciphertext of ``a`` by a plaintext slot vector (nct or 1 rows).

        The plaintext scale is chosen so the rescaled result sits exactly at the next
        level's working scale.
        """
        level = self.level(a)
        if level == 0 and rescale:
            raise LevelExhaustedError(f"cannot multiply {a.describe()}: no level left to rescale")
        pts, pt_scale = self._plain_factors(a, slotvecs)
        out = self._mul_pts(a, pts, pt_scale, clean, *noise.plain_stats(slotvecs))
        return self._rescale_ct(out) if rescale else out

    def _plain_factors(self, a: Ciphertext, slotvecs: np.ndarray) -> tuple[list[np.ndarray], float]:
        """Slot vectors encoded as factors for ``a``: the rescaled product lands on the next working scale.

        Raises:
            EncodingError: for values too large for that plaintext scale.
        """
        level = self.level(a)
        target = self._scale_at(level - 1) if level > 0 else a.scale
        pt_scale = target * self.ring.q[level] / a.scale if level > 0 else self.params.default_scale
        if not np.all(np.abs(slotvecs) * pt_scale < encoder.MAX_COEFF / 4):
            raise EncodingError(f"cannot multiply by plaintext: values up to {np.max(np.abs(slotvecs)):.4g} are "
                                f"out of range for scale 2^{math.log2(pt_scale):.1f}")
        return self.encode_pts(np.asarray(slotvecs), pt_scale, level + 1), pt_scale

    def _mul_pts(self, a: Ciphertext, pts: list[np.ndarray], pt_scale: float, clean: bool,
                 wmax: float, mean_w2: float) -> Ciphertext:
        """a times encoded factors (one per ciphertext, or one for all), not rescaled.

        Args:
            wmax, mean_w2: the largest |slot value| the factors encode, and the largest
                mean of |w_j|^2 over one factor's slots (:func:`plain_stats`, for the noise estimate).
        """
        a = self._relin(a)
        data = np.empty_like(a.data)
        for i in range(a.data.shape[0]):
            pt = pts[i if len(pts) > 1 else 0]
            for p in range(2):
                self.ring.mul(a.data[i, p], pt, data[i, p])
        var, vmax = self._plain_product_noise(a, pt_scale, wmax, mean_w2)
        meta = self._noise_meta({**a.meta, "dirty": a.meta["dirty"] and not clean}, self.level(a), var, vmax)
        return a.replace(data=data, scale=a.scale * pt_scale, meta=meta)

    def _plain_product_noise(self, a: Ciphertext, pt_scale: float, wmax: float,
                             mean_w2: float) -> tuple[np.ndarray, float]:
        """((nvar, nslot, nspec), vmax) of ``a`` times factors of :meth:`_mul_pts` (not rescaled)."""
        var, vmax = self._nv(a)
        wide, msg = noise.plain_norm2(pt_scale, wmax, self.ring.n), self._msg_norm2(a)
        # Each coefficient: nspec ||pt||^2 (the mean of |w|^2); slots and the spectrum: max |w|^2.
        var = np.array([noise.plain_product_var(var[2], noise.plain_mean_norm2(pt_scale, mean_w2, self.ring.n), msg),
                        noise.plain_product_var(var[1], wide, msg), noise.plain_product_var(var[2], wide, msg)])
        return var, vmax * wmax

    def _mul_scalar(self, a: Ciphertext, value: float, rescale: bool) -> Ciphertext:
        """Multiply every slot by one real.

        A factor within 2^-10 .. 2^10 in magnitude is absorbed into the recorded scale
        (the encrypted polynomial is unchanged up to the sign, so it costs no level and no
        noise); the scale then leaves the working scale, and a later addition at the same
        level may spend a level to realign. Other factors multiply by the constant
        polynomial round(value * pt_scale) and rescale (no FFT).
        """
        if rescale and value != 0.0 and FREE_SCALAR_MIN <= abs(value) <= 1.0 / FREE_SCALAR_MIN:
            out = self._neg_ct(a) if value < 0 else a.replace(data=a.data.copy())
            # Same polynomial, smaller recorded scale: the error (in integer units) is unchanged.
            var, vmax = self._nv(a)
            return self._noisy(out.replace(scale=a.scale / abs(value)), var, vmax * abs(value))
        level = self.level(a)
        if level == 0 and rescale:
            raise LevelExhaustedError(f"cannot multiply {a.describe()}: no level left to rescale")
        pt_scale = (self._scale_at(level - 1) * self.ring.q[level] / a.scale if level > 0
                    else self.params.default_scale)
        factor = round(value * pt_scale)
        if abs(factor) >= encoder.MAX_COEFF:
            raise EncodingError(f"cannot multiply by {value:.4g}: out of range for scale 2^{math.log2(pt_scale):.1f}")
        data = np.empty_like(a.data)
        x_parts = a.data.shape[1]
        for i in range(a.data.shape[0]):
            for p in range(x_parts):
                self.ring.mul_int(a.data[i, p], factor, data[i, p])
        # An integer polynomial (no rounding) times the error, plus the factor's own rounding
        # (factor - value * pt_scale) Delta m: deterministic, each coefficient at most |.| Delta V.
        nvar, vmax = self._nv(a)
        miss = (factor - value * pt_scale) * a.scale * vmax
        nvar = noise.plain_product_var(nvar, float(factor) ** 2, 0.0, 0.0) + miss * miss
        out = a.replace(data=data, scale=a.scale * pt_scale,
                        meta=self._noise_meta(a.meta, level, nvar, vmax * abs(factor) / pt_scale))
        return self._rescale_ct(out) if rescale else out

    def _neg_ct(self, a: Ciphertext) -> Ciphertext:
        data = np.empty_like(a.data)
        x_parts = a.data.shape[1]
        for i in range(a.data.shape[0]):
            for p in range(x_parts):
                self.ring.neg(a.data[i, p], data[i, p])
        return a.replace(data=data)

    def _add_slots(self, a: Ciphertext, slotvecs: np.ndarray) -> Ciphertext:
        nl = self.level(a) + 1
        pts = [self.encode_pt(v, a.scale, nl) for v in slotvecs]
        data = a.data.copy()
        for i in range(a.data.shape[0]):
            self.ring.add(a.data[i, 0], pts[i if len(pts) > 1 else 0], data[i, 0])
        nvar, vmax = self._nv(a)  # the encoding's rounding, and the values added
        return self._noisy(a.replace(data=data), nvar + noise.ROUND_VAR,
                           vmax + float(np.max(np.abs(slotvecs), initial=0.0)))

