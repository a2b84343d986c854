"""Packing many ciphertexts' constant terms into one ciphertext, and expanding one into constants.

Both rest on the automorphisms ``tau_k: X -> X^(2^k + 1)``. For ``g = N / 2^i + 1`` the
map fixes every coefficient whose index is a multiple of ``2^(i+1)`` and negates those at
odd multiples of ``2^i``, so ``c + tau(c)`` and ``c - tau(c)`` split a polynomial's
coefficients by one more bit of their index, at the price of one key switch.

* :meth:`CoeffMover.pack` (Chen, Dai, Kim and Song's PackLWEs, 2020): ``B`` ciphertexts
  whose constant terms are the values (anything else in them is garbage) become one
  ciphertext holding value ``b`` at coefficient ``b N / B`` and zero elsewhere: ``B - 1``
  key switches for the tree and ``log2(N / B)`` for the trace that clears the rest.
* :meth:`CoeffMover.expand` (the query expansion of Angel et al.'s SealPIR, 2018): one
  clean ciphertext holding ``B`` values at coefficients ``0 .. B - 1`` becomes ``B``
  constants: ``B - 1`` key switches.

Neither spends a level nor changes the scale: the factor ``N`` (or ``B``) the sums pick up
is cancelled by first multiplying the inputs by its inverse modulo Q, which is exact (the
arithmetic is modulo Q), so the phase never grows by it and a masked refresh of the result
has as much room as one of the inputs. The key switches' noise, added on the way, is
doubled by the levels after it. The automorphisms need their Galois keys:
``KeyRequirements(coefficient_moves=True)``.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import AlignmentError, KeyMissingError
from . import layout
from .coeff_layout import coeff_meta, is_coeff
from .context import CkksContext
from .keyset import KeySet
from .noise_records import NoiseRecords
from .rotation import Rotator


def coefficient_move_elements(n: int) -> list[int]:
    """The Galois elements ``2^k + 1`` (k = 1 .. log2 N) that packing and expansion use."""
    return [(1 << k) + 1 for k in range(1, n.bit_length())]


class CoeffMover:
    """The coefficient mover role: monomial shifts, packing constants, expanding into constants.

    Args:
        ctx: the parameter set's objects; keyset: the Galois keys; records: noise records;
        rotator: applies an automorphism with its key switch.
    """

    def __init__(self, ctx: CkksContext, keyset: KeySet, records: NoiseRecords, rotator: Rotator) -> None:
        self.ring, self.keyset, self.records, self.rotator = ctx.ring, keyset, records, rotator
        self.n = ctx.ring.n
        self._monomials = lru_cache(maxsize=64)(self._monomial_ntt)

    # ------------------------------------------------------------------ shifts
    def shift(self, ct: Ciphertext, k: int) -> Ciphertext:
        """``ct`` times ``X^k`` (any integer ``k``; ``X^N = -1``): coefficients move, nothing is spent."""
        k %= 2 * self.n
        if k == 0:
            return ct
        nl = ct.data.shape[2]
        mono = self._monomials(k, nl)
        data = np.empty_like(ct.data)
        for i in range(ct.data.shape[0]):
            for p in range(ct.data.shape[1]):
                self.ring.mul(ct.data[i, p], mono, data[i, p])
        # a signed permutation of the coefficients: the noise's variance is unchanged
        return ct.replace(data=data, meta={**ct.meta, "dirty": True})

    def _monomial_ntt(self, k: int, nl: int) -> np.ndarray:
        coeffs = np.zeros(self.n, dtype=np.int64)
        coeffs[k % self.n] = 1 if k < self.n else -1
        return self.ring.ntt(self.ring.from_signed(coeffs, nl))

    # ------------------------------------------------------------------ packing
    def pack(self, cts: list[Ciphertext]) -> Ciphertext:
        """One ciphertext holding ``cts[b]``'s constant term at coefficient ``b N / B``, zero elsewhere.

        Returns a clean coefficient-packed ``(B, 1)`` batch of stride ``N / B`` at the inputs'
        level and scale.

        Raises:
            ValueError: no inputs, more than ``N``, or a count that is not a power of two.
            AlignmentError: inputs at different levels or scales, or not single ciphertexts.
            KeyMissingError: a Galois key ``2^k + 1`` is missing.
        """
        count = self._check_count(len(cts), "pack")
        self._check_aligned(cts)
        packed = self._tree([self._divided(self.rotator.evaluator.relin(c), self.n) for c in cts])
        for k in range(count.bit_length(), self.n.bit_length()):  # the trace over X^(N/B): clears the rest
            packed = self._add(packed, self._tau(packed, (1 << k) + 1))
        meta = {**packed.meta, **coeff_meta(layout.level(packed), self.n // count, False, False)}
        out = packed.replace(shape=(count, 1), meta=meta)  # replace keeps the parameter set it carries
        # each value is one input's constant term: the largest input bound holds (the sums' bound is B times it)
        return self.records.noisy(out, self.records.nv(packed)[0], max(float(c.meta["vmax"]) for c in cts))

    def _tree(self, cts: list[Ciphertext]) -> Ciphertext:
        """PackLWEs' recursion on ``2^l`` inputs: the even and odd halves packed, merged with ``X^(N / 2^l)``."""
        if len(cts) == 1:
            return cts[0]
        even, odd = self._tree(cts[0::2]), self._tree(cts[1::2])
        bits = len(cts).bit_length() - 1
        shifted = self.shift(odd, self.n >> bits)
        g = (1 << bits) + 1
        return self._add(self._add(even, shifted), self._tau(self._add(even, shifted, sub=True), g))

    # ------------------------------------------------------------------ expansion
    def expand(self, ct: Ciphertext, count: int) -> list[Ciphertext]:
        """``count`` constants from a clean batch whose values sit at coefficients ``0 .. count - 1``.

        Every other coefficient must be zero (as in a fresh encryption of exactly those
        values): one at ``b + m * count`` would be added to value ``b``.

        Raises:
            ValueError: a bad count, or an input that is not such a clean batch.
            KeyMissingError: a Galois key ``N / 2^i + 1`` is missing.
        """
        count = self._check_count(count, "expand")
        if ct.data.shape[0] != 1 or not is_coeff(ct) or ct.meta["dirty"] or ct.meta["stride"] != 1 \
                or ct.rows > count:
            raise ValueError(f"cannot expand {ct.describe()}: it must be one clean coefficient-packed batch of at "
                             f"most {count} values at coefficients 0 .. {count - 1} (stride 1)")
        parts = [self._divided(self.rotator.evaluator.relin(ct), count)]
        for i in range(count.bit_length() - 1):
            # X -> X^(N / 2^i + 1) negates the coefficients at odd multiples of 2^i: the sum keeps the
            # even multiples, the difference the odd ones, moved down by 2^i (part k + 2^i: coefficient k + 2^i)
            g = (self.n >> i) + 1
            taus = [self._tau(c, g) for c in parts]
            parts = [self._add(c, t) for c, t in zip(parts, taus)] + \
                    [self.shift(self._add(c, t, sub=True), -(1 << i)) for c, t in zip(parts, taus)]
        return [self._constant(p, count) for p in parts]

    def _constant(self, ct: Ciphertext, count: int) -> Ciphertext:
        """A part of the expansion as a constant: one value in every slot."""
        meta = {**ct.meta, **layout.meta(layout.level(ct), 1, rep=True), "coeff": False}
        return ct.replace(shape=(1, 1), meta=meta)

    def _divided(self, ct: Ciphertext, factor: int) -> Ciphertext:
        """``ct`` times ``factor^-1`` modulo Q: the sums' factor cancelled before they make it.

        The record is that of ``ct / factor`` (noise and bound), so the sums' records come out as
        the true ones: the inputs' own, plus the key switches' noise as amplified after it.
        """
        primes = self.ring.q[: layout.level(ct) + 1]
        inverse = pow(factor, -1, math.prod(primes))
        data = np.empty_like(ct.data)
        for i in range(ct.data.shape[0]):
            for p in range(ct.data.shape[1]):
                self.ring.mul_int(ct.data[i, p], inverse, data[i, p])
        nvar, vmax = self.records.nv(ct)
        return self.records.noisy(ct.replace(data=data), np.asarray(nvar) / float(factor) ** 2, vmax / factor)

    # ------------------------------------------------------------------ shared steps
    def _tau(self, ct: Ciphertext, g: int) -> Ciphertext:
        if self.keyset.galois_key(g) is None:
            raise KeyMissingError(f"cannot move coefficients: no Galois key for X -> X^{g} (generate keys with "
                                  "KeyRequirements(coefficient_moves=True))")
        return self.rotator.apply_galois(ct, g)

    def _add(self, a: Ciphertext, b: Ciphertext, sub: bool = False) -> Ciphertext:
        return self.rotator.evaluator.add(a, b, sub=sub)

    def _check_count(self, count: int, what: str) -> int:
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1 \
                or count & (count - 1) or count > self.n:
            raise ValueError(f"cannot {what}: the count must be a power of two from 1 to N = {self.n}, got {count!r}")
        return int(count)

    @staticmethod
    def _check_aligned(cts: list[Ciphertext]) -> None:
        first = cts[0]
        for c in cts:
            if c.data.shape[0] != 1:
                raise AlignmentError(f"cannot pack {c.describe()}: one ciphertext per input")
            if layout.level(c) != layout.level(first) or c.scale != first.scale or c.key_id != first.key_id:
                raise AlignmentError(f"cannot pack {c.describe()} with {first.describe()}: inputs must share one "
                                     "key, level and scale")

