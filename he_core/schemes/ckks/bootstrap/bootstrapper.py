"""The bootstrapping pipeline: ModRaise, trace, CoeffToSlot, EvalMod, SlotToCoeff.

For n slots (n a power of two, at most N/2): a clean level-0 ciphertext whose values
fill the first n slots is

1. replicated n-periodically (the subring trace at level 0: the message enters the
   subring Z[X^gap], gap = N / (2n)), then mod-raised to the top level;
2. traced again (projecting q_0 I onto the subring, times gap);
3. CoeffToSlot: 2n real slots x_k = tau_k / (q_0 K), bit-reversed within each half
   (n = N/2: two ciphertexts, the real and imaginary halves) - ``transform_levels``
   levels, plus one when the factor 1 / (gap K) is split off;
4. EvalMod: (1 / 2 pi) sin(2 pi K y) = delta_k = Delta m_k / q_0 up to the sine's
   error - ``spec.depth`` levels;
5. times q_0 / Delta (an exact integer factor and a recorded-scale change, no level),
   then SlotToCoeff - ``transform_levels`` levels - which lands on the working scale of
   its level.

Keys: the rotations of the trace (n, 2n, .. N/4) and of the transforms' levels, the
conjugation, and relinearisation (:meth:`Bootstrapper.rotations`). Levels consumed:
:attr:`Bootstrapper.depth`; the result is at level ``levels - depth``.
"""
from __future__ import annotations

import math
from functools import cached_property

import numpy as np

from ....ciphertext import Ciphertext
from ....errors import EncodingError, ParameterError
from .. import layout
from . import fft
from .evalmod import EvalModSpec, eval_mod, interpolation_error
from .modraise import mod_raise, subring_trace, trace_rotations
from .pipeline_roles import PipelineRoles
from .transforms import LinearTransform


#: Above this many bits of 1 / (gap K), CoeffToSlot applies that factor in a level of its own.
SPLIT_BITS = 10


class Bootstrapper:
    """Bootstrapping of n-slot ciphertexts with one scheme's roles.

    Args:
        roles: the scheme's roles the pipeline computes with.
        slots: n, a power of two in [2, N/2].
        spec: the EvalMod approximation.
        split_cts: give CoeffToSlot's scalar 1 / (gap K) its own level (default: when it exceeds
            2^SPLIT_BITS); check_depth: refuse a chain too short (off for a plan's description).
        transform_levels: levels of each of CoeffToSlot and SlotToCoeff (groups of the FFT's
            log2(n) butterfly stages: fewer rotations per level, more levels).

    Raises:
        ParameterError: n out of range, or the chain too short for the pipeline.
    """

    def __init__(self, roles: PipelineRoles, slots: int, spec: EvalModSpec | None = None,
                 split_cts: bool | None = None, check_depth: bool = True, transform_levels: int = 1):
        half = roles.params.slots
        if slots < 2 or slots > half or slots & (slots - 1):
            raise ParameterError(f"cannot bootstrap {slots} slots: need a power of two in [2, {half}]")
        self.roles, self.n, self.spec = roles, int(slots), spec or EvalModSpec()
        self.transform_levels = max(1, min(int(transform_levels), int(math.log2(self.n))))
        # CtS's integer plaintexts are about 2^55 times its entries; with the factor 1 / (gap K) in them
        # they lose log2(gap K) bits of resolution, so past SPLIT_BITS that factor gets a level of its own.
        wide = math.log2(self.gap * self.spec.K) > SPLIT_BITS
        self.split_cts = wide if split_cts is None else bool(split_cts)
        if check_depth and self.depth > roles.params.levels:
            raise ParameterError(f"cannot bootstrap: the pipeline takes {self.depth} levels, the chain has "
                                 f"{roles.params.levels}")

    # ------------------------------------------------------------------ description
    @property
    def full(self) -> bool:
        return self.n == self.roles.params.slots

    @property
    def gap(self) -> int:
        return self.roles.params.poly_degree // (2 * self.n)

    @property
    def depth(self) -> int:
        """Levels consumed: CoeffToSlot (plus one when split), EvalMod, SlotToCoeff."""
        return 2 * self.transform_levels + self.split_cts + self.spec.depth

    @property
    def output_level(self) -> int:
        return self.roles.params.levels - self.depth

    @property
    def _cts_scalar(self) -> float:
        """The factor 1 / (gap K): the raised, traced ct holds gap t / q_0, EvalMod wants t / (q_0 K)."""
        return 1.0 / (self.gap * self.spec.K)

    @cached_property
    def _cts(self) -> list[LinearTransform]:
        """F^-1 by levels; the last level also halves (for v + conj(v)) and, sparse, writes [w, -i w]
        over blocks of 2n (whose real parts are then tau_lo and tau_hi, bit-reversed)."""
        half, n = self.roles.params.slots, self.n
        maps = fft.levels_of(n, self.transform_levels, inverse=True)
        maps[-1] = fft.scaled(maps[-1], 0.5 * (1.0 if self.split_cts else self._cts_scalar))
        if not self.full:
            spread = {0: np.concatenate([np.ones(n), np.full(n, -1j)])}
            maps[-1] = fft.compose(spread, fft.lift(maps[-1], 2 * n), 2 * n)
        return [LinearTransform(m, half) for m in maps]

    @cached_property
    def _stc(self) -> list[LinearTransform]:
        """F by levels; sparse, the first level reads tau_lo + i tau_hi from blocks of 2n real slots."""
        half, n = self.roles.params.slots, self.n
        maps = fft.levels_of(n, self.transform_levels, inverse=False)
        if not self.full:  # out_j = x_j + i x_{j+n} (j < n), kept n-periodic
            ones, i = np.ones(n), np.full(n, 1j)
            join = {0: np.concatenate([ones, i]), fft.signed(n, 2 * n): np.concatenate([i, ones])}
            maps[0] = fft.compose(fft.lift(maps[0], 2 * n), join, 2 * n)
        return [LinearTransform(m, half) for m in maps]

    def rotations(self) -> list[int]:
        """Every rotation the pipeline uses (each needs its Galois key); the conjugation comes on top."""
        half = self.roles.params.slots
        steps = set(trace_rotations(self.n, half))
        for t in self._cts + self._stc:
            steps |= set(t.rotations())
        return sorted(r % half for r in steps if r % half)

    # ------------------------------------------------------------------ the pipeline
    def _whole(self, ct: Ciphertext) -> Ciphertext:
        """ct as one row of all N/2 slots (the stages below act on every slot)."""
        meta = {**ct.meta, "stride": self.roles.params.slots, "dirty": False, "rep": False}
        return ct.replace(shape=(1, self.roles.params.slots), meta=meta)

    def check_input(self, ct: Ciphertext) -> None:
        """Raises EncodingError for a batch that is not one clean ciphertext within the first n slots."""
        if ct.meta.get("coeff"):
            raise EncodingError(f"cannot bootstrap {ct.describe()}: a coefficient-packed table has no slots")
        if ct.data.shape[0] != 1 or ct.rows * ct.meta["stride"] > self.n and not self.full:
            raise EncodingError(f"cannot bootstrap {ct.describe()}: it must fit the first {self.n} slots of "
                                "one ciphertext")
        if not self.full and not layout.is_clean(ct):
            raise EncodingError(f"cannot bootstrap {ct.describe()}: slots outside its values hold garbage "
                                "(clean it while a level is left)")

    def raise_to_slots(self, ct: Ciphertext) -> list[Ciphertext]:
        """Steps 1-3: the CoeffToSlot output(s), x / K in real slots (one ciphertext, two for n = N/2)."""
        r = self.roles
        if layout.level(ct) != 0:
            ct = r.aligner.drop(ct, 0)
        x = self._whole(ct)
        if not self.full:
            x = subring_trace(r, x, self.n)  # replicate the n values: the message enters the subring
        x = mod_raise(r, x)
        if not self.full:
            x = subring_trace(r, x, self.n)
        v = x
        for t in self._cts:
            v = t.apply(r, v)
        if self.split_cts:  # a constant plaintext: lands on the next working scale, as the dense step did
            v = r.evaluator.mul_slots(v, np.full((1, r.params.slots), self._cts_scalar), True, True)
        conj = r.rotator.apply_galois(v, 2 * r.params.poly_degree - 1)
        re = r.evaluator.add(v, conj, rule="independent")
        halves = [re]
        if self.full:
            diff = r.evaluator.add(v, conj, sub=True, rule="independent")
            halves.append(_times_monomial(r, diff, 3 * r.params.poly_degree // 2))  # -i (w - conj w)
        # |x / K| < 1 while |I| < K (K is 8 sigma of I): the bound EvalMod's records start from.
        return [r.records.noisy(h, r.records.nv(h)[0], 1.0) for h in halves]

    def reduce(self, xs: list[Ciphertext], delta_max: float) -> list[Ciphertext]:
        """Step 4: each slot x / K to (1 / 2 pi) sin(2 pi x), about delta = Delta m_k / q_0.

        The noise record of the result takes the approximation's own error on top of the
        noise: the interpolation error and the sine's cubic term at ``delta_max`` >= |delta|
        (every coefficient of an encoding is at most its largest |slot|: |mu_k| <= vmax).
        """
        r, out = self.roles, []
        for x in xs:
            y = eval_mod(r, x, self.spec)
            var = r.records.nv(y)[0]
            approx = (interpolation_error(self.spec, 4001) + (2 * np.pi) ** 2 * delta_max**3 / 6) * y.scale
            out.append(r.records.noisy(y, var + approx**2, delta_max))
        return out

    def to_coeffs(self, ys: list[Ciphertext], delta: float) -> Ciphertext:
        """Step 5: values times q_0 / Delta, then SlotToCoeff (one ciphertext at the working scale)."""
        r = self.roles
        y = ys[0] if len(ys) == 1 else r.batch.add(ys[0], _times_monomial(r, ys[1], r.params.poly_degree // 2))
        factor = r.ring.q[0] / delta
        # An integer (exact, no level) carries the growth; the recorded scale takes the rest, kept
        # at least 2x the working scale so the StC factors stay within the encoder's range.
        c = 2 * math.ceil(factor)
        y = _times_integer(r, y, c)
        y = y.replace(scale=y.scale * c / factor)
        for t in self._stc:
            y = t.apply(r, y)
        return y

    def bootstrap(self, ct: Ciphertext) -> Ciphertext:
        """A ciphertext with the same values at level :attr:`output_level`.

        Raises:
            EncodingError: see :meth:`check_input`.
            KeyMissingError: a Galois, conjugation or relinearisation key is missing.
        """
        self.check_input(ct)
        delta = ct.scale
        delta_max = delta * ct.meta["vmax"] / self.roles.ring.q[0]
        out = self.to_coeffs(self.reduce(self.raise_to_slots(ct), delta_max), delta)
        dirty = not self.full or ct.meta["dirty"]
        meta = {**out.meta, "stride": ct.meta["stride"], "dirty": dirty or self.gap > 1, "rep": False}
        out = out.replace(shape=ct.shape, meta=meta)
        return self.roles.records.noisy(out, self.roles.records.nv(out)[0], ct.meta["vmax"])


def _times_monomial(roles: PipelineRoles, ct: Ciphertext, power: int) -> Ciphertext:
    """ct times X^power (exact; by i^(power / (N/2)) in every slot when N/2 divides power)."""
    r, nl = roles.ring, layout.level(ct) + 1
    mono = np.zeros(r.n, dtype=np.int64)
    mono[power % r.n] = -1 if (power // r.n) % 2 else 1
    pt = r.ntt(r.from_signed(mono, nl))
    data = np.empty_like(ct.data)
    for i in range(ct.data.shape[0]):
        for p in range(ct.data.shape[1]):
            r.mul(ct.data[i, p], pt, data[i, p])
    return ct.replace(data=data)


def _times_integer(roles: PipelineRoles, ct: Ciphertext, c: int) -> Ciphertext:
    """ct times the integer c at the same recorded scale (values and noise times c, no level)."""
    data = np.empty_like(ct.data)
    for i in range(ct.data.shape[0]):
        for p in range(ct.data.shape[1]):
            roles.ring.mul_int(ct.data[i, p], c, data[i, p])
    var, vmax = roles.records.nv(ct)
    return roles.records.noisy(ct.replace(data=data), var * float(c) ** 2, vmax * c)
