"""Moving rows of a slot-packed CKKS batch: masks, gathers, restrides and replication, built on rotations.

Row gathers group their shifts into baby and giant steps (:meth:`RowMover.shift_masked`),
so moving n rows costs about 2 sqrt(n) rotations instead of n.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import KeyMissingError
from . import layout
from .arith import Evaluator
from .context import CkksContext
from .keyset import KeySet
from .noise_records import NoiseRecords
from .rotation import Rotator


class RowMover:
    """Masks, cleaning, replication and weighted row gathers of slot-packed batches.

    Args:
        ctx: the parameter set's objects; keyset: which rotations have keys (for costs);
        records: noise records; evaluator: masks and sums; rotator: the rotations.
    """

    def __init__(self, ctx: CkksContext, keyset: KeySet, records: NoiseRecords, evaluator: Evaluator,
                 rotator: Rotator) -> None:
        self.params = ctx.params
        self.keyset, self.records, self.evaluator, self.rotator = keyset, records, evaluator, rotator
        self._plan_lengths: dict = {}  # (key id, steps mod slots) -> key switches of that rotation

    def valid_mask(self, rows: int, size: int, stride: int, weights: np.ndarray | None = None) -> np.ndarray:
        """(nct, slots): ``weights`` (default 1) on the values of a (rows, size) batch at ``stride``, 0 elsewhere."""
        values = np.ones((rows, size)) if weights is None else np.broadcast_to(weights, (rows, size))
        return layout.pack(np.ascontiguousarray(values, dtype=np.float64), self.params.slots, stride)

    def clean(self, ct: Ciphertext) -> Ciphertext:
        """Zero every slot outside the valid region (costs one level when needed)."""
        if layout.is_clean(ct):
            return ct
        mask = self.valid_mask(ct.rows, ct.size, ct.meta["stride"])
        out = self.evaluator.mul_slots(ct, mask, True, True)
        out.meta.update(dirty=False, rep=False)
        return out

    def replicate_rows(self, ct: Ciphertext, rows: int) -> Ciphertext:
        """A one-row batch copied into ``rows`` rows (same stride)."""
        stride = ct.meta["stride"]
        slots = self.params.slots
        if not ct.meta["rep"]:
            ct = self.clean(ct)
            vmax = ct.meta["vmax"]
            ct = self.rotator.sum_within(ct, slots // stride, -stride % slots) if slots > stride else ct
            # slots // stride blocks each received block 0 (the others were zero): every block now
            # holds the row, and no slot holds more than one copy.
            ct = self.records.noisy(ct, self.records.nv(ct)[0], vmax)
            ct.meta.update(rep=True, dirty=False)
        nct = layout.count_cts(rows, slots, stride)
        data = np.ascontiguousarray(np.broadcast_to(ct.data[:1], (nct,) + ct.data.shape[1:]))
        full = rows % (slots // stride) == 0
        return ct.replace(data=data, shape=(rows, ct.size), meta={**ct.meta, "rep": False, "dirty": not full})

    def replicate_size(self, ct: Ciphertext, size: int, stride: int) -> Ciphertext:
        """A size-1 batch whose value fills the first ``size`` slots of every row block."""
        if ct.meta["stride"] != stride:
            ct = self.gather(ct, [(i, i, 1.0) for i in range(ct.rows)], ct.rows, stride)
        ct = self.clean(ct)
        width = layout.next_pow2(size)
        out = self.rotator.sum_within(ct, width, -1 % self.params.slots) if width > 1 else ct
        # Each block held one value (at its first slot), so every slot received at most one copy.
        out = self.records.noisy(out.replace(shape=(ct.rows, size)), self.records.nv(out)[0], ct.meta["vmax"])
        # Slots size .. width-1 of each block received copies too.
        out.meta.update(dirty=width != size)
        return out

    def gather(self, src: Ciphertext, plan, rows: int, stride: int, *, force_mask: bool = False,
               rescale: bool = True) -> Ciphertext:
        """New clean batch of ``rows`` rows (given stride): dst row += weight * src row.

        Args:
            plan: (dst_row, src_row, weight) triples; repeated pairs accumulate.
            force_mask: always multiply by the (weighted) masks.
            rescale: rescale after the mask products (else the result keeps the product scale).
        """
        slots = self.params.slots
        size = src.size
        s_stride = src.meta["stride"]
        groups: dict = defaultdict(lambda: defaultdict(float))
        for dst, s_row, w in plan:
            d_ct, d_slot = layout.slot_of(dst, slots, stride)
            if src.meta["rep"]:  # every block holds the row: use the copy nearest the destination
                s_ct, s_slot = 0, (d_slot // s_stride) * s_stride
            else:
                s_ct, s_slot = layout.slot_of(s_row, slots, s_stride)
            groups[(s_ct, d_ct, (s_slot - d_slot) % slots)][s_slot] += w
        nct = layout.count_cts(rows, slots, stride)
        need_mask = force_mask or not all(self.whole_ct(src, s_ct, g) for (s_ct, _, _), g in groups.items())
        acc: dict[int, Ciphertext] = {}
        if need_mask:
            # All shifts from one source ciphertext to one destination at once (baby-step /
            # giant-step), instead of one rotation per shift.
            pairs: dict = defaultdict(dict)
            for (s_ct, d_ct, shift), weights in groups.items():
                mask = np.zeros(slots)
                for s_slot, w in weights.items():
                    mask[s_slot: s_slot + size] = w
                pairs[(s_ct, d_ct)][shift] = mask
            for (s_ct, d_ct), masks in pairs.items():
                piece = self.shift_masked(src.replace(data=src.data[s_ct: s_ct + 1]), masks, rescale)
                acc[d_ct] = piece if d_ct not in acc else self.evaluator.add(acc[d_ct], piece)
        for (s_ct, d_ct, shift), weights in groups.items() if not need_mask else ():
            piece = self.rotator.rotate(src.replace(data=src.data[s_ct: s_ct + 1]), shift)
            acc[d_ct] = piece if d_ct not in acc else self.evaluator.add(acc[d_ct], piece)
        template = next(iter(acc.values())) if acc else self.evaluator.mul_slots(src.replace(data=src.data[:1]),
                                                                                 np.zeros((1, slots)), True, True)
        data = np.zeros((nct,) + template.data.shape[1:], dtype=np.uint64)
        for d_ct, piece in acc.items():
            data[d_ct] = piece.data[0]
        nvar, vmax = self.gather_noise(src, plan, acc.values() or [template])
        level = template.data.shape[2] - 1
        return template.replace(data=data, shape=(rows, size),
                                meta=self.records.meta(layout.meta(level, stride), level, nvar, vmax))

    def gather_noise(self, src: Ciphertext, plan, pieces) -> tuple[np.ndarray, float]:
        """(variances, vmax) of a gather: the noisiest destination ciphertext's, and the source
        bound times the largest total |weight| arriving at one destination row (the masks and
        whole-ciphertext moves put values only where the plan sends them)."""
        per_row: dict = defaultdict(float)
        for dst, _, w in plan:
            per_row[dst] += abs(w)
        var = np.max([self.records.nv(p)[0] for p in pieces], axis=0)
        return var, src.meta["vmax"] * max(per_row.values(), default=0.0)

    def shift_masked(self, ct: Ciphertext, masks: dict[int, np.ndarray], rescale: bool) -> Ciphertext:
        """sum over k of rot_k(masks[k] * ct) for one ciphertext, with about 2 sqrt(#shifts) rotations.

        Writing each (signed) shift as k = base + d * (g * j + i), with d the gcd of the
        shifts' differences, rot_k(m * x) = rot_{base + d g j}( rot_{d i}(m) * rot_{d i}(x) ):
        the baby rotations rot_{d i}(x) are shared by every giant step j, the masks are
        rotated in the clear, and all products are accumulated before one rescale.

        Args:
            ct: a one-ciphertext batch.
            masks: shift (mod slots) -> plaintext slot vector applied before that shift.
            rescale: rescale the sum (else it keeps the product scale).
        """
        slots = self.params.slots
        signed = {(k if k <= slots // 2 else k - slots): m for k, m in masks.items()}
        options = []  # (cost, base, d, g): steps counted from the smallest shift, or from zero
        for base in dict.fromkeys((min(signed), 0)):
            d = 0
            for k in signed:
                d = math.gcd(d, k - base)
            d = d or 1
            steps = [(k - base) // d for k in signed]
            span = max(abs(t) for t in steps)
            tries = range(1, min(span + 2, 4 * math.isqrt(span) + 3))  # the best g is near sqrt(span)
            options += [(self.bsgs_cost(steps, base, d, g), base, d, g) for g in tries]
        _, base, d, g = min(options)
        steps = {(k - base) // d: m for k, m in signed.items()}
        rotated = self.rotator.rotate_many(ct, [d * i for i in sorted({t % g for t in steps})])  # hoisted
        babies = {i: rotated[d * i] for i in {t % g for t in steps}}
        acc = None
        for j in sorted({t // g for t in steps}):
            inner = None
            for t in (t for t in steps if t // g == j):
                i = t % g
                term = self.evaluator.mul_slots(babies[i], np.roll(steps[t], -d * i)[None, :], False, True)
                inner = term if inner is None else self.evaluator.add(inner, term, rule="independent")
            inner = self.rotator.rotate(inner, base + d * g * j)
            acc = inner if acc is None else self.evaluator.add(acc, inner, rule="independent")  # other shifts
        return self.evaluator.rescale(acc) if rescale else acc

    def plan_len(self, steps: int) -> int:
        """Key switches a rotation by ``steps`` costs (composed from the available keys)."""
        key = (self.keyset.installed().key_id, steps % self.params.slots)
        cache = self._plan_lengths
        if key not in cache:
            try:
                cache[key] = len(self.rotator.plan(steps))
            except KeyMissingError:
                cache[key] = 1 << 20  # unusable: never the cheapest choice
        return cache[key]

    def bsgs_cost(self, steps, base: int, d: int, g: int) -> int:
        """Cost of :meth:`shift_masked` with giant step g, in thirds of a key switch.

        A hoisted baby with its own key costs about 2/3 of a key switch (the shared
        decomposition is the other third); composed rotations cost their full key switches.
        """
        babies = [self.plan_len(d * i) for i in {t % g for t in steps} - {0}]
        hoisted = len(babies) > 1
        cost = sum(2 if n == 1 and hoisted else 3 * n for n in babies)
        return cost + 3 * sum(self.plan_len(base + d * g * j) for j in {t // g for t in steps})

    def whole_ct(self, src: Ciphertext, s_ct: int, weights: dict) -> bool:
        """Whether a group moves every row of a clean source ciphertext once, unweighted (no mask needed)."""
        if not layout.is_clean(src):
            return False
        rpc = layout.rows_per_ct(self.params.slots, src.meta["stride"])
        held = min(rpc, src.rows - s_ct * rpc)
        return len(weights) == held and all(w == 1.0 for w in weights.values())
