"""The ckks scheme's side of the Bootstrapping protocol (:class:`he_core.protocols.Bootstrapping`).

The bootstrapping role of :class:`~he_core.schemes.ckks.scheme.CkksScheme` (its
``booter``): one :class:`Bootstrapper` per slot count, an EvalMod range chosen from the
secret's distribution, and the key set (the pipeline's rotations, the conjugation and
relinearisation, nothing else). The scheme checks its inputs are its own ciphertexts
and installs the keys; this role does the rest with the scheme's roles
(:class:`.pipeline_roles.PipelineRoles`).
"""
from __future__ import annotations

import math

import numpy as np

from ....ciphertext import Ciphertext
from ....errors import ParameterError
from ....keys import KeyPair, KeyRequirements
from ....randomness import RandomSource
from .. import layout
from ..alignment import LevelAligner
from ..arith import Evaluator
from ..batch import BatchOps
from ..context import CkksContext
from ..encoder import PlaintextEncoder
from ..keyset import KeySet
from ..noise_records import NoiseRecords
from ..rotation import Rotator
from ..row_moves import RowMover
from . import packing as blocks  # "packing" is key_requirements' flag
from .bootstrapper import Bootstrapper
from .evalmod import EvalModSpec, spec_for_range
from .pipeline_roles import PipelineRoles


def spec_for(params) -> EvalModSpec:
    """The EvalMod range for the secret: K = ceil(8 sigma_I), sigma_I^2 = (h + 1) / 12 (I = round((c0 + c1 s) / q_0)).

    Each coefficient of c1 s sums h terms uniform in [-q_0/2, q_0/2); a uniform ternary
    secret has h about 2N/3. The degree and double angles are the shallowest that
    interpolate the sine on that range (:func:`.evalmod.spec_for_range`).

    Raises:
        ParameterError: the range is too wide for the approximations tried (dense secrets at large N).
    """
    h = params.hamming_weight if params.secret == "hamming" else 2 * params.poly_degree // 3
    return spec_for_range(math.ceil(8 * math.sqrt((h + 1) / 12)))


#: Butterfly stages of the slot FFT per level of CoeffToSlot / SlotToCoeff (at most 2^(s+1) - 1
#: diagonals per level, so a handful of rotations); fewer levels when the chain is short.
STAGES_PER_LEVEL = 4
#: The phase Delta |m| / q_0 a bootstrap's input is brought to (the bootstrappable sets' level-0
#: scale sits 12 bits below q_0), and the most it accepts at level 0 (relative sine error ~2^-7).
INPUT_DELTA, MAX_DELTA = 2.0**-12, 2.0**-4
#: Levels a bootstrap should leave before its transforms take more than one level each.
MIN_LEVELS_LEFT = 3


def transform_levels_for(slots: int) -> int:
    """Levels each of CoeffToSlot and SlotToCoeff takes for n slots (STAGES_PER_LEVEL butterfly stages each)."""
    return max(1, math.ceil(math.log2(slots) / STAGES_PER_LEVEL))


def _check_bound(value_bound: float | None) -> None:
    if value_bound is not None and not (value_bound > 0 and math.isfinite(value_bound)):
        raise ParameterError(f"cannot bootstrap: value_bound must be positive and finite, got {value_bound!r}")


class BootstrapRole:
    """Bootstrapping with public keys only: plans, pipelines per slot count, packing, the bootstrapping keys.

    Inputs reach it checked by the scheme (its own ciphertexts, well formed).

    Args:
        ctx: the parameter set's objects; keyset: the full secret (the conjugation key);
        records, encoder, evaluator, aligner, rotator, mover, batch: the roles the pipeline
        computes with (:class:`.pipeline_roles.PipelineRoles`).
    """

    def __init__(self, ctx: CkksContext, keyset: KeySet, records: NoiseRecords, encoder: PlaintextEncoder,
                 evaluator: Evaluator, aligner: LevelAligner, rotator: Rotator, mover: RowMover,
                 batch: BatchOps) -> None:
        self.params, self.ring, self.keyset = ctx.params, ctx.ring, keyset
        self.roles = PipelineRoles(ctx, records, encoder, evaluator, aligner, rotator, mover, batch)
        self._pipelines: dict[int, Bootstrapper] = {}

    def pipeline(self, slots: int, spec: EvalModSpec | None = None, check_depth: bool = True) -> Bootstrapper:
        """The pipeline for n slots, its transforms in as many levels as wanted while MIN_LEVELS_LEFT remain.

        Kept per n once its depth is checked; with ``check_depth`` off (a plan's description) made afresh.
        """
        if slots not in self._pipelines:
            spec = spec or spec_for(self.params)
            wanted = transform_levels_for(slots)
            for levels in range(wanted, 0, -1):
                boot = Bootstrapper(self.roles, slots, spec, check_depth=False, transform_levels=levels)
                if boot.depth <= self.params.levels - MIN_LEVELS_LEFT or levels == 1:
                    break
            if not check_depth:
                return boot
            self._pipelines[slots] = Bootstrapper(self.roles, slots, spec, transform_levels=boot.transform_levels)
        return self._pipelines[slots]

    def _slots_for(self, ct: Ciphertext, slots: int | None) -> int:
        if slots is not None:
            return int(slots)
        return min(self.params.slots, max(2, layout.next_pow2(ct.rows * ct.meta["stride"])))

    def bootstrap(self, ct: Ciphertext, *, slots: int | None = None, clean: bool = False,
                  value_bound: float | None = None) -> Ciphertext:
        """The same values at a higher level, computed with public keys only.

        Args:
            ct: a one-ciphertext batch. Above level 0 its spare level brings it to level 0,
                clean, at the scale the sine approximation wants for its values
                (:func:`.packing.to_level_zero`); at level 0 it must already be clean and there.
            slots: the packing n (default: the power of two covering the batch's slots);
                the keys must come from :meth:`key_requirements` for this n.
            clean: zero the slots beyond the batch's values (one more level) so the result
                can be bootstrapped again after more work; otherwise they hold copies of
                the values (marked dirty).
            value_bound: a bound on |value| the caller vouches for (a model's declared
                range), used instead of the tracked one when tighter. Values up to 16x above
                it still come back within the output's noise record; far above it (256x:
                the sine's range) they come back wrong, with no sign without the key
                (SECURITY.md, "Training by bootstrapping").

        Returns:
            A ciphertext at level ``plan(n, clean=clean)["output_level"]``. Its noise record
            starts from the pipeline's own error: the input's error becomes part of the
            value, as in a masked refresh (its value bound grows by it, unless
            ``value_bound`` vouches for the whole).

        Raises:
            ParameterError: the chain is too short for the pipeline, a bad n, or values too
                large for the sine approximation at level 0.
            EncodingError: a multi-ciphertext batch, or a dirty one at level 0.
            KeyMissingError: a key of the pipeline is missing.
        """
        _check_bound(value_bound)
        n = self._slots_for(ct, slots)
        boot = self._ready(n, clean, ct.describe())
        ct = self._bounded(ct, value_bound)
        src = blocks.to_level_zero(self.roles, ct, blocks.common_target(self.roles, [ct], INPUT_DELTA, None)) \
            if layout.level(ct) > 0 else ct  # at level 0 it must already be clean and at its scale
        out = self._run(boot, src, value_bound)
        return blocks.clean_batch(self.roles, out) if clean else out

    def bootstrap_many(self, cts: list[Ciphertext], *, slots: int, clean: bool = False,
                       value_bound: float | None = None) -> list[Ciphertext]:
        """Several ciphertexts through one bootstrap (:mod:`.packing`): the same values, each at a higher level.

        Each input is masked to its own values and moved to its own block of the n slots
        (every one must be above level 0); the outputs come back in order with their
        shapes, at ``plan(n, clean=clean)["output_level"]``, like :meth:`bootstrap`'s. The
        keys must come from :meth:`key_requirements` for this n with ``packing=True`` (the
        power-of-two rotations below n move the blocks).

        Args:
            cts: one-ciphertext batches under one key (:func:`.packing.check_packable`).
            slots: the packing n; the tensors' blocks (:func:`.packing.extent` each) must fit.
            clean: as :meth:`bootstrap` (each output zero outside its own values).
            value_bound: as :meth:`bootstrap`, for every value of every input.

        Raises:
            ParameterError: blocks that do not fit n, an input at level 0, values too large
                for the sine, or a chain too short.
            KeyMissingError: a rotation of the packing or of the pipeline has no key.
        """
        _check_bound(value_bound)
        n = int(slots)
        boot = self._ready(n, clean, f"{len(cts)} ciphertexts")
        cts = [self._bounded(ct, value_bound) for ct in cts]
        offsets = blocks.pack_offsets([blocks.extent(ct.rows, ct.meta["stride"]) for ct in cts], n)
        target = blocks.common_target(self.roles, cts, INPUT_DELTA, None)
        src = blocks.pack(self.roles, cts, offsets, n, target)
        out = self._run(boot, src, value_bound)
        return blocks.unpack(self.roles, out, cts, offsets, clean)

    @staticmethod
    def packs(cts: list[Ciphertext], slots: int) -> list[list[int]]:
        """How :meth:`bootstrap_many` calls would cover ``cts`` with n slots each: the indices of each call.

        One list when they fit n side by side; otherwise the fewest the first-fit rule finds.

        Raises:
            ParameterError: one of them alone needs more than n slots.
        """
        return blocks.groups([blocks.extent(ct.rows, ct.meta["stride"]) for ct in cts], int(slots))

    def _ready(self, n: int, clean: bool, what: str) -> Bootstrapper:
        plan = self.plan(n, clean=clean)
        if not plan["possible"]:
            raise ParameterError(f"cannot bootstrap {what}: {plan['reason']}")
        return self.pipeline(n)

    def _bounded(self, ct: Ciphertext, value_bound: float | None) -> Ciphertext:
        """ct with its value record lowered to the caller's bound where that is tighter."""
        var, vmax = self.roles.records.nv(ct)
        return self.roles.records.noisy(ct, var, vmax if value_bound is None else min(vmax, float(value_bound)))

    def _run(self, boot: Bootstrapper, src: Ciphertext, value_bound: float | None) -> Ciphertext:
        """The pipeline on a clean level-0 input; the output's record restarts from its own error.

        The input's error joins the value (its bound grows by it unless ``value_bound``
        vouches for the whole).
        """
        records = self.roles.records
        boot.check_input(src)
        self._check_phase(src)
        value = blocks.record_value(self.roles, src, value_bound)
        out = boot.bootstrap(records.noisy(src, np.zeros(3), records.nv(src)[1]))
        return records.noisy(out, records.nv(out)[0], value)

    def _check_phase(self, ct: Ciphertext) -> None:
        """Refuse a level-0 input whose values are too large for the sine at its scale.

        The values decide (the noise record is a bound that compounds over a computation; the
        pipeline's own records bound the approximation's error at this delta).
        """
        vmax = float(ct.meta["vmax"])
        delta = ct.scale * vmax / self.ring.q[0]
        if delta > MAX_DELTA:
            raise ParameterError(f"cannot bootstrap {ct.describe()}: values up to {vmax:.3g} at scale "
                                 f"2^{math.log2(ct.scale):.1f} give a phase of {delta:.3g} q_0 (at most {MAX_DELTA:.3g}): "
                                 "bootstrap it above level 0, where its scale can be lowered")

    def plan(self, slots: int, *, clean: bool = False) -> dict:
        """What bootstrapping n slots needs and gives: keys (count, bytes), levels consumed and left.

        Works for any set: ``possible`` says whether this one can, ``reason`` why not;
        ``clean`` counts the level that zeroes the other slots.
        """
        half = self.params.slots
        if slots < 2 or slots > half or slots & (slots - 1):
            raise ParameterError(f"cannot bootstrap {slots} slots: need a power of two in [2, {half}]")
        per_key = self.params.digits * 2 * (len(self.ring.q) + len(self.ring.p)) * self.ring.n * 8
        plan = {"slots": slots, "possible": False, "reason": "", "rotations": [], "conjugation": True,
                "relinearisation": True, "keys": 0, "key_bytes": 0, "levels_consumed": None, "output_level": None}
        try:
            spec = spec_for(self.params)
        except ParameterError as exc:
            return {**plan, "reason": str(exc)}
        boot = self.pipeline(slots, spec, check_depth=False)
        depth = boot.depth + int(bool(clean))
        plan.update(levels_consumed=depth, evalmod={"K": spec.K, "degree": spec.degree,
                                                    "double_angles": spec.double_angles})
        if depth > self.params.levels:
            return {**plan, "reason": f"the pipeline takes {depth} levels, the chain has {self.params.levels}"}
        rotations = boot.rotations()
        keys = len(rotations) + 2  # + conjugation + relinearisation
        return {**plan, "possible": True, "rotations": rotations, "keys": keys, "key_bytes": keys * per_key,
                "output_level": self.params.levels - depth, "transform_levels": boot.transform_levels}

    def key_requirements(self, slots: int, *, packing: bool = False) -> KeyRequirements:
        """The keys a key set needs for bootstrapping n slots, except the conjugation (:meth:`add_conjugation_key`).

        Exactly the plan's rotations and relinearisation; with ``packing`` also the
        power-of-two rotations below n that :meth:`bootstrap_many` moves blocks with
        (:func:`.packing.packing_rotations`).

        Raises:
            ParameterError: see :meth:`plan`.
        """
        plan = self.plan(slots)
        if not plan["possible"]:
            raise ParameterError(f"cannot make bootstrapping keys: {plan['reason']}")
        moves = blocks.packing_rotations(slots) if packing else ()
        return KeyRequirements(minimal=True, multiply=True, rotations=tuple(plan["rotations"]) + moves)

    def add_conjugation_key(self, pair: KeyPair, rng: RandomSource) -> None:
        """Add the conjugation's Galois key (element 2N - 1) to ``pair``'s public keys, made with ``rng``."""
        self.keyset.add_galois(pair.public.data, 2 * self.params.poly_degree - 1, self.keyset.s_full(pair.secret), rng)
