"""The RNS-CKKS scheme behind the he_core interface.

A logical ``(rows, size)`` batch is packed row-major into the N/2 slots (see
:mod:`.layout`), so element-wise operations cost one native call per ciphertext and
row operations become masks and rotations. Multiplications rescale by default;
levels and scales of operands are aligned automatically (see :mod:`.arith`).
"""
from __future__ import annotations

import math

import numpy as np

from ...capabilities import Capability
from ...ciphertext import Ciphertext
from ...errors import ParameterError, HEOverflowError, LevelExhaustedError
from ...keys import SecretKey
from ...optional import LinearMapping, MaskedRefreshing, Products, Rekeying, Sanitization
from ...scheme import Budget, Scheme
from . import layout, noise
from .arith import ArithMixin
from .bootstrap.mixin import BootstrapMixin
from .bootstrap.params import for_training
from .coeff import CoeffMixin, is_coeff
from .encryption import EncryptionMixin
from .checks import ChecksMixin
from .keyset import KEY_BUDGET_BYTES, MOVE_ROWS, KeySetMixin  # noqa: F401 - the constants' old home
from .keyswitch import KeySwitcher
from .linear import LinearMixin
from .noise_model import NoiseModel
from .params import CkksParams, for_answer, for_protocol
from .refresh import RefreshMixin
from .release import ReleaseMixin
from .rotation import RotationMixin


class CkksScheme(BootstrapMixin, ChecksMixin, KeySetMixin, RefreshMixin, ReleaseMixin, CoeffMixin, EncryptionMixin,
                 ArithMixin, RotationMixin, LinearMixin, Products, LinearMapping, Rekeying, MaskedRefreshing,
                 Sanitization, Scheme):
    """Approximate arithmetic on packed real vectors (Cheon-Kim-Kim-Song, RNS variant)."""

    name = "ckks"
    params_class = CkksParams
    capabilities = frozenset({
        Capability.PUBLIC_KEY_ENCRYPT, Capability.CIPHER_MULTIPLY, Capability.INNER_PRODUCT,
        Capability.LINEAR_TRANSFORM, Capability.RESCALE, Capability.REKEY, Capability.ROTATE,
        Capability.PACKING, Capability.APPROXIMATE, Capability.REFRESH, Capability.SANITIZE,
        Capability.LEVELS, Capability.SERIALIZE, Capability.BOOTSTRAP,
    })

    def __init__(self, params: CkksParams | None = None):
        super().__init__(params if params is not None else CkksParams())
        self.switcher = KeySwitcher.for_params(self.params)  # key switching over the ring (see .keyswitch)
        self.ring = self.switcher.ring
        scales = [0.0] * (self.params.levels + 1)
        scales[-1] = self.params.default_scale
        for level in range(self.params.levels, 0, -1):
            scales[level - 1] = scales[level] ** 2 / self.ring.q[level]
        self._scales = scales
        self._secret_cache: dict[str, np.ndarray] = {}
        self._noise = NoiseModel(self.params)

    @classmethod
    def params_for_depth(cls, depth: int, *, fill_ring: bool = False) -> CkksParams:
        """The smallest 128-bit set with ``depth`` levels above the refresh floor, at a flooding-proof scale.

        See :func:`~he_core.schemes.ckks.params.for_protocol`: depth 4 (the sentiment
        step) gets N = 16384, 5 levels of 54-bit primes (390 of 438 bits). With
        ``fill_ring`` the set takes every level that N holds.
        """
        params = for_protocol(depth)
        while fill_ring:
            try:
                deeper = for_protocol(depth + 1)
            except ParameterError:
                break
            if deeper.poly_degree != params.poly_degree:
                break
            depth, params = depth + 1, deeper
        return params

    @classmethod
    def params_for_bootstrapping(cls, depth: int, *, slots: int = 16, ring: int | None = None) -> CkksParams:
        """A bootstrappable set leaving ``depth`` levels between clean bootstraps of ``slots`` values
        (:func:`~he_core.schemes.ckks.bootstrap.params.for_training`)."""
        return for_training(depth, slots=slots, ring=ring)

    @classmethod
    def params_for_answer(cls, depth: int, value_bound: float) -> CkksParams | None:
        """The smallest 128-bit set without a refresh floor whose last level holds ``value_bound``
        (:func:`~he_core.schemes.ckks.params.for_answer`), or ``None`` when q_0 cannot."""
        if not (value_bound > 0 and math.isfinite(value_bound)):
            return None
        try:
            return for_answer(depth, math.floor(math.log2(value_bound)) + 1)
        except ParameterError:
            return None

    # ------------------------------------------------------------------ encryption
    def _as_received(self, ct: Ciphertext, bound: float) -> Ciphertext:
        fresh, _ = self._fresh_noise(np.zeros((1, 1)), ct.scale, self.public_keys.data["pk"])
        var, _ = self._nv(ct)
        out = self._noisy(ct, np.maximum(var, fresh), bound)
        out.meta.pop("flood", None)  # a sender's claim that part of its noise is a flood is not taken either
        return out

    def _record_bound(self, ct: Ciphertext, bound: float) -> Ciphertext:
        """A fresh ciphertext records ``meta["vmax"]``, the power of two >= max |values|: with a caller's
        public bound (1 for normalised data, say) it records that and reveals nothing about the values' size."""
        ct.meta["vmax"] = bound
        return ct

    def _encrypt_secret(self, values, key, scale, rng) -> Ciphertext:
        return self._encrypt(values, key.key_id, scale, rng, secret=self._s_full(key))

    def _encrypt_public(self, values, public, scale, rng) -> Ciphertext:
        return self._encrypt(values, public.key_id, scale, rng, public=public.data["pk"])

    def _decrypt(self, ct: Ciphertext, key: SecretKey) -> np.ndarray:
        if is_coeff(ct):
            return self._decrypt_coeff(ct, self._s_full(key))
        slots = self._decrypt_slots(ct, self._s_full(key))
        values = layout.unpack(slots, ct.rows, ct.size, ct.meta["stride"])
        # A wrap modulo q (values too large for the scale) leaves values beyond what the
        # decoding primes can hold, or (for irregular wraps) large imaginary parts, where
        # honest results of real inputs carry only noise.
        imag, real = float(np.max(np.abs(values.imag))), float(np.max(np.abs(values.real)))
        limit = self._decode_range(ct)
        if real >= limit or imag > 0.5 + 1e-3 * real:
            raise self._overflow(ct, real, limit, imag)
        return np.ascontiguousarray(values.real)

    def _overflow(self, ct: Ciphertext, real: float, limit: float, imag: float = 0.0) -> HEOverflowError:
        return HEOverflowError(f"cannot decrypt {ct.describe()}: the result is not a valid encoding "
                               f"(|values| up to {real:.3g}, imaginary parts up to {imag:.3g}); its values "
                               f"outgrew the modulus (about {limit:.3g} at level {self.level(ct)})")

    def _decode_range(self, ct: Ciphertext) -> float:
        """Largest |value| the decryption's CRT (q_0, or q_0 * q_1 above level 0) can represent."""
        modulus = float(self.ring.q[0]) * (float(self.ring.q[1]) if self.level(ct) > 0 else 1.0)
        return modulus / (2.0 * ct.scale)

    # ------------------------------------------------------------------ layout matching
    @property
    def natural_size(self) -> int:
        """A row of all N/2 slots is one whole ciphertext: row operations need no rotation."""
        return self.params.slots

    def _match(self, a: Ciphertext, b: Ciphertext) -> tuple[Ciphertext, Ciphertext]:
        """Same stride and row count (broadcasting a one-row batch)."""
        sa, sb = a.meta["stride"], b.meta["stride"]
        if sa != sb:
            stride = max(sa, sb)
            if sa != stride:
                a = self._gather(a, [(i, i, 1.0) for i in range(a.rows)], a.rows, stride)
            else:
                b = self._gather(b, [(i, i, 1.0) for i in range(b.rows)], b.rows, stride)
        if a.rows != b.rows:
            if a.rows == 1:
                a = self._replicate_rows(a, b.rows)
            else:
                b = self._replicate_rows(b, a.rows)
        return a, b

    def _plain_slots(self, a: Ciphertext, values: np.ndarray) -> np.ndarray:
        full = np.broadcast_to(values, a.shape).astype(np.float64)
        return layout.pack(np.ascontiguousarray(full), self.params.slots, a.meta["stride"], rep=a.meta["rep"])

    # ------------------------------------------------------------------ arithmetic hooks
    def _add(self, a, b):
        if is_coeff(a) or is_coeff(b):
            return self._coeff_add(a, b, sub=False)
        a, b = self._align_add(*self._match(a, b), "add")
        return self._add_raw(a, b)

    def _sub(self, a, b):
        if is_coeff(a) or is_coeff(b):
            return self._coeff_add(a, b, sub=True)
        a, b = self._align_add(*self._match(a, b), "sub")
        return self._add_raw(a, b, sub=True)

    def _neg(self, a):
        return self._neg_ct(a)

    def _add_plain(self, a, values):
        if is_coeff(a):
            return self._coeff_add_plain(a, values)
        self._check_range(np.asarray(values), a.scale, "add_plain", self.level(a))
        return self._add_slots(a, self._plain_slots(a, values))

    def _mul_plain(self, a, values, rescale):
        if np.ndim(values) == 0:  # a scalar scales garbage slots too, so cleanliness is unchanged
            return self._mul_scalar(a, float(values), rescale)
        if is_coeff(a):
            flat = np.unique(np.asarray(values))
            if flat.size == 1:  # one factor for every element: a scalar in any packing
                return self._mul_scalar(a, float(flat[0]), rescale)
            raise self._need_slots("mul_plain", a)
        out = self._mul_slots(a, self._plain_slots(a, values), rescale, True)
        out.meta.update(dirty=False, rep=a.meta["rep"])
        return out

    def _mul(self, a, b, rescale):
        if is_coeff(a) or is_coeff(b):
            return self._coeff_mul(a, b, rescale)
        if a.size != b.size:
            # Broadcast at the larger stride: restriding the size-1 batch moves every one of
            # its rows (a rotation each), restriding the other one row or a few is cheaper.
            stride = max(a.meta["stride"], b.meta["stride"])
            if a.size == 1:
                a = self._replicate_size(a, b.size, stride)
            else:
                b = self._replicate_size(b, a.size, stride)
        a, b = self._align_mul(*self._match(a, b))
        if rescale and self.level(a) == 0:
            raise LevelExhaustedError(f"cannot mul: {a.describe()} is at level 0, no level left to rescale")
        out = self._mul_raw(a, b)
        return self._rescale_ct(out) if rescale else out

    def _inner(self, a, b, rescale):
        if is_coeff(a) or is_coeff(b):
            return self._coeff_inner(a, b, rescale)
        prod = self._mul(a, b, rescale)
        if not layout.is_clean(prod):
            prod = self._clean(prod)
        width = layout.next_pow2(prod.size)
        out = self._sum_within(prod, width, 1) if width > 1 else prod
        dirty = width > 1 or out.meta["dirty"]
        return out.replace(shape=(prod.rows, 1), meta={**out.meta, "dirty": dirty, "rep": False})

    def _rescale(self, a):
        return self._rescale_ct(a)

    # ------------------------------------------------------------------ rows
    def _take_rows(self, a, rows):
        if is_coeff(a):
            raise self._need_slots("take_rows", a)
        if rows.size == 0:
            raise ValueError("cannot take_rows: no rows selected")
        if np.array_equal(rows, np.arange(rows.size)):
            nct = layout.count_cts(rows.size, self.params.slots, a.meta["stride"])
            data = np.ascontiguousarray(a.data[:nct])
            shrink = rows.size < a.rows
            return a.replace(data=data, shape=(int(rows.size), a.size),
                             meta={**a.meta, "dirty": a.meta["dirty"] or shrink})
        plan = [(i, int(r), 1.0) for i, r in enumerate(rows)]
        return self._gather(a, plan, int(rows.size), a.meta["stride"])

    def _concat_rows(self, parts):
        for p in parts:
            if is_coeff(p):
                raise self._need_slots("concat_rows", p)
        if len(parts) == 1:
            return parts[0].replace(data=parts[0].data.copy())
        stride = max(p.meta["stride"] for p in parts)
        total = sum(p.rows for p in parts)
        acc, offset = None, 0
        for p in parts:
            piece = self._gather(p, [(offset + i, i, 1.0) for i in range(p.rows)], total, stride)
            offset += p.rows
            # Disjoint masks have orthogonal coefficient vectors: the pieces' errors are uncorrelated.
            acc = piece if acc is None else self._add_raw(*self._align_add(acc, piece, "concat_rows"), rule="independent")
        # Each slot holds a value of one part only (the gathered pieces are clean).
        return self._noisy(acc, self._nv(acc)[0], max(p.meta["vmax"] for p in parts))

    def _row_sum(self, a, rows):
        if is_coeff(a):
            return self._coeff_row_sum(a, rows)
        if rows is not None:
            counts = np.bincount(rows, minlength=a.rows).astype(np.float64)
            a = self._mul_plain(a, counts[:, None], True)
        if a.rows == 1 and layout.is_clean(a):
            return a.replace(data=a.data.copy())
        a = self._clean(a)
        stride, slots = a.meta["stride"], self.params.slots
        acc = a.replace(data=a.data[:1].copy())
        for i in range(1, a.data.shape[0]):
            acc = self._add_raw(acc, a.replace(data=a.data[i: i + 1]))
        acc = self._sum_within(acc, slots // stride, stride) if slots > stride else acc
        # The rotations sum every row position of the ciphertext, but a clean batch's other rows hold
        # zeros (and noise, which the variance counts): the values sum over its rows only.
        vmax = min(float(acc.meta["vmax"]), a.rows * float(a.meta["vmax"]))
        return acc.replace(shape=(1, a.size), meta={**acc.meta, "rep": True, "dirty": False, "vmax": vmax})

    def _lincomb(self, weights, a, rescale):
        if is_coeff(a):
            raise self._need_slots("lincomb", a)
        if a.meta["stride"] == self.params.slots and layout.is_clean(a) and not a.meta["rep"]:
            return self._lincomb_whole(weights, a, rescale)
        # Block-level diagonal method: one weighted mask per (source, destination, shift)
        # group, then one rotation per group; a single level in all.
        plan = [(i, r, float(w)) for i, row in enumerate(weights) for r, w in enumerate(row) if w != 0.0]
        if not plan:  # every output row is zero: row 0 with weight 0 into each, the same single level
            plan = [(i, 0, 0.0) for i in range(weights.shape[0])]
        out = self._gather(a, plan, weights.shape[0], a.meta["stride"], force_mask=True, rescale=rescale)
        return out

    def _lincomb_whole(self, weights: np.ndarray, a: Ciphertext, rescale: bool) -> Ciphertext:
        """``lincomb`` when every row is one whole ciphertext: integer multiples and sums, no rotation or mask."""
        if rescale and self.level(a) == 0:
            raise LevelExhaustedError(f"cannot lincomb: {a.describe()} is at level 0, no level left to rescale")
        rows = [a.replace(data=a.data[r: r + 1], shape=(1, a.size)) for r in range(a.rows)]
        outs = []
        for row_weights in weights:
            acc = None
            for r, w in enumerate(row_weights):
                if w == 0.0 and (acc is not None or r < len(row_weights) - 1):
                    continue  # a zero row still yields one (zero) term, for the scale
                term = self._mul_scalar(rows[r], float(w), False)
                acc = term if acc is None else self._add_raw(acc, term)
            outs.append(self._rescale_ct(acc) if rescale else acc)
        var = np.max([self._nv(o)[0] for o in outs], axis=0)
        vmax = max(self._nv(o)[1] for o in outs)
        data = np.concatenate([o.data for o in outs], axis=0)
        return self._noisy(outs[0].replace(data=data, shape=(weights.shape[0], a.size)), var, vmax)

    def _index_add_(self, a, rows, b):
        if is_coeff(a) or is_coeff(b):  # (a slot table refuses a packed row there)
            return self._coeff_index_add_(a, rows, b)
        plan = [(int(r), k if b.rows > 1 else 0, 1.0) for k, r in enumerate(rows)]
        if not plan:
            return
        contrib = self._gather(b, plan, a.rows, a.meta["stride"])
        res = self._add(a, contrib)
        a.data, a.scale, a.meta, a.shape = res.data, res.scale, res.meta, res.shape

    def noise_estimate(self, ct: Ciphertext) -> dict:
        """The analytic noise estimate of ``ct`` (:mod:`.noise`; nothing is decrypted or measured).

        Returns:
            A dict: ``variance`` (rho^2, bounding the variance of every phase-error
            coefficient, integer units at the current modulus); ``coeff_bound`` (max |e_i|
            over all N coefficients of every ciphertext of the batch, except with
            probability ``epsilon`` = 2^-40 if the model holds); ``slot_variance`` and
            ``slot_bound`` (the error of a decrypted value in value units: the real part
            of a slot, N nslot / (2 Delta^2), bounded over every slot of the batch; for
            coefficient layouts a coefficient's, rho^2 / Delta^2; a slot's tail is that of
            a product of Gaussians, see ``noise.slot_tail_factor``); ``value_bound`` (vmax);
            ``log2_scale``; ``level``; ``epsilon``.

        Raises:
            MismatchError: ``ct`` does not belong to this scheme or is malformed.
        """
        self._check_ct(ct)
        (nvar, nslot, _), vmax = self._nv(ct)
        est = noise.estimate(nvar, nslot, self.ring.n, ct.scale, ct.data.shape[0], coeff=is_coeff(ct))
        # A sanitised ciphertext's flood is fresh Gaussian noise, independent of the key: a
        # release need not hide it again (the key-dependent rest is what flooding is for).
        flood = float(ct.meta.get("flood", 0.0))
        key_var = max(nvar - flood, 0.0)
        key = {"key_variance": key_var, "key_coeff_bound": noise.coeff_bound(key_var, ct.data.shape[0] * self.ring.n)}
        return {**est, **key, "value_bound": vmax, "log2_scale": math.log2(ct.scale), "level": self.level(ct)}

    def _budget(self, a) -> Budget:
        level = self.level(a)
        return Budget(kind="levels", remaining=level, level=level, scale=a.scale,
                      log2_scale=math.log2(a.scale), max_value=self._max_value(a.scale, level))

    # ------------------------------------------------------------------ CKKS-specific public methods
    def rotate(self, ct: Ciphertext, steps: int) -> Ciphertext:
        """Rotate the slot vector of each ciphertext left by ``steps`` (slot j gets slot j + steps).

        For a one-row batch this is ``np.roll`` of the row zero-padded to N/2 slots,
        truncated to ``size``. The result is marked as holding garbage outside its values.
        """
        self._check_ct(ct)
        if is_coeff(ct):
            raise self._need_slots("rotate", ct)
        out = self._rotate_ct(ct, int(steps))
        return out.replace(meta={**out.meta, "dirty": out.meta["dirty"] or steps % self.params.slots != 0})

    def conjugate(self, ct: Ciphertext) -> Ciphertext:
        """Complex conjugation of every slot (the identity on real data)."""
        self._check_ct(ct)
        if is_coeff(ct):
            raise self._need_slots("conjugate", ct)
        return self._apply_galois(ct, 2 * self.params.poly_degree - 1)

    def sum_slots(self, ct: Ciphertext) -> Ciphertext:
        """The sum of every entry of the batch, as a (1, 1) ciphertext."""
        self._check_ct(ct)
        if is_coeff(ct):
            raise self._need_slots("sum_slots", ct)
        total = self._clean(self._row_sum(ct, None))  # block 0 only
        out = self._sum_within(total, layout.next_pow2(ct.size), 1)
        return out.replace(shape=(1, 1), meta={**out.meta, "dirty": True, "rep": False})

    def level_drop(self, ct: Ciphertext, level: int) -> Ciphertext:
        """The same ciphertext at a lower level (drops primes; scale unchanged)."""
        self._check_ct(ct)
        return self._drop(ct, int(level))
