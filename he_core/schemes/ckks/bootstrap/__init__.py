"""CKKS bootstrapping: ModRaise, CoeffToSlot, EvalMod, SlotToCoeff (see :mod:`.bootstrapper`)."""
from .bootstrapper import Bootstrapper
from .evalmod import EvalModSpec
from .params import bootstrappable

__all__ = ["Bootstrapper", "EvalModSpec", "bootstrappable"]
