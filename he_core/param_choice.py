"""How a scheme chooses its parameters for a computation: the classmethods every scheme answers.

A scheme without levels keeps its defaults (every method returns ``None`` or nothing); a
leveled scheme overrides them with its secure sets (``he_core.schemes.ckks``). Callers in
``henn`` ask these instead of naming a scheme's parameters.
"""
from __future__ import annotations

from .params import Parameters


class ParameterChoice:
    """The parameter-choice half of :class:`he_core.Scheme` (mixed in; no state)."""

    @classmethod
    def params_for_depth(cls, depth: int, *, fill_ring: bool = False) -> Parameters | None:
        """The cheapest parameters giving ``depth`` multiplicative levels, or ``None`` (the defaults).

        Schemes without levels keep their defaults; a leveled scheme picks its
        smallest secure set with that many levels. With ``fill_ring`` it then takes
        every further level the same ring holds at the same security (a computation
        refreshed whenever its levels run out then refreshes less often).
        """
        return None

    @classmethod
    def params_for_bootstrapping(cls, depth: int, *, slots: int = 16, ring: int | None = None) -> Parameters | None:
        """Parameters whose bootstrapping of ``slots`` values leaves ``depth`` levels for the computation.

        ``None``: the scheme cannot bootstrap. ``ring``: a smaller ring degree for tests (not
        secure: its parameters say so).
        """
        return None

    @classmethod
    def params_for_answer(cls, depth: int, value_bound: float) -> Parameters | None:
        """The cheapest parameters for ``depth`` levels never refreshed, whose result (``|values| <=
        value_bound``) is decrypted at the last level (a server's answer), or ``None``: no such set
        (callers then take :meth:`params_for_depth`)."""
        return None

    @classmethod
    def answer_params(cls, depth: int, value_bound: float, input_bound: float) -> list[Parameters]:
        """Parameter sets for a server's answers (``depth`` levels, never refreshed), cheapest first.

        :meth:`params_for_answer` (no refresh floor) when it exists, then sets with the
        floor below the computation, the most precise first: a leveled scheme may take a
        larger scale where inputs up to ``input_bound`` still encode. Callers try them in
        order on a trial (``henn.bundle``). Empty: the scheme keeps its defaults.
        """
        sets = [cls.params_for_answer(depth, value_bound), cls.params_for_depth(depth)]
        return [p for p in sets if p is not None]
