"""What every CKKS role object is built from: one parameter set and the objects it fixes.

SEAL tags each encoder, encryptor and evaluator with the context of its parameter set;
here :class:`CkksContext` is that tag. It holds what depends on the parameters alone
(the ring, the key switcher, the scale ladder, the noise formulas), never keys or
ciphertexts, and makes the ciphertexts the roles return (named by scheme and set).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ...ciphertext import Ciphertext
from .keyswitch import KeySwitcher
from .noise_model import NoiseModel
from .params import CkksParams
from .ring import RnsRing
from .scales import ScaleLadder


@dataclasses.dataclass(frozen=True, eq=False)
class CkksContext:
    """One parameter set's fixed objects, shared (read-only) by every role of a scheme.

    Attributes:
        name: the scheme's registered name (ciphertexts carry it).
        params: the parameter set.
        ring: the RNS ring over its primes; switcher: key switching over that ring.
        scales: the working scale of each level; noise: the noise formulas bound to the set.
    """

    name: str
    params: CkksParams
    ring: RnsRing
    switcher: KeySwitcher
    scales: ScaleLadder
    noise: NoiseModel

    @classmethod
    def for_params(cls, name: str, params: CkksParams) -> "CkksContext":
        """The context of ``params`` (its ring and switcher are shared with every context of the same set)."""
        switcher = KeySwitcher.for_params(params)
        return cls(name, params, switcher.ring, switcher, ScaleLadder(params, switcher.ring.q), NoiseModel(params))

    @property
    def params_id(self) -> str:
        """The parameter set's id (ciphertexts and keys carry it)."""
        return self.params.param_id

    def ciphertext(self, key_id: str, shape, scale: float, data: np.ndarray, meta: dict) -> Ciphertext:
        """A ciphertext of this parameter set under ``key_id``."""
        return Ciphertext(self.name, self.params_id, key_id, tuple(shape), float(scale), data, meta, self.params)
