"""Element-wise and row operations on CKKS batches, in whichever layout their operands are packed.

A logical ``(rows, size)`` batch is packed row-major into the N/2 slots (see :mod:`.layout`),
so element-wise operations cost one native call per ciphertext and row operations become
masks and rotations (:mod:`.row_moves`); a coefficient-packed table goes to
:class:`~.coeff.CoeffTables` instead. Operands are first brought to one stride and row
count (:meth:`BatchOps.match`), then to one level and scale (:mod:`.alignment`).
"""
from __future__ import annotations

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import LevelExhaustedError
from . import layout
from .alignment import LevelAligner
from .arith import Evaluator
from .coeff import CoeffTables
from .coeff_layout import is_coeff
from .context import CkksContext
from .encoder import PlaintextEncoder
from .noise_records import NoiseRecords
from .row_moves import RowMover
from .rotation import Rotator
from .targets import LayoutTargets


class BatchOps:
    """The scheme's element-wise and row operations (``add`` .. ``index_add_``) over packed batches.

    Args:
        ctx: the parameter set's objects; the roles it combines: encoder (range checks),
        records, evaluator, aligner, rotator, mover (row moves), tables (coefficient
        packing) and targets (the error for a table where slots are needed).
    """

    def __init__(self, ctx: CkksContext, encoder: PlaintextEncoder, records: NoiseRecords, evaluator: Evaluator,
                 aligner: LevelAligner, rotator: Rotator, mover: RowMover, tables: CoeffTables,
                 targets: LayoutTargets) -> None:
        self.params, self.ring = ctx.params, ctx.ring
        self.encoder, self.records, self.evaluator, self.aligner = encoder, records, evaluator, aligner
        self.rotator, self.mover, self.tables, self.targets = rotator, mover, tables, targets

    def match(self, a: Ciphertext, b: Ciphertext) -> tuple[Ciphertext, Ciphertext]:
        """Same stride and row count (broadcasting a one-row batch)."""
        sa, sb = a.meta["stride"], b.meta["stride"]
        if sa != sb:
            stride = max(sa, sb)
            if sa != stride:
                a = self.mover.gather(a, [(i, i, 1.0) for i in range(a.rows)], a.rows, stride)
            else:
                b = self.mover.gather(b, [(i, i, 1.0) for i in range(b.rows)], b.rows, stride)
        if a.rows != b.rows:
            if a.rows == 1:
                a = self.mover.replicate_rows(a, b.rows)
            else:
                b = self.mover.replicate_rows(b, a.rows)
        return a, b

    def plain_slots(self, a: Ciphertext, values: np.ndarray) -> np.ndarray:
        """``values`` broadcast to a's shape and packed in a's layout, as (nct, slots) vectors."""
        full = np.broadcast_to(values, a.shape).astype(np.float64)
        return layout.pack(np.ascontiguousarray(full), self.params.slots, a.meta["stride"], rep=a.meta["rep"])

    def add(self, a, b):
        """a + b in any layout (a table goes to :class:`CoeffTables`)."""
        if is_coeff(a) or is_coeff(b):
            return self.tables.add(a, b, sub=False)
        a, b = self.aligner.align_add(*self.match(a, b), "add")
        return self.evaluator.add(a, b)

    def sub(self, a, b):
        """a - b in any layout."""
        if is_coeff(a) or is_coeff(b):
            return self.tables.add(a, b, sub=True)
        a, b = self.aligner.align_add(*self.match(a, b), "sub")
        return self.evaluator.add(a, b, sub=True)

    def add_plain(self, a, values):
        """a + values (range-checked at a's scale and level)."""
        if is_coeff(a):
            return self.tables.add_plain(a, values)
        self.encoder.check_range(np.asarray(values), a.scale, "add_plain", layout.level(a))
        return self.evaluator.add_slots(a, self.plain_slots(a, values))

    def mul_plain(self, a, values, rescale):
        """a * values (a scalar, or values of a's shape), rescaled when ``rescale``."""
        if np.ndim(values) == 0:  # a scalar scales garbage slots too, so cleanliness is unchanged
            return self.evaluator.mul_scalar(a, float(values), rescale)
        if is_coeff(a):
            flat = np.unique(np.asarray(values))
            if flat.size == 1:  # one factor for every element: a scalar in any packing
                return self.evaluator.mul_scalar(a, float(flat[0]), rescale)
            raise self.targets.need_slots("mul_plain", a)
        out = self.evaluator.mul_slots(a, self.plain_slots(a, values), rescale, True)
        out.meta.update(dirty=False, rep=a.meta["rep"])
        return out

    def mul(self, a, b, rescale):
        """a * b element-wise, broadcasting a size-1 or one-row operand; rescaled when ``rescale``.

        Raises:
            LevelExhaustedError: a rescale is asked for at level 0.
        """
        if is_coeff(a) or is_coeff(b):
            return self.tables.mul(a, b, rescale)
        if a.size != b.size:
            # Broadcast at the larger stride: restriding the size-1 batch moves every one of
            # its rows (a rotation each), restriding the other one row or a few is cheaper.
            stride = max(a.meta["stride"], b.meta["stride"])
            if a.size == 1:
                a = self.mover.replicate_size(a, b.size, stride)
            else:
                b = self.mover.replicate_size(b, a.size, stride)
        a, b = self.aligner.align_mul(*self.match(a, b))
        if rescale and layout.level(a) == 0:
            raise LevelExhaustedError(f"cannot mul: {a.describe()} is at level 0, no level left to rescale")
        out = self.evaluator.mul(a, b)
        return self.evaluator.rescale(out) if rescale else out

    def inner(self, a, b, rescale):
        """The inner product of each row pair, as a (rows, 1) batch."""
        if is_coeff(a) or is_coeff(b):
            return self.tables.inner(a, b, rescale)
        prod = self.mul(a, b, rescale)
        if not layout.is_clean(prod):
            prod = self.mover.clean(prod)
        width = layout.next_pow2(prod.size)
        out = self.rotator.sum_within(prod, width, 1) if width > 1 else prod
        dirty = width > 1 or out.meta["dirty"]
        return out.replace(shape=(prod.rows, 1), meta={**out.meta, "dirty": dirty, "rep": False})

    def take_rows(self, a, rows):
        """The rows ``rows`` of ``a`` (a prefix costs nothing; other selections a gather)."""
        if is_coeff(a):
            raise self.targets.need_slots("take_rows", a)
        if rows.size == 0:
            raise ValueError("cannot take_rows: no rows selected")
        if np.array_equal(rows, np.arange(rows.size)):
            nct = layout.count_cts(rows.size, self.params.slots, a.meta["stride"])
            data = np.ascontiguousarray(a.data[:nct])
            shrink = rows.size < a.rows
            return a.replace(data=data, shape=(int(rows.size), a.size),
                             meta={**a.meta, "dirty": a.meta["dirty"] or shrink})
        plan = [(i, int(r), 1.0) for i, r in enumerate(rows)]
        return self.mover.gather(a, plan, int(rows.size), a.meta["stride"])

    def concat_rows(self, parts):
        """The parts' rows one after another, at the widest stride."""
        for p in parts:
            if is_coeff(p):
                raise self.targets.need_slots("concat_rows", p)
        if len(parts) == 1:
            return parts[0].replace(data=parts[0].data.copy())
        stride = max(p.meta["stride"] for p in parts)
        total = sum(p.rows for p in parts)
        acc, offset = None, 0
        for p in parts:
            piece = self.mover.gather(p, [(offset + i, i, 1.0) for i in range(p.rows)], total, stride)
            offset += p.rows
            # Disjoint masks have orthogonal coefficient vectors: the pieces' errors are uncorrelated.
            acc = piece if acc is None else self.evaluator.add(*self.aligner.align_add(acc, piece, "concat_rows"),
                                                               rule="independent")
        # Each slot holds a value of one part only (the gathered pieces are clean).
        return self.records.noisy(acc, self.records.nv(acc)[0], max(p.meta["vmax"] for p in parts))

    def row_sum(self, a, rows):
        """The sum of a's rows (each counted as often as it appears in ``rows``), as one row."""
        if is_coeff(a):
            return self.tables.row_sum(a, rows)
        if rows is not None:
            counts = np.bincount(rows, minlength=a.rows).astype(np.float64)
            a = self.mul_plain(a, counts[:, None], True)
        if a.rows == 1 and layout.is_clean(a):
            return a.replace(data=a.data.copy())
        a = self.mover.clean(a)
        stride, slots = a.meta["stride"], self.params.slots
        acc = a.replace(data=a.data[:1].copy())
        for i in range(1, a.data.shape[0]):
            acc = self.evaluator.add(acc, a.replace(data=a.data[i: i + 1]))
        acc = self.rotator.sum_within(acc, slots // stride, stride) if slots > stride else acc
        # The rotations sum every row position of the ciphertext, but a clean batch's other rows hold
        # zeros (and noise, which the variance counts): the values sum over its rows only.
        vmax = min(float(acc.meta["vmax"]), a.rows * float(a.meta["vmax"]))
        return acc.replace(shape=(1, a.size), meta={**acc.meta, "rep": True, "dirty": False, "vmax": vmax})

    def lincomb(self, weights, a, rescale):
        """``weights @ a`` over rows: one level by the block-level diagonal method."""
        if is_coeff(a):
            raise self.targets.need_slots("lincomb", a)
        if a.meta["stride"] == self.params.slots and layout.is_clean(a) and not a.meta["rep"]:
            return self.lincomb_whole(weights, a, rescale)
        # Block-level diagonal method: one weighted mask per (source, destination, shift)
        # group, then one rotation per group; a single level in all.
        plan = [(i, r, float(w)) for i, row in enumerate(weights) for r, w in enumerate(row) if w != 0.0]
        if not plan:  # every output row is zero: row 0 with weight 0 into each, the same single level
            plan = [(i, 0, 0.0) for i in range(weights.shape[0])]
        out = self.mover.gather(a, plan, weights.shape[0], a.meta["stride"], force_mask=True, rescale=rescale)
        return out

    def lincomb_whole(self, weights: np.ndarray, a: Ciphertext, rescale: bool) -> Ciphertext:
        """``lincomb`` when every row is one whole ciphertext: integer multiples and sums, no rotation or mask."""
        if rescale and layout.level(a) == 0:
            raise LevelExhaustedError(f"cannot lincomb: {a.describe()} is at level 0, no level left to rescale")
        a = self.evaluator.relin(a)  # once per row, not once per output term
        rows = [a.replace(data=a.data[r: r + 1], shape=(1, a.size)) for r in range(a.rows)]
        factors, heads = self._lincomb_terms(weights, rows)
        x_parts = a.data.shape[1]
        data = np.empty((len(heads), x_parts) + a.data.shape[2:], dtype=np.uint64)
        for p in range(x_parts):  # one pass over every row per part: sums of products, reduced once
            self.ring.lincomb(a.data[:, p], factors, out=data[:, p])
        outs = [head.replace(data=data[j: j + 1]) for j, head in enumerate(heads)]
        outs = [self.evaluator.rescale(o) for o in outs] if rescale else outs
        var = np.max([self.records.nv(o)[0] for o in outs], axis=0)
        vmax = max(self.records.nv(o)[1] for o in outs)
        data = np.concatenate([o.data for o in outs], axis=0)
        return self.records.noisy(outs[0].replace(data=data, shape=(weights.shape[0], a.size)), var, vmax)

    def _lincomb_terms(self, weights: np.ndarray, rows: list[Ciphertext]) -> tuple[list[list[int]], list[Ciphertext]]:
        """Each output's integer factors, and its record as the evaluator's sum of products would leave it.

        The records come from :meth:`~.arith.Evaluator.scalar_factor` and :meth:`~.arith.Evaluator.sum_meta`, term by
        term as ``mul_scalar`` and ``add`` would make them; the heads carry the first row's data (only their
        records, scales and levels are read) until the combined data replaces it.
        """
        factors, heads = [], []
        for row_weights in weights:
            out, acc = [0] * len(rows), None
            for r, w in enumerate(row_weights):
                if w == 0.0 and (acc is not None or r < len(row_weights) - 1):
                    continue  # a zero row still yields one (zero) term, for the scale
                out[r], scale, meta = self.evaluator.scalar_factor(rows[r], float(w))
                term = rows[r].replace(scale=scale, meta=meta)
                acc = term if acc is None else acc.replace(meta=self.evaluator.sum_meta(acc, term))
            factors.append(out)
            heads.append(acc)
        return factors, heads

    def index_add_(self, a, rows, b):
        """``a[rows] += b`` in place (b: one row per index, or one row for all)."""
        if is_coeff(a) or is_coeff(b):  # (a slot table refuses a packed row there)
            return self.tables.index_add_(a, rows, b)
        plan = [(int(r), k if b.rows > 1 else 0, 1.0) for k, r in enumerate(rows)]
        if not plan:
            return
        contrib = self.mover.gather(b, plan, a.rows, a.meta["stride"])
        res = self.add(a, contrib)
        a.data, a.scale, a.meta, a.shape = res.data, res.scale, res.meta, res.shape
