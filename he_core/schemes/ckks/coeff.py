"""Coefficient-packed CKKS ciphertexts: tables whose row gathers and scatters cost no level.

A mixin of :class:`~he_core.schemes.ckks.scheme.CkksScheme`. In the default layout a
batch lives in the *slots*; gathering rows then needs masks (one level) and rotations
(one key switch each). A *table* (``encrypt(..., layout="table")``) is packed into the
*coefficients* of the plaintext polynomial instead: element ``(r, j)`` is coefficient
``(r % R) * stride + j`` of ciphertext ``r // R`` (``R = N / stride`` rows each), scaled
by the ciphertext's scale. Multiplying by an integer polynomial is then exact and
needs no rescale:

* gather-sum (``row_sum``): ``sum_r count_r * X^(-stride * r)`` shifts every chosen row
  down to coefficients ``0 .. stride-1`` and adds them (the other coefficients receive
  rows shifted elsewhere: *garbage*, marked ``dirty``);
* scatter-add (``index_add_``): a clean one-row ciphertext times
  ``sum_r count_r * X^(stride * r)`` lands on exactly the chosen rows;
* inner product of one-row ciphertexts: with one of them *reversed* (element ``j`` at
  coefficient ``stride-1-j``) and clean, coefficient ``stride-1`` of the product is the
  dot product whatever garbage the other holds;
* a *constant* (a one-value batch in every slot, i.e. a constant polynomial) multiplies
  a coefficient-packed ciphertext element-wise.

Everything else (polynomials, element-wise products of two packed vectors, rotations,
and updates arriving below a table's level) needs the secret key: the scheme raises
:class:`~he_core.RefreshRequired` naming the operand and the layout to re-encrypt it
into, and a trainer with a key holder gets it through the masked refresh. Tables live
at level 1: their own operations cost no level, and the one product a gathered row
enters (the inner product) needs one.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import EncodingError, RefreshRequired
from . import layout, noise
from .scales import scales_match
from .params import REFRESH_FLOOR_LEVELS

# Tables sit one level above the refresh floor: the products their rows enter (inner
# products, updates) rescale once and must land where a masked refresh still fits.
TABLE_LEVEL = 1 + REFRESH_FLOOR_LEVELS
#: Row-shift polynomial sets kept per scheme (a few MB each at N = 16384).
SHIFT_CACHE_ENTRIES = 4
LAYOUTS = ("coeff", "constant", "slots")


def is_coeff(ct: Ciphertext) -> bool:
    return bool(ct.meta.get("coeff", False))


def is_constant(ct: Ciphertext) -> bool:
    """A single value in every slot: the message is a constant polynomial."""
    return (not is_coeff(ct) and ct.shape == (1, 1) and ct.meta["rep"] and ct.meta["stride"] == 1
            and not ct.meta["dirty"])


def coeff_meta(level: int, stride: int, rev: bool, dirty: bool) -> dict:
    return {**layout.meta(level, stride, dirty=dirty), "coeff": True, "rev": bool(rev)}


class CoeffMixin:
    """Coefficient-packed layouts and the refresh targets that produce them."""

    # ------------------------------------------------------------------ targets
    def _target(self, kind: str, level: int, **extra: Any) -> dict:
        return {"layout": kind, "level": int(level), "scale": float(self._scale_at(level)), **extra}

    def coeff_target(self, like: Ciphertext, *, rev: bool | None = None, level: int | None = None) -> dict:
        """Re-encryption target: clean, coefficient-packed like ``like`` (optionally reversed / at a level)."""
        lvl = self.level(like) if level is None else level
        return self._target("coeff", lvl, stride=int(like.meta["stride"]),
                            rev=bool(like.meta.get("rev", False) if rev is None else rev))

    def _refresh_error(self, op: str, ct: Ciphertext, target: dict, why: str) -> RefreshRequired:
        return RefreshRequired(f"cannot {op}: {ct.describe()} {why}; re-encrypt it into layout {target} "
                               "(a masked refresh through the key holder)", ct, target)

    def _need_slots(self, op: str, ct: Ciphertext) -> RefreshRequired:
        """The error for any slot-wise operation on a coefficient-packed operand."""
        top = self.params.levels
        target = self._target("constant", top) if ct.shape == (1, 1) else self._target("slots", top)
        return self._refresh_error(op, ct, target, "is coefficient-packed (a table or a gathered row), which "
                                               "this operation cannot read without the secret key")

    def _in_default_layout(self, ct: Ciphertext) -> bool:
        return not is_coeff(ct)

    def _layout_of(self, ct: Ciphertext) -> Any:
        if is_coeff(ct) and not ct.meta["dirty"]:
            return self.coeff_target(ct, level=max(self.level(ct), min(TABLE_LEVEL, self.params.levels)))
        return None

    # ------------------------------------------------------------------ encryption with a layout
    def _check_target(self, target: Any, values: np.ndarray) -> dict:
        stride_needed = layout.next_pow2(values.shape[1])
        if stride_needed > self.params.slots:
            raise EncodingError(f"cannot encrypt: vectors of size {values.shape[1]} exceed the {self.params.slots} "
                                "slots")
        if target == "table":
            level = min(TABLE_LEVEL, self.params.levels)
            return self._target("coeff", level, stride=stride_needed, rev=False)
        if not isinstance(target, dict) or target.get("layout") not in LAYOUTS:
            raise EncodingError(f"cannot encrypt: unknown CKKS layout {target!r} (None, 'table', or a target "
                                f"dict with layout in {LAYOUTS})")
        level = target.get("level")
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= self.params.levels:
            raise EncodingError(f"cannot encrypt: layout level {level!r} is not in 0 .. {self.params.levels}")
        scale = target.get("scale")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale >= 1):
            raise EncodingError(f"cannot encrypt: layout scale {scale!r} is not a finite number >= 1")
        if target["layout"] == "coeff":
            stride, rev = target.get("stride"), target.get("rev")
            # The stride is the vectors' own (next power of two): a wider one would only
            # multiply the ciphertexts (and let a request make the key holder allocate them).
            if isinstance(stride, bool) or stride != stride_needed or not isinstance(rev, bool):
                raise EncodingError(f"cannot encrypt: coefficient layout needs stride {stride_needed} (the "
                                    f"power of two >= {values.shape[1]}) and a bool rev, got {target!r}")
        if target["layout"] == "constant" and values.shape != (1, 1):
            raise EncodingError(f"cannot encrypt: the constant layout holds one value, not {values.shape}")
        return target

    def _encrypt_layout(self, values, key, public, scale, rng, target):
        target = self._check_target(target, values)
        level = target["level"]
        scale = float(target["scale"] if scale is None else scale)
        self._check_range(values, scale, "encrypt", level)
        nl = level + 1
        if target["layout"] == "slots":
            stride = layout.next_pow2(values.shape[1])
            pts = self.encode_pts(layout.pack(values, self.params.slots, stride), scale, nl)
            meta = layout.meta(level, stride)
        elif target["layout"] == "constant":
            pts = [self.encode_pt(np.full(self.params.slots, values[0, 0]), scale, nl)]
            meta = layout.meta(level, 1, rep=True)
        else:
            stride, rev = target["stride"], target["rev"]
            pts = [self.ring.ntt(self.ring.from_signed(c, nl)) for c in self._coeff_polys(values, stride, rev, scale)]
            meta = coeff_meta(level, stride, rev, dirty=False)
        secret = None if key is None else self._s_full(key)
        pk = None if public is None else public.data["pk"]
        data = self._encrypt_pts(pts, nl, rng, secret=secret, public=pk)
        key_id = key.key_id if key is not None else public.key_id
        meta = self._noise_meta(meta, level, *self._fresh_noise(values, scale, pk))  # rint: the same 1/12
        return Ciphertext(self.name, self.params_id, key_id, values.shape, scale, data, meta, self.params)

    def _coeff_polys(self, values: np.ndarray, stride: int, rev: bool, scale: float) -> list[np.ndarray]:
        """Rounded integer coefficient vectors (one per ciphertext) of a coefficient-packed batch."""
        rows, size = values.shape
        n = self.ring.n
        rpc = n // stride
        nct = -(-rows // rpc)
        coeffs = np.zeros((nct * rpc, stride))
        cols = stride - 1 - np.arange(size) if rev else np.arange(size)
        coeffs[:rows, cols] = values * scale
        return [np.rint(c).astype(np.int64) for c in coeffs.reshape(nct, n)]

    def _nonzero_coeffs(self, ct: Ciphertext) -> int:
        """How many message coefficients of one ciphertext may be non-zero (for the noise estimate).

        A clean table holds only its rows' values; a constant is a constant polynomial;
        anything else (garbage, slot packings) may fill all N coefficients.
        """
        if is_constant(ct):
            return 1
        if not is_coeff(ct) or ct.meta["dirty"]:
            return self.ring.n
        return min(ct.rows, self.ring.n // ct.meta["stride"]) * ct.size

    def _coeff_positions(self, ct: Ciphertext) -> tuple[np.ndarray, np.ndarray]:
        """(ciphertext index, coefficient index) of every element, row-major."""
        stride, n = ct.meta["stride"], self.ring.n
        rpc = n // stride
        r = np.arange(ct.rows)[:, None]
        j = np.arange(ct.size)[None, :]
        col = stride - 1 - j if ct.meta["rev"] else j
        return np.broadcast_to(r // rpc, ct.shape), (r % rpc) * stride + col

    # ------------------------------------------------------------------ decryption and masking
    def _decrypt_coeff(self, ct: Ciphertext, s_full: np.ndarray) -> np.ndarray:
        polys = np.array(self._phases(ct, s_full))
        which, pos = self._coeff_positions(ct)
        values = polys[which, pos] / ct.scale
        limit = self._decode_range(ct)
        top = float(np.max(np.abs(values))) if values.size else 0.0
        if not top < limit:
            raise self._overflow(ct, top, limit)
        return values

    # ------------------------------------------------------------------ operations
    def _coeff_add_plain(self, a: Ciphertext, values: np.ndarray) -> Ciphertext:
        self._check_range(values, a.scale, "add_plain", self.level(a))
        nl = self.level(a) + 1
        polys = self._coeff_polys(np.broadcast_to(values, a.shape), a.meta["stride"], a.meta["rev"], a.scale)
        data = a.data.copy()
        for i, c in enumerate(polys):
            self.ring.add(data[i, 0], self.ring.ntt(self.ring.from_signed(c, nl)), data[i, 0])
        nvar, vmax = self._nv(a)  # the rounding of values * scale at the values' positions
        return self._noisy(a.replace(data=data), nvar + noise.ROUND_VAR,
                           vmax + float(np.max(np.abs(values), initial=0.0)))

    def _coeff_add(self, a: Ciphertext, b: Ciphertext, sub: bool) -> Ciphertext:
        op = "sub" if sub else "add"
        for x, y in ((b, a), (a, b)):
            if not is_coeff(x):
                raise self._refresh_error(op, x, self.coeff_target(y), "is slot-packed, the other operand "
                                                                        "coefficient-packed")
        if a.shape != b.shape or a.meta["stride"] != b.meta["stride"] or a.meta["rev"] != b.meta["rev"]:
            raise self._refresh_error(op, b, self.coeff_target(a), "is packed differently from the other operand")
        a, b = self._align_add(self._relin(a), self._relin(b), op)
        out = self._add_raw(a, b, sub=sub)
        return out.replace(meta={**out.meta, **coeff_meta(self.level(out), a.meta["stride"], a.meta["rev"],
                                                          a.meta["dirty"] or b.meta["dirty"])})

    def _coeff_mul(self, a: Ciphertext, b: Ciphertext, rescale: bool) -> Ciphertext:
        """A coefficient-packed batch times a constant (the only element-wise product the layout allows)."""
        packed, const = (a, b) if is_coeff(a) else (b, a)
        if not is_constant(const):
            raise self._need_slots("mul", packed)
        packed_al, const_al = self._align_mul(self._relin(packed), self._relin(const))
        # Relinearisation is deferred: in training this product goes straight to the key holder.
        out = self._tensor_raw(packed_al, const_al)
        meta = coeff_meta(self.level(out), packed.meta["stride"], packed.meta["rev"], packed.meta["dirty"])
        out = out.replace(meta={**out.meta, **meta, "vmax": self._convolution_bound(packed_al, const_al)})
        return self._rescale_ct(out) if rescale else out

    def _convolution_bound(self, a: Ciphertext, b: Ciphertext) -> float:
        """Bound on every coefficient / scale of the product of two messages: each coefficient
        is a sum of at most min(non-zeros) products of coefficients bounded by V_a and V_b."""
        terms = min(self._nonzero_coeffs(a), self._nonzero_coeffs(b))
        return noise.finite(terms * a.meta["vmax"] * b.meta["vmax"])

    def _coeff_inner(self, a: Ciphertext, b: Ciphertext, rescale: bool) -> Ciphertext:
        """Dot product of two one-row batches, one of them reversed and clean: a (1, 1) result at coefficient stride-1."""
        if a.rows != 1 or b.rows != 1:
            raise self._need_slots("inner", a if is_coeff(a) else b)
        packed = a if is_coeff(a) else b
        other = b if packed is a else a
        usable = (is_coeff(other) and other.meta["stride"] == packed.meta["stride"]
                  and other.meta["rev"] != packed.meta["rev"] and not (packed.meta["dirty"] and other.meta["dirty"]))
        if not usable:
            target = self.coeff_target(packed, rev=not packed.meta["rev"], level=self.level(packed))
            raise self._refresh_error("inner", other, target, "must be clean and coefficient-packed in the "
                                                              "opposite order of the other operand")
        x, y = self._align_mul(self._relin(a), self._relin(b))
        out = self._tensor_raw(x, y)  # deferred relinearisation, as in _coeff_mul
        meta = {**out.meta, **coeff_meta(self.level(out), a.meta["stride"], True, True),
                "vmax": self._convolution_bound(x, y)}
        out = out.replace(shape=(1, 1), meta=meta)
        return self._rescale_ct(out) if rescale else out

    def _coeff_row_sum(self, a: Ciphertext, rows: np.ndarray | None) -> Ciphertext:
        """Gather-sum of table rows: one integer-polynomial product per ciphertext, no level."""
        a = self._relin(a)
        counts = (np.ones(a.rows, dtype=np.int64) if rows is None
                  else np.bincount(rows, minlength=a.rows).astype(np.int64))
        shifts = self._row_shifts(a, counts, down=True)
        out = np.zeros((1,) + a.data.shape[1:], dtype=np.uint64)
        for i, pt in shifts.items():
            for p in range(2):
                self.ring.muladd(a.data[i, p], pt, out[0, p])
        # Within a ciphertext the shifted errors are distinct coefficients of one error
        # (rho^2 sum count_r^2); the ciphertexts' products are summed robustly.
        nvar, vmax = self._nv(a)
        sq = self._count_squares(a, counts)
        nvar = noise.sum_var([noise.plain_product_var(nvar, s, 0.0, 0.0) for s in sq])
        meta = self._noise_meta(coeff_meta(self.level(a), a.meta["stride"], a.meta["rev"], dirty=True),
                                self.level(a), nvar, vmax * float(np.sum(np.abs(counts))))
        return a.replace(data=out, shape=(1, a.size), meta=meta)

    def _count_squares(self, a: Ciphertext, counts: np.ndarray) -> list[float]:
        """sum_r count_r^2 over the rows of each ciphertext of a table: ||shift polynomial||_2^2."""
        rpc = self.ring.n // a.meta["stride"]
        return [float(np.sum(counts[i: i + rpc].astype(np.float64) ** 2)) for i in range(0, counts.size, rpc)]

    def _coeff_index_add_(self, a: Ciphertext, rows: np.ndarray, b: Ciphertext) -> None:
        """Scatter-add one clean row into table rows: one integer-polynomial product per ciphertext, no level.

        The update must arrive in the table's packing, at or above its level and at its
        scale; it is refused (never the table lowered) otherwise.
        """
        self._check_index_add(a, rows, b)
        b = self._relin(self._drop(b, self.level(a)))
        counts = np.bincount(rows, minlength=a.rows).astype(np.int64)
        a_lin = self._relin(a)
        data = a_lin.data.copy()
        for i, pt in self._row_shifts(a, counts, down=False).items():
            for p in range(2):
                self.ring.muladd(b.data[0, p], pt, data[i, p])
        # b's error spread over every coefficient (rho_b^2 sum count_r^2, the worst ciphertext),
        # added to the table's: robustly, unless b's noise is a fresh re-encryption's (then
        # independent of the table's, and variances add); each row gains at most max(count) V_b.
        (va, ma), (vb, mb) = self._nv(a_lin), self._nv(b)
        top = float(np.max(counts))
        added = noise.plain_product_var(vb, max(self._count_squares(a, counts)), 0.0, 0.0)
        nvar = noise.sum_var([va, added], independent=bool(b.meta.get("fresh", False))) \
            + noise.mismatch_var(a.scale, b.scale, top * mb)
        a.data = data
        flood = a.meta.get("flood") if b.meta.get("fresh", False) else None  # a fresh update keeps it key-free
        a.meta = self._noise_meta(coeff_meta(self.level(a), a.meta["stride"], a.meta["rev"], a.meta["dirty"]),
                                  self.level(a), nvar, ma + top * mb * b.scale / a.scale)
        if flood is not None:
            a.meta["flood"] = float(min(flood, a.meta["nvar"]))

    def _check_index_add(self, a: Ciphertext, rows: np.ndarray, b: Ciphertext) -> None:
        """Refuse (naming ``b`` itself) an update a table cannot take without being lowered."""
        if not is_coeff(a):
            if is_coeff(b):
                raise self._need_slots("index_add_", b)
            return
        if b.rows != 1:
            raise self._refresh_error("index_add_", b, self._target("slots", self.params.levels),
                                      "has one row per index; a coefficient-packed table takes one broadcast row")
        fits = (is_coeff(b) and not b.meta["dirty"] and b.meta["stride"] == a.meta["stride"]
                and b.meta["rev"] == a.meta["rev"] and self.level(b) >= self.level(a)
                and scales_match(a.scale, b.scale))
        if not fits:
            # The table's own scale: a table whose recorded scale left the working one (a
            # free scalar factor) still gets updates it can take.
            target = {**self.coeff_target(a), "scale": float(a.scale)}
            raise self._refresh_error("index_add_", b, target, "is not a clean row in the table's packing, level "
                                                               "and scale (a table is never lowered)")

    def _row_shifts(self, a: Ciphertext, counts: np.ndarray, *, down: bool) -> dict[int, np.ndarray]:
        """Per ciphertext: NTT form of sum_r count_r X^(-+stride * r) (negacyclic), for the rows counted.

        The "up" polynomial is the "down" one under X -> X^-1, a permutation in NTT form,
        so a gather followed by a scatter on the same rows pays the transforms once.
        """
        stride, n, nl = a.meta["stride"], self.ring.n, self.level(a) + 1
        key = (stride, nl, counts.tobytes())
        # A few entries: a training step's gather, its backward row sum (another level) and its
        # scatter (the gather's rows) interleave; one entry made the scatter redo the gather's NTTs.
        cache = self.__dict__.setdefault("_shift_cache", OrderedDict())
        entry = cache.get(key)
        if entry is not None:
            cache.move_to_end(key)
        else:
            rpc = n // stride
            downs = {}
            for i in range(-(-counts.size // rpc)):
                local = counts[i * rpc:(i + 1) * rpc]
                nz = np.nonzero(local)[0]
                if not nz.size:
                    continue
                poly = np.zeros(n, dtype=np.int64)
                pos = (-stride * nz) % n
                np.add.at(poly, pos, np.where(nz == 0, local[nz], -local[nz]))  # X^-k = -X^(n-k)
                downs[i] = self.ring.ntt(self.ring.from_signed(poly, nl))
            entry = cache[key] = {"down": downs, "up": {}}
            while len(cache) > SHIFT_CACHE_ENTRIES:
                cache.popitem(last=False)
        if down:
            return entry["down"]
        if not entry["up"]:
            perm = self.ring.galois_perm(2 * n - 1)
            entry["up"] = {i: self.ring.permute(pt, perm) for i, pt in entry["down"].items()}
        return entry["up"]
