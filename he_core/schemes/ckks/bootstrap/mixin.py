"""The ckks scheme's side of the Bootstrapping protocol (:class:`he_core.protocols.Bootstrapping`).

A mixin of :class:`~he_core.schemes.ckks.scheme.CkksScheme`: one :class:`Bootstrapper`
per slot count, an EvalMod range chosen from the secret's distribution, and the key
set (the pipeline's rotations, the conjugation and relinearisation, nothing else).
"""
from __future__ import annotations

import math

from ....ciphertext import Ciphertext
from ....errors import ParameterError
from ....keys import KeyPair, KeyRequirements
from ....randomness import RandomSource, resolve
from .. import keys as keygen, layout
from .bootstrapper import Bootstrapper
from .evalmod import EvalModSpec, spec_for_range


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
#: Levels a bootstrap should leave before its transforms take more than one level each.
MIN_LEVELS_LEFT = 3


class BootstrapMixin:
    """bootstrap, bootstrap_plan, bootstrap_keygen."""

    def _bootstrapper(self, slots: int, spec: EvalModSpec | None = None, check_depth: bool = True) -> Bootstrapper:
        """The pipeline for n slots, its transforms in as many levels as wanted while MIN_LEVELS_LEFT remain."""
        cache = self.__dict__.setdefault("_bootstrappers", {})
        if slots not in cache:
            spec = spec or spec_for(self.params)
            wanted = max(1, math.ceil(math.log2(slots) / STAGES_PER_LEVEL))
            for levels in range(wanted, 0, -1):
                boot = Bootstrapper(self, slots, spec, check_depth=False, transform_levels=levels)
                if boot.depth <= self.params.levels - MIN_LEVELS_LEFT or levels == 1:
                    break
            if not check_depth:
                return boot
            cache[slots] = Bootstrapper(self, slots, spec, transform_levels=boot.transform_levels)
        return cache[slots]

    def _boot_slots(self, ct: Ciphertext, slots: int | None) -> int:
        if slots is not None:
            return int(slots)
        return min(self.params.slots, max(2, layout.next_pow2(ct.rows * ct.meta["stride"])))

    def bootstrap(self, ct: Ciphertext, *, slots: int | None = None) -> Ciphertext:
        """The same values at a higher level, computed with public keys only.

        Args:
            ct: a clean, one-ciphertext batch (any level: it is dropped to 0 first).
            slots: the packing n (default: the power of two covering the batch's slots);
                the keys must come from :meth:`bootstrap_keygen` for this n.

        Returns:
            A ciphertext at level ``bootstrap_plan(n)["output_level"]``, the slots beyond
            the batch's values holding copies of them (marked dirty).

        Raises:
            ParameterError: the chain is too short for the pipeline, or a bad n.
            EncodingError: a dirty or multi-ciphertext batch.
            KeyMissingError: a key of the pipeline is missing.
        """
        self._check_ct(ct)
        n = self._boot_slots(ct, slots)
        plan = self.bootstrap_plan(n)
        if not plan["possible"]:
            raise ParameterError(f"cannot bootstrap {ct.describe()}: {plan['reason']}")
        return self._bootstrapper(n).bootstrap(ct)

    def bootstrap_plan(self, slots: int) -> dict:
        """What bootstrapping n slots needs and gives: keys (count, bytes), levels consumed and left.

        Works for any set: ``possible`` says whether this one can, ``reason`` why not.
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
        boot = self._bootstrapper(slots, spec, check_depth=False)
        depth = boot.depth
        plan.update(levels_consumed=depth, evalmod={"K": spec.K, "degree": spec.degree,
                                                    "double_angles": spec.double_angles})
        if depth > self.params.levels:
            return {**plan, "reason": f"the pipeline takes {depth} levels, the chain has {self.params.levels}"}
        rotations = boot.rotations()
        keys = len(rotations) + 2  # + conjugation + relinearisation
        return {**plan, "possible": True, "rotations": rotations, "keys": keys, "key_bytes": keys * per_key,
                "output_level": self.params.levels - depth, "transform_levels": boot.transform_levels}

    def bootstrap_keygen(self, slots: int, *, rng: RandomSource | None = None) -> KeyPair:
        """Keys for bootstrapping n slots: exactly the plan's rotations, the conjugation and relinearisation.

        Installs the public part here (as :meth:`keygen` does).

        Raises:
            ParameterError: see :meth:`bootstrap_plan`.
        """
        plan = self.bootstrap_plan(slots)
        if not plan["possible"]:
            raise ParameterError(f"cannot make bootstrapping keys: {plan['reason']}")
        rng = resolve(rng)
        pair = self.keygen(KeyRequirements(minimal=True, multiply=True, rotations=tuple(plan["rotations"])), rng=rng)
        r, s_full = self.ring, self._s_full(pair.secret)
        g = 2 * self.params.poly_degree - 1
        pair.public.data["galois"][str(g)] = keygen.switch_key(r, self.params, r.permute(s_full, r.galois_perm(g)),
                                                                s_full, rng)
        return pair
