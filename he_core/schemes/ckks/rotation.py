"""Slot rotations and the row movements built on them (masks, gathers, replication).

A mixin of :class:`~he_core.schemes.ckks.scheme.CkksScheme`. Rotation by k (to the left:
slot j receives slot j + k) is the Galois automorphism X -> X^(5^k), an index
permutation in NTT form followed by a key switch from s(X^g) back to s. A rotation
without its own key is composed from the power-of-two keys. Several rotations of one
ciphertext share its key-switching decomposition (hoisting, :meth:`_rotate_many`), and
row gathers group their shifts into baby and giant steps (:meth:`_shift_masked`), so
moving n rows costs about 2 sqrt(n) rotations instead of n.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import KeyMissingError
from . import layout


class RotationMixin:
    """Rotations, rotate-and-sum, masking and row gathers."""

    def _galois_element(self, steps: int) -> int:
        return pow(5, steps % self.params.slots, 2 * self.params.poly_degree)

    def _apply_galois(self, ct: Ciphertext, g: int) -> Ciphertext:
        ct = self._relin(ct)
        key = self._galois_key(g)
        if key is None:
            raise KeyMissingError(f"cannot apply Galois element {g}: no key for it")
        r = self.ring
        perm = r.galois_perm(g)
        data = np.empty_like(ct.data)
        for i in range(ct.data.shape[0]):
            p0 = r.permute(ct.data[i, 0], perm)
            ks = self.switcher.key_switch(r.permute(ct.data[i, 1], perm), key, self.params.alpha)
            r.add(p0, ks[0], data[i, 0])
            data[i, 1] = ks[1]
        return self._switched(ct.replace(data=data))

    def _switched(self, ct: Ciphertext) -> Ciphertext:
        """ct after a permutation (error permuted, variance unchanged) and one key switch."""
        nvar, vmax = self._nv(ct)
        return self._noisy(ct, nvar + self._noise.keyswitch(self.level(ct)), vmax)

    def _rotation_plan(self, steps: int) -> list[int]:
        """Galois elements whose product rotates by ``steps`` (one if a key exists for it).

        Otherwise the shortest of the binary and the non-adjacent-form (signed powers of
        two) decompositions whose keys all exist.
        """
        slots = self.params.slots
        k = steps % slots
        if k == 0:
            return []
        if self._galois_key(self._galois_element(k)) is not None:
            return [self._galois_element(k)]
        naf = [t for t in _naf(k) if t % slots]  # a full turn (+-slots) is the identity
        plans = [[1 << b for b in range(slots.bit_length()) if k >> b & 1], naf]
        usable = [p for p in plans if all(self._galois_key(self._galois_element(t)) is not None for t in p)]
        if not usable:
            missing = next(t for t in plans[0] if self._galois_key(self._galois_element(t)) is None)
            raise KeyMissingError(f"cannot rotate by {steps}: no Galois key for rotation {missing}; "
                                  f"generate keys with KeyRequirements(rotations=({steps},))")
        return [self._galois_element(t) for t in min(usable, key=len)]

    def _rotate_ct(self, ct: Ciphertext, steps: int) -> Ciphertext:
        for g in self._rotation_plan(steps):
            ct = self._apply_galois(ct, g)
        return ct

    def _rotate_many(self, ct: Ciphertext, steps) -> dict[int, Ciphertext]:
        """Rotations of one batch by several amounts, hoisted: ct is decomposed once for all
        the amounts that have their own Galois key (the others are composed as usual)."""
        ct = self._relin(ct)
        out: dict[int, Ciphertext] = {}
        direct = {}
        for k in dict.fromkeys(steps):
            plan = self._rotation_plan(k)
            if not plan:
                out[k] = ct
            elif len(plan) == 1:
                direct[k] = plan[0]
            else:
                out[k] = self._rotate_ct(ct, k)
        if len(direct) < 2:
            out.update({k: self._apply_galois(ct, g) for k, g in direct.items()})
            return out
        r, alpha = self.ring, self.params.alpha
        datas = {k: np.empty_like(ct.data) for k in direct}
        for i in range(ct.data.shape[0]):
            ext = self.switcher.mod_up(np.ascontiguousarray(ct.data[i, 1]), alpha)
            for k, g in direct.items():
                perm = r.galois_perm(g)
                ks = self.switcher.key_switch_hoisted(ext, self._galois_key(g), alpha, perm)
                r.add(r.permute(np.ascontiguousarray(ct.data[i, 0]), perm), ks[0], datas[k][i, 0])
                datas[k][i, 1] = ks[1]
        out.update({k: self._switched(ct.replace(data=d)) for k, d in datas.items()})  # one key switch each
        return out

    def _sum_within(self, ct: Ciphertext, width: int, step: int = 1) -> Ciphertext:
        """Slot j += slots j + step, j + 2*step, ... (width terms; width a power of two)."""
        shift = step
        while shift < width * step:
            # Another slot's error, but the same error at the coefficients the automorphism fixes.
            ct = self._add_raw(ct, self._rotate_ct(ct, shift), rule="rotation")
            shift *= 2
        return ct

    def _valid_mask(self, rows: int, size: int, stride: int, weights: np.ndarray | None = None) -> np.ndarray:
        values = np.ones((rows, size)) if weights is None else np.broadcast_to(weights, (rows, size))
        return layout.pack(np.ascontiguousarray(values, dtype=np.float64), self.params.slots, stride)

    def _clean(self, ct: Ciphertext) -> Ciphertext:
        """Zero every slot outside the valid region (costs one level when needed)."""
        if layout.is_clean(ct):
            return ct
        mask = self._valid_mask(ct.rows, ct.size, ct.meta["stride"])
        out = self._mul_slots(ct, mask, True, True)
        out.meta.update(dirty=False, rep=False)
        return out

    def _replicate_rows(self, ct: Ciphertext, rows: int) -> Ciphertext:
        """A one-row batch copied into ``rows`` rows (same stride)."""
        stride = ct.meta["stride"]
        slots = self.params.slots
        if not ct.meta["rep"]:
            ct = self._clean(ct)
            vmax = ct.meta["vmax"]
            ct = self._sum_within(ct, slots // stride, -stride % slots) if slots > stride else ct
            # slots // stride blocks each received block 0 (the others were zero): every block now
            # holds the row, and no slot holds more than one copy.
            ct = self._noisy(ct, self._nv(ct)[0], vmax)
            ct.meta.update(rep=True, dirty=False)
        nct = layout.count_cts(rows, slots, stride)
        data = np.ascontiguousarray(np.broadcast_to(ct.data[:1], (nct,) + ct.data.shape[1:]))
        full = rows % (slots // stride) == 0
        return ct.replace(data=data, shape=(rows, ct.size), meta={**ct.meta, "rep": False, "dirty": not full})

    def _replicate_size(self, ct: Ciphertext, size: int, stride: int) -> Ciphertext:
        """A size-1 batch whose value fills the first ``size`` slots of every row block."""
        if ct.meta["stride"] != stride:
            ct = self._gather(ct, [(i, i, 1.0) for i in range(ct.rows)], ct.rows, stride)
        ct = self._clean(ct)
        width = layout.next_pow2(size)
        out = self._sum_within(ct, width, -1 % self.params.slots) if width > 1 else ct
        # Each block held one value (at its first slot), so every slot received at most one copy.
        out = self._noisy(out.replace(shape=(ct.rows, size)), self._nv(out)[0], ct.meta["vmax"])
        # Slots size .. width-1 of each block received copies too.
        out.meta.update(dirty=width != size)
        return out

    def _gather(self, src: Ciphertext, plan, rows: int, stride: int, *, force_mask: bool = False,
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
        need_mask = force_mask or not all(self._whole_ct(src, s_ct, g) for (s_ct, _, _), g in groups.items())
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
                piece = self._shift_masked(src.replace(data=src.data[s_ct: s_ct + 1]), masks, rescale)
                acc[d_ct] = piece if d_ct not in acc else self._add_raw(acc[d_ct], piece)
        for (s_ct, d_ct, shift), weights in groups.items() if not need_mask else ():
            piece = self._rotate_ct(src.replace(data=src.data[s_ct: s_ct + 1]), shift)
            acc[d_ct] = piece if d_ct not in acc else self._add_raw(acc[d_ct], piece)
        template = next(iter(acc.values())) if acc else self._mul_slots(src.replace(data=src.data[:1]),
                                                                          np.zeros((1, slots)), True, True)
        data = np.zeros((nct,) + template.data.shape[1:], dtype=np.uint64)
        for d_ct, piece in acc.items():
            data[d_ct] = piece.data[0]
        nvar, vmax = self._gather_noise(src, plan, acc.values() or [template])
        level = template.data.shape[2] - 1
        return template.replace(data=data, shape=(rows, size),
                                meta=self._noise_meta(layout.meta(level, stride), level, nvar, vmax))

    def _gather_noise(self, src: Ciphertext, plan, pieces) -> tuple[np.ndarray, float]:
        """(variances, vmax) of a gather: the noisiest destination ciphertext's, and the source
        bound times the largest total |weight| arriving at one destination row (the masks and
        whole-ciphertext moves put values only where the plan sends them)."""
        per_row: dict = defaultdict(float)
        for dst, _, w in plan:
            per_row[dst] += abs(w)
        var = np.max([self._nv(p)[0] for p in pieces], axis=0)
        return var, src.meta["vmax"] * max(per_row.values(), default=0.0)

    def _shift_masked(self, ct: Ciphertext, masks: dict[int, np.ndarray], rescale: bool) -> Ciphertext:
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
            options += [(self._bsgs_cost(steps, base, d, g), base, d, g) for g in tries]
        _, base, d, g = min(options)
        steps = {(k - base) // d: m for k, m in signed.items()}
        rotated = self._rotate_many(ct, [d * i for i in sorted({t % g for t in steps})])  # hoisted
        babies = {i: rotated[d * i] for i in {t % g for t in steps}}
        acc = None
        for j in sorted({t // g for t in steps}):
            inner = None
            for t in (t for t in steps if t // g == j):
                i = t % g
                term = self._mul_slots(babies[i], np.roll(steps[t], -d * i)[None, :], False, True)
                inner = term if inner is None else self._add_raw(inner, term, rule="independent")
            inner = self._rotate_ct(inner, base + d * g * j)
            acc = inner if acc is None else self._add_raw(acc, inner, rule="independent")  # other shifts
        return self._rescale_ct(acc) if rescale else acc

    def _plan_len(self, steps: int) -> int:
        """Key switches a rotation by ``steps`` costs (composed from the available keys)."""
        key = (self.public_keys.key_id, steps % self.params.slots)
        cache = self.__dict__.setdefault("_plan_len_cache", {})
        if key not in cache:
            try:
                cache[key] = len(self._rotation_plan(steps))
            except KeyMissingError:
                cache[key] = 1 << 20  # unusable: never the cheapest choice
        return cache[key]

    def _bsgs_cost(self, steps, base: int, d: int, g: int) -> int:
        """Cost of :meth:`_shift_masked` with giant step g, in thirds of a key switch.

        A hoisted baby with its own key costs about 2/3 of a key switch (the shared
        decomposition is the other third); composed rotations cost their full key switches.
        """
        babies = [self._plan_len(d * i) for i in {t % g for t in steps} - {0}]
        hoisted = len(babies) > 1
        cost = sum(2 if n == 1 and hoisted else 3 * n for n in babies)
        return cost + 3 * sum(self._plan_len(base + d * g * j) for j in {t // g for t in steps})

    def _whole_ct(self, src: Ciphertext, s_ct: int, weights: dict) -> bool:
        """Whether a group moves every row of a clean source ciphertext once, unweighted (no mask needed)."""
        if not layout.is_clean(src):
            return False
        rpc = layout.rows_per_ct(self.params.slots, src.meta["stride"])
        held = min(rpc, src.rows - s_ct * rpc)
        return len(weights) == held and all(w == 1.0 for w in weights.values())


def _naf(k: int) -> list[int]:
    """Signed powers of two summing to k with no two adjacent (the non-adjacent form)."""
    out, bit = [], 0
    while k:
        if k & 1:
            digit = 2 - (k & 3)  # +1 or -1
            out.append(digit << bit)
            k -= digit
        k >>= 1
        bit += 1
    return out
