"""The CKKS sets a computation gets: the :class:`he_core.param_choice.ParameterChoice` answers of
:class:`~he_core.schemes.ckks.scheme.CkksScheme` (the sets themselves: :mod:`.params`)."""
from __future__ import annotations

import math

from ...errors import ParameterError
from ...param_choice import ParameterChoice
from .bootstrap.params import for_training
from .params import CkksParams, for_answer, for_precise_answer, for_protocol, for_protocol_filled


class CkksParameterChoice(ParameterChoice):
    """Secure sets by depth, for bootstrapping, and for a server's answers (mixed into the scheme)."""

    @classmethod
    def params_for_depth(cls, depth: int, *, fill_ring: bool = False) -> CkksParams:
        """The smallest 128-bit set with ``depth`` levels above the refresh floor, at a flooding-proof scale.

        See :func:`~he_core.schemes.ckks.params.for_protocol`: depth 4 (the sentiment
        step) gets N = 16384, 5 levels of 54-bit primes (390 of 438 bits). With
        ``fill_ring`` the set takes every level that N holds.
        """
        return for_protocol_filled(depth) if fill_ring else for_protocol(depth)

    @classmethod
    def params_for_bootstrapping(cls, depth: int, *, slots: int = 16, ring: int | None = None) -> CkksParams:
        """A bootstrappable set leaving ``depth`` levels between clean bootstraps of ``slots`` values
        (:func:`~he_core.schemes.ckks.bootstrap.params.for_training`)."""
        return for_training(depth, slots=slots, ring=ring)

    @classmethod
    def params_for_answer(cls, depth: int, value_bound: float) -> CkksParams | None:
        """The smallest 128-bit set without a refresh floor whose last level holds ``value_bound``
        (:func:`~he_core.schemes.ckks.params.for_answer`), or ``None`` when q_0 cannot."""
        if not (value_bound > 0 and math.isfinite(value_bound)):
            return None
        try:
            return for_answer(depth, math.floor(math.log2(value_bound)) + 1)
        except ParameterError:
            return None

    @classmethod
    def answer_params(cls, depth: int, value_bound: float, input_bound: float) -> list[CkksParams]:
        """The answer set, then the floored set at the largest scale that encodes ``input_bound``
        (:func:`~he_core.schemes.ckks.params.for_precise_answer`), then the protocol's."""
        sets = super().answer_params(depth, value_bound, input_bound)
        precise = for_precise_answer(depth, input_bound)
        return sets[:-1] + [precise] + sets[-1:] if precise is not None else sets
