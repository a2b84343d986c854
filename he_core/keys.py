"""Key material containers and key requirements, common to every scheme."""
from __future__ import annotations

import dataclasses
import secrets
from typing import Any, NamedTuple


def new_key_id() -> str:
    """A fresh random key identifier (independent of the key itself, so it leaks nothing)."""
    return secrets.token_hex(16)


@dataclasses.dataclass(frozen=True)
class KeyRequirements:
    """What a computation will ask of the keys, so each scheme generates what it needs.

    Attributes:
        sizes: vector lengths (last-axis sizes) that ciphertexts will have. The ``vhe``
            scheme makes one secret per size and the evaluation keys between them;
            a packing scheme uses it to choose rotations.
        rotations: extra slot rotations to make keys for (packing schemes).
        multiply: whether ciphertext x ciphertext products will be needed.
    """

    sizes: tuple[int, ...] = (1,)
    rotations: tuple[int, ...] = ()
    multiply: bool = True

    def __post_init__(self) -> None:
        sizes = tuple(sorted({int(s) for s in self.sizes}))
        if not sizes or any(s < 1 for s in sizes):
            raise ValueError(f"KeyRequirements.sizes must be positive integers, got {self.sizes!r}")
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "rotations", tuple(sorted({int(r) for r in self.rotations})))

    def merge(self, other: "KeyRequirements") -> "KeyRequirements":
        return KeyRequirements(self.sizes + other.sizes, self.rotations + other.rotations,
                               self.multiply or other.multiply)


@dataclasses.dataclass
class SecretKey:
    """A secret key; only the key holder has one. ``data`` is scheme-specific."""

    scheme: str
    params_id: str
    key_id: str
    data: Any
    requirements: KeyRequirements = KeyRequirements()

    def __repr__(self) -> str:  # never print key material
        return f"SecretKey(scheme={self.scheme!r}, params_id={self.params_id!r}, key_id={self.key_id!r})"


@dataclasses.dataclass
class PublicKeys:
    """Everything a party without the secret key needs: public key and evaluation keys."""

    scheme: str
    params_id: str
    key_id: str
    data: Any
    requirements: KeyRequirements = KeyRequirements()

    def __repr__(self) -> str:
        return f"PublicKeys(scheme={self.scheme!r}, params_id={self.params_id!r}, key_id={self.key_id!r})"


@dataclasses.dataclass
class SwitchKey:
    """Public material that moves ciphertexts from one secret key to another (re-keying)."""

    scheme: str
    params_id: str
    from_key_id: str
    to_key_id: str
    data: Any

    def __repr__(self) -> str:
        return (f"SwitchKey(scheme={self.scheme!r}, from={self.from_key_id[:12]!r}, "
                f"to={self.to_key_id[:12]!r})")


class KeyPair(NamedTuple):
    secret: SecretKey
    public: PublicKeys
