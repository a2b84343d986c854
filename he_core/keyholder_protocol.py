"""The scheme operations that involve the key holder: released decryption, masked refresh, sanitising.

A mixin of :class:`he_core.Scheme` (public methods validate, then call hooks a
concrete scheme implements). Every one of them is about what crosses the boundary
between the party that holds the secret key and the parties that do not:

* :meth:`decrypt` is the decryption whose result may leave the key holder: noise-flooded
  and rounded for approximate schemes (see :mod:`he_core.flooding`).
  :meth:`decrypt_exact_local` is the exact one; its result must never leave the key
  holder's process (it carries the ciphertext's noise, which gives the key away).
* :meth:`refresh_plan`, :meth:`apply_mask`, :meth:`reencrypt_masked` and
  :meth:`remove_mask` are the scheme's side of the masked refresh (see
  :mod:`he_core.refresh`; henn's ``MaskedRefresh`` draws the masks).
* :meth:`sanitize` is what a party that computed on ciphertexts does before handing
  one to the key holder: re-randomise it and flood its noise, so the key holder learns
  the value it is meant to see and nothing about how it was computed.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .capabilities import Capability
from .ciphertext import Ciphertext
from .errors import CapabilityError, MismatchError
from .flooding import Flooding
from .keys import SecretKey
from .randomness import RandomSource, resolve
from .refresh import Mask, MaskPlan, check_mask


class KeyHolderProtocol:
    """Released decryption, masked refresh and sanitising; mixed into :class:`he_core.Scheme`."""

    # ------------------------------------------------------------------ decryption
    def decrypt(self, ct: Ciphertext, key: SecretKey, *, flooding: Flooding | None = None,
                rng: RandomSource | int | None = None) -> np.ndarray:
        """Decrypt for release: a float64 ``(rows, size)`` array that may leave the key holder.

        An approximate scheme adds flooding noise sized from the ciphertext's noise
        bound (:class:`~he_core.flooding.Flooding`: ``queries`` is how many released
        decryptions the adversary may see under this key) and rounds the result; an
        exact scheme's decryption carries no noise and is returned as it is.

        Raises:
            MismatchError: ``ct`` is under another key.
            he_core.PrecisionError: the flooding would leave fewer than
                ``flooding.min_precision_bits`` bits relative to the largest value
                (raise the scale at this level, or use a larger ring).
        """
        self._check_decrypt(ct, key)
        return self._decrypt_release(ct, key, flooding or Flooding(), resolve(rng))

    def decrypt_exact_local(self, ct: Ciphertext, key: SecretKey) -> np.ndarray:
        """Decrypt exactly, for the key holder's own process only: never export the result.

        For an approximate scheme the result carries the ciphertext's noise; together
        with the ciphertext it reveals the secret key. Use :meth:`decrypt` for anything
        that leaves the key holder (files, sockets, logs, other parties).
        """
        self._check_decrypt(ct, key)
        return self._decrypt(ct, key)

    def release_report(self, ct: Ciphertext, flooding: Flooding | None = None) -> dict:
        """What a released decryption of ``ct`` would carry: flooding sigma, grid, precision (no key needed)."""
        self._check_ct(ct)
        return self._release_report(ct, flooding or Flooding())

    def _check_decrypt(self, ct: Ciphertext, key: SecretKey) -> None:
        self._check_ct(ct)
        self._check_secret(key)
        if key.key_id != ct.key_id:
            raise MismatchError(f"cannot decrypt: {ct.describe()} is under key {ct.key_id[:12]}, "
                                f"the secret key given is {key.key_id[:12]}")

    def _decrypt_release(self, ct: Ciphertext, key: SecretKey, flooding: Flooding, rng: RandomSource) -> np.ndarray:
        if Capability.APPROXIMATE in self.capabilities:
            raise CapabilityError(self.name, "noise-flooded decryption",
                                  "an approximate scheme must flood its released decryptions")
        return self._decrypt(ct, key)

    def _release_report(self, ct: Ciphertext, flooding: Flooding) -> dict:
        return {"flooded": False, "why": f"{self.name} decrypts exactly: no noise to hide"}

    # ------------------------------------------------------------------ masked refresh
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
        check_mask(mask, mask.plan)
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
        check_mask(mask, mask.plan)
        if fresh.key_id != source.key_id or tuple(fresh.shape) != tuple(source.shape):
            raise MismatchError(f"cannot unmask: the answer {fresh.describe()} does not match the request "
                                f"{source.describe()}")
        return self._remove_mask(fresh, mask, target, source, value_bound)

    def refresh_target_signature(self, ct: Ciphertext, target: Any = None) -> dict:
        """The public description of a refresh (layout, levels, scale, shape) a job can allow or refuse."""
        self._check_ct(ct)
        return self._refresh_target_signature(ct, target)

    # ------------------------------------------------------------------ sanitising
    def sanitize(self, ct: Ciphertext, *, flooding: Flooding | None = None,
                 rng: RandomSource | int | None = None) -> Ciphertext:
        """Re-randomise ``ct`` and flood its noise before it goes to the key holder (circuit privacy).

        Whoever holds the secret key can read more than the value from a ciphertext:
        its randomness components and its noise are functions of the computation
        (e.g. which table rows were gathered). Adding a fresh public-key encryption of
        zero whose noise floods the estimated noise leaves a ciphertext of the same
        value whose other parts do not depend on the computation.
        """
        self.require(Capability.PUBLIC_KEY_ENCRYPT, "sanitising adds a public-key encryption of zero")
        self._check_ct(ct)
        return self._sanitize(ct, flooding or Flooding(), resolve(rng))

    # ------------------------------------------------------------------ hooks
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

    def _sanitize(self, ct: Ciphertext, flooding: Flooding, rng: RandomSource) -> Ciphertext:
        raise CapabilityError(self.name, "sanitising")
