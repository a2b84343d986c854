"""Decryption, the core operations that involve the key holder: released and exact.

A base of :class:`he_core.Scheme` (public methods validate, then call hooks a concrete
scheme implements), about what may cross the boundary between the party that holds
the secret key and the parties that do not:

* :meth:`decrypt` is the decryption whose result may leave the key holder: noise-flooded
  and rounded for approximate schemes (see :mod:`he_core.flooding`).
  :meth:`decrypt_exact_local` is the exact one; its result must never leave the key
  holder's process (it carries the ciphertext's noise, which gives the key away).
* :meth:`release_report` says what a released decryption would carry, without a key.

The masked refresh and sanitising are optional protocols: :mod:`he_core.optional.refresh`.
"""
from __future__ import annotations

import numpy as np

from .capabilities import Capability
from .ciphertext import Ciphertext
from .errors import CapabilityError, MismatchError
from .flooding import Flooding
from .keys import SecretKey
from .randomness import RandomSource, resolve


class KeyHolderProtocol:
    """Released and exact decryption; a base of :class:`he_core.Scheme`."""

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
