"""The encrypted bundle: named ciphertexts of one scheme and parameter set, plus JSON metadata.

A bundle is what an encrypted model is saved as (one ciphertext per weight tensor);
:mod:`he_core.serialization` writes and reads it like any other object.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from .ciphertext import Ciphertext
from .keys import KeyRequirements, PublicKeys, SecretKey, SwitchKey


@dataclasses.dataclass
class Bundle:
    """Named ciphertexts of one scheme and parameter set, plus JSON metadata.

    Attributes:
        ciphertexts: name -> ciphertext (an encrypted model stores one per weight tensor).
        meta: JSON-compatible description (architecture, shapes, training state...).
        public: optionally, the public keys the ciphertexts are under, so a party that
            receives the bundle can compute on it without a separate key file. Must be
            of the same scheme, parameter set and key as every ciphertext.
    """

    ciphertexts: dict[str, Ciphertext] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    public: PublicKeys | None = None

    @property
    def key_ids(self) -> list[str]:
        """The distinct keys the ciphertexts (and the attached public keys) are under, sorted."""
        ids = {ct.key_id for ct in self.ciphertexts.values()}
        if self.public is not None:
            ids.add(self.public.key_id)
        return sorted(ids)


Serialisable = Ciphertext | SecretKey | PublicKeys | SwitchKey | KeyRequirements | Bundle
