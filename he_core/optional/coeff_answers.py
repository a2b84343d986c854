"""The standard half of :class:`he_core.protocols.CoeffAnswers`: the public methods validate, the scheme answers.

A scheme takes :class:`CoeffAnswering`, declares ``Capability.COEFF_ANSWER`` and supplies
``_coeff_answer_params``, ``_coeff_capacity``, ``_encrypt_coeff_query`` and
``_answer_coeff_query``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..capabilities import Capability
from ..ciphertext import Ciphertext
from ..errors import EncodingError
from ..flooding import Flooding
from ..keys import SecretKey
from ..randomness import RandomSource, resolve


def _finite(values: Any, ndim: int, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != ndim or array.size == 0 or not np.all(np.isfinite(array)):
        raise EncodingError(f"cannot use {what}: expected a non-empty finite {ndim}-d array, got shape {array.shape}")
    return array


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise EncodingError(f"cannot use {what} {value!r}: need a positive integer")
    return int(value)


class CoeffAnswering:
    """``coeff_answer_params``, ``coeff_capacity``, ``encrypt_coeff_query``, ``answer_coeff_query``."""

    def coeff_answer_params(self, step: int) -> Any:
        """The ``step``-th parameter set to try for coefficient answers, smallest ring first (``None``: no more)."""
        self.require(Capability.COEFF_ANSWER)
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise EncodingError(f"cannot pick coefficient-answer parameters: step {step!r} is not an integer >= 0")
        return self._coeff_answer_params(step)

    def coeff_capacity(self, features: int, outputs: int) -> int:
        """How many queries of ``features`` values one query ciphertext holds for ``outputs`` outputs."""
        self.require(Capability.COEFF_ANSWER)
        return self._coeff_capacity(_count(features, "features"), _count(outputs, "outputs"))

    def encrypt_coeff_query(self, values: Any, outputs: int, key: SecretKey, *, bound: float,
                            rng: RandomSource | int | None = None) -> Ciphertext:
        """``(count, features)`` queries, coefficient-packed for a layer of ``outputs`` outputs, under ``key``.

        ``bound`` is the public bound on ``|values|`` the ciphertext records (the owner's clip).

        Raises:
            EncodingError: non-finite values, more queries than one ciphertext holds, or values above ``bound``.
        """
        self.require(Capability.COEFF_ANSWER)
        x = _finite(values, 2, "query values")
        outputs = _count(outputs, "outputs")
        if x.shape[0] > self._coeff_capacity(x.shape[1], outputs):
            raise EncodingError(f"cannot encrypt {x.shape[0]} queries: one ciphertext holds "
                                f"{self._coeff_capacity(x.shape[1], outputs)}")
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not (math.isfinite(bound) and
                                                                                  bound >= np.max(np.abs(x))):
            raise EncodingError(f"cannot encrypt: bound {bound!r} is not a finite number >= max |values|")
        self._check_secret(key)
        return self._encrypt_coeff_query(x, outputs, key, float(bound), resolve(rng))

    def answer_coeff_query(self, query: Ciphertext, weight: Any, bias: Any, *, bound: float,
                           flooding: Flooding | None = None, rng: RandomSource | int | None = None) -> Ciphertext:
        """``query @ weight + bias`` at the output coefficients, every other coefficient uniform, sanitised.

        Args:
            query: a fresh :meth:`encrypt_coeff_query` ciphertext, as its sender made it.
            weight: ``(features, outputs)`` plaintext weights; bias: ``(outputs,)``.
            bound: the answering party's own bound on the query's values: the query is taken
                ``as_received`` with it here (its declared noise and bound are its sender's word,
                and the flood and the weights' scale are sized from them).
            flooding: sizes the flood of the answer's noise (the answer goes to the key holder).

        Raises:
            EncodingError: weights that are not finite or do not fit the query's shape.
            MismatchError: a query that is not a fresh coefficient-packed query of this layout.
        """
        self.require(Capability.COEFF_ANSWER)
        self.require(Capability.PUBLIC_KEY_ENCRYPT, "the answer is re-randomised with a public-key encryption")
        self._check_ct(query)
        w, b = _finite(weight, 2, "the weights"), _finite(bias, 1, "the bias")
        if b.shape[0] != w.shape[1]:
            raise EncodingError(f"cannot answer: weights {w.shape} and bias {b.shape} disagree")
        return self._answer_coeff_query(self.as_received(query, bound), w, b, flooding or Flooding(), resolve(rng))
