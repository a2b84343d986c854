"""The CKKS roles the bootstrapping pipeline computes with, in one object.

The pipeline's steps (:mod:`.modraise`, :mod:`.transforms`, :mod:`.evalmod`,
:mod:`.packing`, :mod:`.bootstrapper`) are functions of ciphertexts and of these roles:
each step names the role it uses (``roles.evaluator.add``, ``roles.rotator.rotate``)
and none reaches the scheme. They are the scheme's own role objects, shared, so the
pipeline's products, rotations and noise records are the ones every other operation
makes.
"""
from __future__ import annotations

import dataclasses

from ..alignment import LevelAligner
from ..arith import Evaluator
from ..batch import BatchOps
from ..context import CkksContext
from ..encoder import PlaintextEncoder
from ..noise_records import NoiseRecords
from ..params import CkksParams
from ..ring import RnsRing
from ..rotation import Rotator
from ..row_moves import RowMover
from ..scales import ScaleLadder


@dataclasses.dataclass(frozen=True, eq=False)
class PipelineRoles:
    """What a bootstrap computes with.

    Attributes:
        ctx: the parameter set's objects; records: noise records; encoder: slot vectors to
        plaintexts (the packing masks); evaluator: sums, plaintext products, rescaling,
        relinearisation; aligner: level drops, scale adjustment; rotator: rotations and the
        conjugation; mover: the masks of a batch's values; batch: aligned sums and products.
    """

    ctx: CkksContext
    records: NoiseRecords
    encoder: PlaintextEncoder
    evaluator: Evaluator
    aligner: LevelAligner
    rotator: Rotator
    mover: RowMover
    batch: BatchOps

    @property
    def params(self) -> CkksParams:
        return self.ctx.params

    @property
    def ring(self) -> RnsRing:
        return self.ctx.ring

    @property
    def scales(self) -> ScaleLadder:
        return self.ctx.scales
