"""Slot rotations of CKKS ciphertexts: Galois automorphisms, composed and hoisted, and rotate-and-sum.

Rotation by k (to the left: slot j receives slot j + k) is the Galois automorphism
X -> X^(5^k), an index permutation in NTT form followed by a key switch from s(X^g)
back to s. A rotation without its own key is composed from the power-of-two keys.
Several rotations of one ciphertext share its key-switching decomposition (hoisting,
:meth:`Rotator.rotate_many`). Row movements built on rotations: :mod:`.row_moves`.
"""
from __future__ import annotations

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import KeyMissingError
from . import layout
from .arith import Evaluator
from .context import CkksContext
from .keyset import KeySet
from .noise_records import NoiseRecords


class Rotator:
    """The rotator role: Galois automorphisms with their key switches, rotation plans, hoisted rotations.

    Args:
        ctx: the parameter set's objects; keyset: the Galois keys; records: noise records;
        evaluator: relinearises deferred products and adds the rotated copies.
    """

    def __init__(self, ctx: CkksContext, keyset: KeySet, records: NoiseRecords, evaluator: Evaluator) -> None:
        self.params, self.ring, self.switcher, self.noise = ctx.params, ctx.ring, ctx.switcher, ctx.noise
        self.keyset, self.records, self.evaluator = keyset, records, evaluator

    def apply_galois(self, ct: Ciphertext, g: int) -> Ciphertext:
        """The automorphism X -> X^g of each ciphertext, key-switched back to s.

        Raises:
            KeyMissingError: no key for ``g``.
        """
        ct = self.evaluator.relin(ct)
        self.keyset.for_key(ct.key_id, "rotate")
        key = self.keyset.galois_key(g)
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
        return self.switched(ct.replace(data=data))

    def switched(self, ct: Ciphertext) -> Ciphertext:
        """ct after a permutation (error permuted, variance unchanged) and one key switch."""
        nvar, vmax = self.records.nv(ct)
        return self.records.noisy(ct, nvar + self.noise.keyswitch(layout.level(ct)), vmax)

    def plan(self, steps: int) -> list[int]:
        """Galois elements whose product rotates by ``steps`` (one if a key exists for it).

        Otherwise the shortest of the binary and the non-adjacent-form (signed powers of
        two) decompositions whose keys all exist.
        """
        slots = self.params.slots
        k = steps % slots
        if k == 0:
            return []
        if self.keyset.galois_key(self.keyset.galois_element(k)) is not None:
            return [self.keyset.galois_element(k)]
        naf = [t for t in _naf(k) if t % slots]  # a full turn (+-slots) is the identity
        plans = [[1 << b for b in range(slots.bit_length()) if k >> b & 1], naf]
        usable = [p for p in plans if all(self.keyset.galois_key(self.keyset.galois_element(t)) is not None for t in p)]
        if not usable:
            missing = next(t for t in plans[0] if self.keyset.galois_key(self.keyset.galois_element(t)) is None)
            raise KeyMissingError(f"cannot rotate by {steps}: no Galois key for rotation {missing}; "
                                  f"generate keys with KeyRequirements(rotations=({steps},))")
        return [self.keyset.galois_element(t) for t in min(usable, key=len)]

    def rotate(self, ct: Ciphertext, steps: int) -> Ciphertext:
        """Each ciphertext's slots rotated left by ``steps`` (composed from the available keys)."""
        for g in self.plan(steps):
            ct = self.apply_galois(ct, g)
        return ct

    def rotate_many(self, ct: Ciphertext, steps) -> dict[int, Ciphertext]:
        """Rotations of one batch by several amounts, hoisted: ct is decomposed once for all
        the amounts that have their own Galois key (the others are composed as usual)."""
        ct = self.evaluator.relin(ct)
        out: dict[int, Ciphertext] = {}
        direct = {}
        for k in dict.fromkeys(steps):
            plan = self.plan(k)
            if not plan:
                out[k] = ct
            elif len(plan) == 1:
                direct[k] = plan[0]
            else:
                out[k] = self.rotate(ct, k)
        if len(direct) < 2:
            out.update({k: self.apply_galois(ct, g) for k, g in direct.items()})
            return out
        r, alpha = self.ring, self.params.alpha
        self.keyset.for_key(ct.key_id, "rotate")
        datas = {k: np.empty_like(ct.data) for k in direct}
        for i in range(ct.data.shape[0]):
            ext = self.switcher.mod_up(np.ascontiguousarray(ct.data[i, 1]), alpha)
            for k, g in direct.items():
                perm = r.galois_perm(g)
                ks = self.switcher.key_switch_hoisted(ext, self.keyset.galois_key(g), alpha, perm)
                r.add(r.permute(np.ascontiguousarray(ct.data[i, 0]), perm), ks[0], datas[k][i, 0])
                datas[k][i, 1] = ks[1]
        out.update({k: self.switched(ct.replace(data=d)) for k, d in datas.items()})  # one key switch each
        return out

    def sum_within(self, ct: Ciphertext, width: int, step: int = 1) -> Ciphertext:
        """Slot j += slots j + step, j + 2*step, ... (width terms; width a power of two)."""
        shift = step
        while shift < width * step:
            # Another slot's error, but the same error at the coefficients the automorphism fixes.
            ct = self.evaluator.add(ct, self.rotate(ct, shift), rule="rotation")
            shift *= 2
        return ct


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
