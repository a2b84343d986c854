"""Key material containers and key requirements, common to every scheme."""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import secrets
import struct
from typing import Any, Iterable, NamedTuple

import numpy as np

from .errors import KeyExportError

KEY_ID_DOMAIN = b"henn-key-id-v1\0"


def new_key_id() -> str:
    """A random identifier for objects that have no public key material (tests, placeholders).

    Real key pairs are named by :func:`derive_key_id` instead, so an id cannot be
    attached to other key material without the change showing.
    """
    return secrets.token_hex(16)


def derive_key_id(scheme: str, params_id: str, material: Iterable[np.ndarray]) -> str:
    """The key id of a key pair: a SHA-256 of its identifying public arrays (128 bits, hex).

    Args:
        scheme, params_id: the scheme and parameter set (domain separation).
        material: the arrays that determine the key pair, in a fixed order (each scheme
            says which: :meth:`he_core.Scheme.key_id_material`).

    The hash covers each array's dtype, shape and bytes (little-endian), so two
    different public keys get different ids and a file whose key id does not match
    its public key is detected on load.
    """
    h = hashlib.sha256(KEY_ID_DOMAIN)
    for text in (scheme, params_id):
        raw = text.encode("utf-8")
        h.update(struct.pack("<I", len(raw)) + raw)
    for array in material:
        a = np.ascontiguousarray(array)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        dtype = a.dtype.str.encode()
        h.update(struct.pack("<I", len(dtype)) + dtype + struct.pack("<I", a.ndim))
        h.update(np.asarray(a.shape, dtype="<u8").tobytes())
        h.update(a.tobytes())
    return h.hexdigest()[:32]


@dataclasses.dataclass(frozen=True)
class KeyRequirements:
    """What a computation will ask of the keys, so each scheme generates what it needs.

    Attributes:
        sizes: vector lengths (last-axis sizes) that ciphertexts will have. The ``vhe``
            scheme makes one secret per size and the evaluation keys between them;
            a packing scheme uses it to choose rotations.
        rotations: extra slot rotations to make keys for (packing schemes).
        multiply: whether ciphertext x ciphertext products will be needed.
        minimal: make only the product key, the asked rotations and the ``transforms``'
            keys: nothing else for linear transforms or row movement (a client's keys
            for a known circuit: far fewer bytes to send).
        transforms: vector sizes that plaintext linear transforms (``matvec``) will
            take, whose keys even a ``minimal`` set holds (a packing scheme's rotations).
        coefficient_moves: keys that pack many ciphertexts' constant terms into one and
            expand one into constants (CKKS: the automorphisms ``X -> X^(2^k + 1)``).
    """

    sizes: tuple[int, ...] = (1,)
    rotations: tuple[int, ...] = ()
    multiply: bool = True
    minimal: bool = False
    transforms: tuple[int, ...] = ()
    coefficient_moves: bool = False

    def __post_init__(self) -> None:
        sizes = tuple(sorted({int(s) for s in self.sizes}))
        if not sizes or any(s < 1 for s in sizes):
            raise ValueError(f"KeyRequirements.sizes must be positive integers, got {self.sizes!r}")
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "rotations", tuple(sorted({int(r) for r in self.rotations})))
        transforms = tuple(sorted({int(t) for t in self.transforms}))
        if any(t < 1 for t in transforms):
            raise ValueError(f"KeyRequirements.transforms must be positive integers, got {self.transforms!r}")
        object.__setattr__(self, "transforms", transforms)

    def merge(self, other: "KeyRequirements") -> "KeyRequirements":
        return KeyRequirements(self.sizes + other.sizes, self.rotations + other.rotations,
                               self.multiply or other.multiply, self.minimal and other.minimal,
                               self.transforms + other.transforms,
                               self.coefficient_moves or other.coefficient_moves)


@dataclasses.dataclass
class SecretKey:
    """A secret key; only the key holder has one. ``data`` is scheme-specific."""

    scheme: str
    params_id: str
    key_id: str
    data: Any
    requirements: KeyRequirements = KeyRequirements()
    #: The parameter set itself (``params.param_id == params_id``), so the key can be saved on its own.
    params: Any = dataclasses.field(default=None, compare=False, repr=False)

    def __repr__(self) -> str:  # never print key material
        return f"SecretKey(scheme={self.scheme!r}, params_id={self.params_id!r}, key_id={self.key_id!r})"

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Refuse pickling: pickle is how process pools and clusters move objects, and a secret
        key must not ride along by accident (``he_core.serialization.save(..., passphrase=)``
        is the way out).

        Raises:
            KeyExportError: always.
        """
        raise KeyExportError(f"cannot pickle a secret key (key {self.key_id[:12]}): secret keys leave a process "
                             "only sealed, through he_core.serialization.save(key, path, passphrase=...)")

    def __copy__(self) -> "SecretKey":  # copies in the process stay possible (copy would use __reduce_ex__)
        return dataclasses.replace(self)

    def __deepcopy__(self, memo: dict) -> "SecretKey":
        return dataclasses.replace(self, data=copy.deepcopy(self.data, memo))


@dataclasses.dataclass
class PublicKeys:
    """Everything a party without the secret key needs: public key and evaluation keys."""

    scheme: str
    params_id: str
    key_id: str
    data: Any
    requirements: KeyRequirements = KeyRequirements()
    #: The parameter set itself (``params.param_id == params_id``), so the key can be saved on its own.
    params: Any = dataclasses.field(default=None, compare=False, repr=False)

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
    #: The parameter set itself (``params.param_id == params_id``), so the key can be saved on its own.
    params: Any = dataclasses.field(default=None, compare=False, repr=False)

    def __repr__(self) -> str:
        return (f"SwitchKey(scheme={self.scheme!r}, from={self.from_key_id[:12]!r}, "
                f"to={self.to_key_id[:12]!r})")


class KeyPair(NamedTuple):
    secret: SecretKey
    public: PublicKeys
