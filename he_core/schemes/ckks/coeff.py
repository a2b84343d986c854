"""Operations on coefficient-packed CKKS ciphertexts: tables whose row gathers and scatters cost no level.

The tables role of :class:`~he_core.schemes.ckks.scheme.CkksScheme`. In the default layout a
batch lives in the *slots*; gathering rows then needs masks (one level) and rotations
(one key switch each). A *table* (``encrypt(..., layout="table")``) is packed into the
*coefficients* of the plaintext polynomial instead (:mod:`.coeff_layout`). Multiplying by an integer polynomial is then exact and
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

import threading
from collections import OrderedDict

import numpy as np

from ...ciphertext import Ciphertext
from . import layout, noise
from .alignment import LevelAligner
from .arith import Evaluator
from .coeff_layout import TABLE_LEVEL  # noqa: F401 - its home before coeff_layout (tests import it here)
from .coeff_layout import coeff_meta, coeff_polys, is_coeff, is_constant, nonzero_coeffs
from .context import CkksContext
from .encoder import PlaintextEncoder
from .noise_records import NoiseRecords
from .scales import scales_match
from .targets import LayoutTargets

#: Row-shift polynomial sets kept per scheme (a few MB each at N = 16384).
SHIFT_CACHE_ENTRIES = 4

class CoeffTables:
    """Operations on coefficient-packed batches: sums, products by constants, inner products, row gathers and scatters.

    Args:
        ctx: the parameter set's objects; encoder: range checks of added values; records: noise
        records; evaluator: the raw sums and products; aligner: levels and scales of operand
        pairs; targets: the layouts a refused operand is to be re-encrypted into.
    """

    def __init__(self, ctx: CkksContext, encoder: PlaintextEncoder, records: NoiseRecords, evaluator: Evaluator,
                 aligner: LevelAligner, targets: LayoutTargets) -> None:
        self.params, self.ring = ctx.params, ctx.ring
        self.encoder, self.records, self.evaluator, self.aligner, self.targets = (encoder, records, evaluator, aligner,
                                                                                  targets)
        # Row-shift polynomial sets, most recent last (see row_shifts).
        self._shift_cache: OrderedDict = OrderedDict()
        self._shift_lock = threading.Lock()

    def add_plain(self, a: Ciphertext, values: np.ndarray) -> Ciphertext:
        """A table plus values of its shape, placed at its coefficients."""
        self.encoder.check_range(values, a.scale, "add_plain", layout.level(a))
        nl = layout.level(a) + 1
        polys = coeff_polys(np.broadcast_to(values, a.shape), a.meta["stride"], a.meta["rev"], a.scale, self.ring.n)
        data = a.data.copy()
        for i, c in enumerate(polys):
            self.ring.add(data[i, 0], self.ring.ntt(self.ring.from_signed(c, nl)), data[i, 0])
        nvar, vmax = self.records.nv(a)  # the rounding of values * scale at the values' positions
        return self.records.noisy(a.replace(data=data), nvar + noise.ROUND_VAR,
                                  vmax + float(np.max(np.abs(values), initial=0.0)))

    def add(self, a: Ciphertext, b: Ciphertext, sub: bool) -> Ciphertext:
        """The sum (``sub``: difference) of two tables packed alike.

        Raises:
            RefreshRequired: an operand is slot-packed or packed differently.
        """
        op = "sub" if sub else "add"
        for x, y in ((b, a), (a, b)):
            if not is_coeff(x):
                raise self.targets.refresh_error(op, x, self.targets.coeff_target(y),
                                                 "is slot-packed, the other operand "
                                                 "coefficient-packed")
        if a.shape != b.shape or a.meta["stride"] != b.meta["stride"] or a.meta["rev"] != b.meta["rev"]:
            raise self.targets.refresh_error(op, b, self.targets.coeff_target(a),
                                             "is packed differently from the other operand")
        a, b = self.aligner.align_add(self.evaluator.relin(a), self.evaluator.relin(b), op)
        out = self.evaluator.add(a, b, sub=sub)
        return out.replace(meta={**out.meta, **coeff_meta(layout.level(out), a.meta["stride"], a.meta["rev"],
                                                          a.meta["dirty"] or b.meta["dirty"])})

    def mul(self, a: Ciphertext, b: Ciphertext, rescale: bool) -> Ciphertext:
        """A coefficient-packed batch times a constant (the only element-wise product the layout allows)."""
        packed, const = (a, b) if is_coeff(a) else (b, a)
        if not is_constant(const):
            raise self.targets.need_slots("mul", packed)
        packed_al, const_al = self.aligner.align_mul(self.evaluator.relin(packed), self.evaluator.relin(const))
        # Relinearisation is deferred: in training this product goes straight to the key holder.
        out = self.evaluator.tensor(packed_al, const_al)
        meta = coeff_meta(layout.level(out), packed.meta["stride"], packed.meta["rev"], packed.meta["dirty"])
        out = out.replace(meta={**out.meta, **meta, "vmax": self.convolution_bound(packed_al, const_al)})
        return self.evaluator.rescale(out) if rescale else out

    def convolution_bound(self, a: Ciphertext, b: Ciphertext) -> float:
        """Bound on every coefficient / scale of the product of two messages: each coefficient
        is a sum of at most min(non-zeros) products of coefficients bounded by V_a and V_b."""
        terms = min(nonzero_coeffs(a, self.ring.n), nonzero_coeffs(b, self.ring.n))
        return noise.finite(terms * a.meta["vmax"] * b.meta["vmax"])

    def inner(self, a: Ciphertext, b: Ciphertext, rescale: bool) -> Ciphertext:
        """Dot product of two one-row batches, one reversed and clean: a (1, 1) result at coefficient stride-1."""
        if a.rows != 1 or b.rows != 1:
            raise self.targets.need_slots("inner", a if is_coeff(a) else b)
        packed = a if is_coeff(a) else b
        other = b if packed is a else a
        usable = (is_coeff(other) and other.meta["stride"] == packed.meta["stride"]
                  and other.meta["rev"] != packed.meta["rev"] and not (packed.meta["dirty"] and other.meta["dirty"]))
        if not usable:
            target = self.targets.coeff_target(packed, rev=not packed.meta["rev"], level=layout.level(packed))
            raise self.targets.refresh_error("inner", other, target, "must be clean and coefficient-packed in the "
                                             "opposite order of the other operand")
        x, y = self.aligner.align_mul(self.evaluator.relin(a), self.evaluator.relin(b))
        out = self.evaluator.tensor(x, y)  # deferred relinearisation, as in mul
        meta = {**out.meta, **coeff_meta(layout.level(out), a.meta["stride"], True, True),
                "vmax": self.convolution_bound(x, y)}
        out = out.replace(shape=(1, 1), meta=meta)
        return self.evaluator.rescale(out) if rescale else out

    def row_sum(self, a: Ciphertext, rows: np.ndarray | None) -> Ciphertext:
        """Gather-sum of table rows: one integer-polynomial product per ciphertext, no level."""
        a = self.evaluator.relin(a)
        counts = (np.ones(a.rows, dtype=np.int64) if rows is None
                  else np.bincount(rows, minlength=a.rows).astype(np.int64))
        shifts = self.row_shifts(a, counts, down=True)
        out = np.zeros((1,) + a.data.shape[1:], dtype=np.uint64)
        if shifts:  # one sum of products per part, reduced once
            for p in range(2):
                self.ring.dot([a.data[i, p] for i in shifts], list(shifts.values()), out[0, p])
        # Within a ciphertext the shifted errors are distinct coefficients of one error
        # (rho^2 sum count_r^2); the ciphertexts' products are summed robustly.
        nvar, vmax = self.records.nv(a)
        sq = self.count_squares(a, counts)
        nvar = noise.sum_var([noise.plain_product_var(nvar, s, 0.0, 0.0) for s in sq])
        meta = self.records.meta(coeff_meta(layout.level(a), a.meta["stride"], a.meta["rev"], dirty=True),
                                 layout.level(a), nvar, vmax * float(np.sum(np.abs(counts))))
        return a.replace(data=out, shape=(1, a.size), meta=meta)

    def count_squares(self, a: Ciphertext, counts: np.ndarray) -> list[float]:
        """sum_r count_r^2 over the rows of each ciphertext of a table: ||shift polynomial||_2^2."""
        rpc = self.ring.n // a.meta["stride"]
        return [float(np.sum(counts[i: i + rpc].astype(np.float64) ** 2)) for i in range(0, counts.size, rpc)]

    def index_add_(self, a: Ciphertext, rows: np.ndarray, b: Ciphertext) -> None:
        """Scatter-add one clean row into table rows: one integer-polynomial product per ciphertext, no level.

        The update must arrive in the table's packing, at or above its level and at its
        scale; it is refused (never the table lowered) otherwise.
        """
        self.check_index_add(a, rows, b)
        b = self.evaluator.relin(self.aligner.drop(b, layout.level(a)))
        counts = np.bincount(rows, minlength=a.rows).astype(np.int64)
        a_lin = self.evaluator.relin(a)
        data = a_lin.data.copy()
        for i, pt in self.row_shifts(a, counts, down=False).items():
            for p in range(2):
                self.ring.muladd(b.data[0, p], pt, data[i, p])
        # b's error spread over every coefficient (rho_b^2 sum count_r^2, the worst ciphertext),
        # added to the table's: robustly, unless b's noise is a fresh re-encryption's (then
        # independent of the table's, and variances add); each row gains at most max(count) V_b.
        (va, ma), (vb, mb) = self.records.nv(a_lin), self.records.nv(b)
        top = float(np.max(counts))
        added = noise.plain_product_var(vb, max(self.count_squares(a, counts)), 0.0, 0.0)
        nvar = noise.sum_var([va, added], independent=bool(b.meta.get("fresh", False))) \
            + noise.mismatch_var(a.scale, b.scale, top * mb)
        a.data = data
        flood = a.meta.get("flood") if b.meta.get("fresh", False) else None  # a fresh update keeps it key-free
        a.meta = self.records.meta(coeff_meta(layout.level(a), a.meta["stride"], a.meta["rev"], a.meta["dirty"]),
                                   layout.level(a), nvar, ma + top * mb * b.scale / a.scale)
        if flood is not None:
            a.meta["flood"] = float(min(flood, a.meta["nvar"]))

    def check_index_add(self, a: Ciphertext, rows: np.ndarray, b: Ciphertext) -> None:
        """Refuse (naming ``b`` itself) an update a table cannot take without being lowered."""
        if not is_coeff(a):
            if is_coeff(b):
                raise self.targets.need_slots("index_add_", b)
            return
        if b.rows != 1:
            slots = self.targets.target("slots", self.params.levels)
            raise self.targets.refresh_error("index_add_", b, slots, "has one row per index; a coefficient-packed "
                                                                     "table takes one broadcast row")
        fits = (is_coeff(b) and not b.meta["dirty"] and b.meta["stride"] == a.meta["stride"]
                and b.meta["rev"] == a.meta["rev"] and layout.level(b) >= layout.level(a)
                and scales_match(a.scale, b.scale))
        if not fits:
            # The table's own scale: a table whose recorded scale left the working one (a
            # free scalar factor) still gets updates it can take.
            target = {**self.targets.coeff_target(a), "scale": float(a.scale)}
            raise self.targets.refresh_error("index_add_", b, target, "is not a clean row in the table's packing, "
                                                                      "level and scale (a table is never lowered)")

    def row_shifts(self, a: Ciphertext, counts: np.ndarray, *, down: bool) -> dict[int, np.ndarray]:
        """Per ciphertext: NTT form of sum_r count_r X^(-+stride * r) (negacyclic), for the rows counted.

        The "up" polynomial is the "down" one under X -> X^-1, a permutation in NTT form,
        so a gather followed by a scatter on the same rows pays the transforms once.
        """
        stride, n, nl = a.meta["stride"], self.ring.n, layout.level(a) + 1
        key = (stride, nl, counts.tobytes())
        # A few entries: a training step's gather, its backward row sum (another level) and its
        # scatter (the gather's rows) interleave; one entry made the scatter redo the gather's NTTs.
        cache = self._shift_cache
        with self._shift_lock:  # another thread may evict the key between the lookup and the move
            entry = cache.get(key)
            if entry is not None:
                cache.move_to_end(key)
        if entry is None:
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
            entry = {"down": downs, "up": {}}
            with self._shift_lock:
                cache[key] = entry
                while len(cache) > SHIFT_CACHE_ENTRIES:
                    cache.popitem(last=False)
        if down:
            return entry["down"]
        if not entry["up"]:
            perm = self.ring.galois_perm(2 * n - 1)
            entry["up"] = {i: self.ring.permute(pt, perm) for i, pt in entry["down"].items()}
        return entry["up"]
