"""he_core: homomorphic encryption schemes behind one interface.

Start with :func:`get_scheme` and :func:`available_schemes`; every scheme implements
:class:`Scheme`. Built in: ``plain`` (a plaintext twin for debugging), ``vhe`` (the
integer-vector scheme of Zhou and Wornell: exact, pedagogical, NOT secure) and
``ckks`` (RNS-CKKS, 128-bit-secure parameter sets), when their native parts are built.
"""
from .capabilities import Capability
from .ciphertext import Ciphertext
from .errors import (AlignmentError, CapabilityError, EncodingError, FormatError, HEError, HEOverflowError,
                     InsecureParametersError, KeyExportError, KeyMissingError, LevelExhaustedError, MismatchError,
                     NativeError, NoiseBudgetExhausted, ParameterError, PrecisionError, RefreshRequired,
                     SecurityWarning)
from .costs import OpCost
from .flooding import Flooding
from .keys import KeyPair, KeyRequirements, PublicKeys, SecretKey, SwitchKey
from .randomness import OsRandom, RandomSource, SeededRandom
from . import protocols
from .registry import available_schemes, builtin_schemes, get_scheme, register_scheme, scheme_class, unregister_scheme
from .scheme import Budget, Scheme
from . import serialization  # so ``he_core.serialization.save(...)`` works after ``import he_core``

__version__ = "0.1.0"


def kernel_paths() -> dict:
    """Which native code runs here: ``{"cpu_path": ..., "vector": ...}`` (see
    :func:`he_core.native.cpu_path` and :func:`he_core.native.vector_path`), each None when
    the native CKKS module is not built."""
    from . import native
    try:
        return {"cpu_path": native.cpu_path(), "vector": native.vector_path()}
    except ImportError:
        return {"cpu_path": None, "vector": None}


__all__ = [
    "Budget", "Capability", "Flooding", "PrecisionError", "CapabilityError", "Ciphertext", "EncodingError", "FormatError", "HEError",
    "HEOverflowError", "InsecureParametersError", "KeyExportError", "KeyMissingError", "KeyPair", "KeyRequirements",
    "LevelExhaustedError", "MismatchError", "AlignmentError", "NativeError", "NoiseBudgetExhausted", "OpCost", "OsRandom", "ParameterError",
    "PublicKeys", "RandomSource", "RefreshRequired", "Scheme", "SecretKey", "SecurityWarning", "SeededRandom", "SwitchKey",
    "available_schemes", "builtin_schemes", "kernel_paths", "protocols", "get_scheme", "register_scheme", "scheme_class", "serialization",
    "unregister_scheme",
]
