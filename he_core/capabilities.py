"""Capabilities a scheme declares, so callers can ask before they use an operation."""
from __future__ import annotations

import enum


class Capability(str, enum.Enum):
    """Optional operations of the scheme interface.

    Every scheme implements the core of :class:`he_core.Scheme` (encrypt / decrypt /
    add / sub / neg / add_plain / mul_plain / row operations / budget). Anything listed
    here may be missing, and asking for it then raises
    :class:`he_core.errors.CapabilityError`. Most capabilities come with a protocol,
    the operations a scheme that declares them defines (:mod:`he_core.protocols`).
    """

    PUBLIC_KEY_ENCRYPT = "public-key encryption"
    CIPHER_MULTIPLY = "ciphertext x ciphertext multiplication"
    INNER_PRODUCT = "ciphertext . ciphertext inner product"
    LINEAR_TRANSFORM = "plaintext matrix x encrypted vector"
    RESCALE = "rescaling"
    REKEY = "switching to another secret key"
    ROTATE = "slot rotation"
    PACKING = "packing many values per ciphertext"
    EXACT = "exact integer arithmetic"
    APPROXIMATE = "approximate arithmetic"
    REFRESH = "key-holder assisted refresh"
    SERIALIZE = "serialisation"
    SANITIZE = "re-randomising and flooding a ciphertext for the key holder"
    LEVELS = "a modulus chain of levels"
    BOOTSTRAP = "bootstrapping (refreshing levels with public keys only)"
    COEFF_ANSWER = "one-layer linear answers to coefficient-packed queries"
