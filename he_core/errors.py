"""The he_core exception hierarchy.

Every error raised on purpose by he_core or henn derives from :class:`HEError`, and
also from the built-in class that says what kind of mistake it is (``ValueError``,
``TypeError``, ``OverflowError``), so callers can catch either.
"""
from __future__ import annotations


class HEError(Exception):
    """Base class of every he_core error."""


class SecurityWarning(UserWarning):
    """Emitted when a scheme or parameter set does not give real security."""


class ParameterError(HEError, ValueError):
    """Parameters are malformed or inconsistent."""


class InsecureParametersError(ParameterError):
    """Parameters fall below the requested security level and were not explicitly allowed."""


class CapabilityError(HEError, NotImplementedError):
    """The scheme does not offer the requested operation."""

    def __init__(self, scheme: str, capability: str, hint: str = "", *, op: str | None = None):
        self.scheme = scheme
        self.capability = capability
        msg = f"cannot {op or 'use ' + capability}: scheme {scheme!r} does not support {capability}"
        super().__init__(msg + (f" ({hint})" if hint else ""))


class MismatchError(HEError, ValueError):
    """Two operands belong to different schemes, parameter sets, keys, shapes or scales."""


class AlignmentError(MismatchError):
    """Two operands' scales cannot be aligned at their level: operands with levels to spare (fresher) can be."""


class EncodingError(HEError, ValueError):
    """A plaintext cannot be encoded (NaN, inf, out of range for the scale, wrong shape)."""


class KeyMissingError(HEError, LookupError):
    """An operation needs key material this party does not hold."""


class HEOverflowError(HEError, OverflowError):
    """A magnitude would exceed what the representation can hold; raised before it happens."""


class NoiseBudgetExhausted(HEOverflowError):
    """The noise would grow past the point where decryption is still correct."""


class LevelExhaustedError(HEError, ValueError):
    """A leveled scheme has no modulus left for the requested operation."""


class PrecisionError(HEError, ValueError):
    """A released (noise-flooded) decryption would keep too few bits of precision."""


class FormatError(HEError, ValueError):
    """A serialised object is truncated, tampered with, of another version or another scheme."""


class KeyExportError(HEError, TypeError):
    """Secret key material was about to leave its process by a path that is not the sealed file format.

    A :class:`~he_core.keys.SecretKey` refuses pickling (and so every process pool,
    Dask or multiprocessing transport built on it): the only way out is
    ``he_core.serialization.save(key, path, passphrase=...)``, on purpose.
    """


class NativeError(HEError, RuntimeError):
    """The native core reported a failure that Python-side validation did not foresee."""


class RefreshRequired(HEError, ValueError):
    """An operand must be re-encrypted, into a layout or level only the key holder can produce.

    A packing scheme keeps some ciphertexts in layouts that make one operation cheap
    and others impossible without the secret key (CKKS: a coefficient-packed table row
    cannot enter a polynomial, and an update must reach a table at the table's level).
    Rather than silently lowering a large tensor or failing, the scheme names the
    operand and the layout it needs; a trainer with a key holder re-encrypts that
    operand through the masked refresh (``henn.keyholder.MaskedRefresh.refresh(ct,
    layout=target)``) and repeats the call. Raised before anything is computed or
    modified.

    Attributes:
        ciphertext: the operand to re-encrypt (the very object passed in).
        target: the layout to ask for (``Scheme.encrypt(..., layout=target)``); a
            JSON-ready dict, opaque to everything but the scheme.
    """

    def __init__(self, message: str, ciphertext, target: dict):
        super().__init__(message)
        self.ciphertext = ciphertext
        self.target = target
