"""The standard implementation of :class:`~he_core.protocols.Rekeying`: moving ciphertexts to another key.

The key holder makes a switch key from the old secret to the new one
(:meth:`Rekeying.make_switch_key`); anyone holding it moves ciphertexts across
(:meth:`Rekeying.rekey`) without decrypting them.
"""
from __future__ import annotations

from ..capabilities import Capability
from ..ciphertext import Ciphertext
from ..errors import CapabilityError, MismatchError
from ..keys import SecretKey, SwitchKey
from ..randomness import RandomSource, resolve


class Rekeying:
    """``make_switch_key`` and ``rekey``; a scheme implements ``_make_switch_key`` and ``_rekey``."""

    def make_switch_key(self, old: SecretKey, new: SecretKey, *,
                        rng: RandomSource | int | None = None) -> SwitchKey:
        """Key holder: make public material that re-keys ciphertexts from ``old`` to ``new``."""
        self.require(Capability.REKEY)
        self._check_secret(old)
        self._check_secret(new)
        return self._make_switch_key(old, new, resolve(rng))

    def rekey(self, ct: Ciphertext, switch_key: SwitchKey) -> Ciphertext:
        """Move ``ct`` to the switch key's target key without decrypting it."""
        self.require(Capability.REKEY)
        self._check_ct(ct)
        if not isinstance(switch_key, SwitchKey):
            raise TypeError(f"expected SwitchKey, got {type(switch_key).__name__}")
        if switch_key.from_key_id != ct.key_id:
            raise MismatchError(f"cannot rekey: switch key starts from key {switch_key.from_key_id[:12]}, "
                                f"but the ciphertext is under key {ct.key_id[:12]}")
        return self._rekey(ct, switch_key)

    def _make_switch_key(self, old, new, rng):
        raise CapabilityError(self.name, Capability.REKEY.value)

    def _rekey(self, ct, switch_key):
        raise CapabilityError(self.name, Capability.REKEY.value)
