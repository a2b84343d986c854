"""The standard implementations of :class:`~he_core.protocols.Refreshable` and :class:`~he_core.protocols.Sanitizing`.

Both are about what crosses the boundary between the party that holds the secret key
and the parties that do not:

* the masked refresh (:meth:`MaskedRefreshing.refresh_plan`, :meth:`~MaskedRefreshing.apply_mask`,
  :meth:`~MaskedRefreshing.reencrypt_masked`, :meth:`~MaskedRefreshing.remove_mask`; see
  :mod:`he_core.refresh`; henn's ``MaskedRefresh`` draws the masks) brings a
  ciphertext back to full budget without either side seeing the values;
* :meth:`Sanitization.sanitize` is what a party that computed on ciphertexts does
  before handing one to the key holder: re-randomise it and flood its noise, so the
  key holder learns the value it is meant to see and nothing about how it was
  computed; :meth:`Sanitization.as_received` makes a received ciphertext's public
  metadata the receiver's own before it sizes such a flood.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..capabilities import Capability
from ..ciphertext import Ciphertext
from ..errors import CapabilityError, EncodingError, MismatchError
from ..flooding import Flooding
from ..keys import SecretKey
from ..randomness import RandomSource, resolve
from ..refresh import Mask, MaskPlan, check_mask


class MaskedRefreshing:
    """The scheme's five steps of the masked refresh; a scheme implements the ``_`` hooks."""

    def refresh_plan(self, ct: Ciphertext, target: Any = None, *, value_bound: float | None = None) -> MaskPlan:
        """Trainer: which entries a re-encryption of ``ct`` into ``target`` reads, and their bounds.

        Args:
            ct: the ciphertext to refresh.
            target: ``None`` (the same layout at full budget) or a layout this scheme
                named in a :class:`~he_core.RefreshRequired` error.
            value_bound: a bound on |value| the caller vouches for (e.g. the interval a
                polynomial activation is fitted on), used instead of the scheme's
                analytic bound when smaller. It sizes the mask; a value beyond it is
                still refreshed correctly, only hidden less.
        """
        self.require(Capability.REFRESH)
        self._check_ct(ct)
        if value_bound is not None and not (value_bound > 0 and np.isfinite(value_bound)):
            raise ValueError(f"cannot plan a refresh: value_bound must be positive and finite, got {value_bound!r}")
        return self._refresh_plan(ct, target, value_bound)

    def apply_mask(self, ct: Ciphertext, mask: Mask, *, rng: RandomSource | int | None = None) -> Ciphertext:
        """Trainer: ``ct`` plus the mask, re-randomised (what is sent to the key holder)."""
        self.require(Capability.REFRESH)
        self._check_ct(ct)
        check_mask(mask, mask.plan if isinstance(mask, Mask) else None)
        return self._apply_mask(ct, mask, resolve(rng))

    def reencrypt_masked(self, masked: Ciphertext, target: Any, key: SecretKey, *,
                         rng: RandomSource | int | None = None) -> Ciphertext:
        """Key holder: a fresh encryption of the target's map of the masked plaintext.

        The result depends on the masked plaintext only through that public map: the
        key holder never looks at the values, never branches on them, never rounds
        them to a value range.
        """
        self.require(Capability.REFRESH)
        self._check_decrypt(masked, key)
        return self._reencrypt_masked(masked, target, key, resolve(rng))

    def remove_mask(self, fresh: Ciphertext, mask: Mask, target: Any, source: Ciphertext,
                    value_bound: float | None = None) -> Ciphertext:
        """Trainer: subtract the target's map of the mask from the key holder's answer.

        ``source`` is the ciphertext that was refreshed: its public bookkeeping, such as
        the value bound, carries over (or ``value_bound``, the caller's, when given).
        """
        self.require(Capability.REFRESH)
        self._check_ct(fresh)
        self._check_ct(source)
        check_mask(mask, mask.plan if isinstance(mask, Mask) else None)
        if fresh.key_id != source.key_id or tuple(fresh.shape) != tuple(self._refresh_answer_shape(source, target)):
            raise MismatchError(f"cannot unmask: the answer {fresh.describe()} does not match the request "
                                f"{source.describe()}")
        return self._remove_mask(fresh, mask, target, source, value_bound)

    def refresh_answer_shape(self, ct: Ciphertext, target: Any = None) -> tuple[int, ...]:
        """The shape the key holder's answer to a refresh of ``ct`` into ``target`` has (``ct``'s, unless the
        target moves the values between packings)."""
        self.require(Capability.REFRESH)
        return self._refresh_answer_shape(ct, target)

    def refresh_target_signature(self, ct: Ciphertext, target: Any = None) -> dict:
        """The public description of a refresh (layout, levels, scale, shape) a job can allow or refuse."""
        self._check_ct(ct)
        return self._refresh_target_signature(ct, target)

    # ------------------------------------------------------------------ hooks
    def _refresh_answer_shape(self, ct: Ciphertext, target: Any) -> tuple[int, ...]:
        """The shape of the answer to a refresh of ``ct`` into ``target``: ``ct``'s, unless the target moves it."""
        return tuple(ct.shape)

    def _refresh_plan(self, ct: Ciphertext, target: Any, value_bound: float | None) -> MaskPlan:
        raise CapabilityError(self.name, Capability.REFRESH.value)

    def _apply_mask(self, ct: Ciphertext, mask: Mask, rng: RandomSource) -> Ciphertext:
        raise CapabilityError(self.name, Capability.REFRESH.value)

    def _reencrypt_masked(self, masked: Ciphertext, target: Any, key: SecretKey, rng: RandomSource) -> Ciphertext:
        raise CapabilityError(self.name, Capability.REFRESH.value)

    def _remove_mask(self, fresh: Ciphertext, mask: Mask, target: Any, source: Ciphertext,
                     value_bound: float | None) -> Ciphertext:
        raise CapabilityError(self.name, Capability.REFRESH.value)

    def _refresh_target_signature(self, ct: Ciphertext, target: Any) -> dict:
        return {"layout": target, "shape": list(ct.shape)}


class Sanitization:
    """``sanitize`` and ``as_received``; a scheme implements ``_sanitize`` (and ``_as_received`` if it keeps noise metadata)."""

    def sanitize(self, ct: Ciphertext, *, flooding: Flooding | None = None,
                 rng: RandomSource | int | None = None) -> Ciphertext:
        """Re-randomise ``ct`` and flood its noise before it goes to the key holder (circuit privacy).

        Whoever holds the secret key can read more than the value from a ciphertext:
        its randomness components and its noise are functions of the computation
        (e.g. which table rows were gathered). Adding a fresh public-key encryption of
        zero whose noise floods the estimated noise leaves a ciphertext of the same
        value whose other parts do not depend on the computation.
        """
        self.require(Capability.SANITIZE)
        self.require(Capability.PUBLIC_KEY_ENCRYPT, "sanitising adds a public-key encryption of zero")
        self._check_ct(ct)
        return self._sanitize(ct, flooding or Flooding(), resolve(rng))

    def as_received(self, ct: Ciphertext, bound: float) -> Ciphertext:
        """``ct`` as a party computing for someone else must treat it: a fresh encryption of values within ``bound``.

        A received ciphertext's public metadata is its sender's word. Noise estimates
        that size a flood (:meth:`sanitize`) must not rest on it: the estimate is set to
        at least a fresh public-key encryption's and the value bound to ``bound`` (the
        receiver's own, e.g. the inputs' clip), so a sender who understates either gets
        no smaller a flood.

        Raises:
            EncodingError: ``bound`` not positive and finite.
        """
        self.require(Capability.SANITIZE)
        self._check_ct(ct)
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not (math.isfinite(bound) and bound > 0):
            raise EncodingError(f"cannot treat a received ciphertext: bound {bound!r} is not positive and finite")
        return self._as_received(ct, float(bound))

    def _as_received(self, ct: Ciphertext, bound: float) -> Ciphertext:
        """Scheme hook of :meth:`as_received` (default: no public noise metadata to reset)."""
        return ct

    def _sanitize(self, ct: Ciphertext, flooding: Flooding, rng: RandomSource) -> Ciphertext:
        raise CapabilityError(self.name, Capability.SANITIZE.value)
