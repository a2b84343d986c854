"""Loading the compiled cffi modules, and the errors their HE_* status codes become.

Every C function of ``csrc/he_core.h`` returns a status code; :func:`check` turns a
non-zero one into a named exception. All of them derive from
:class:`~he_core.errors.NativeError`; those that mean "the caller passed something
wrong" also derive from ``ValueError``. The Python bindings validate their arguments
first, so reaching one of these from the public API is a bug in a binding.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType

from .. import threads
from ..errors import NativeError


class NativeArgumentError(NativeError, ValueError):
    """A C kernel refused a size or parameter (``HE_ERR_ARGUMENT``)."""


class NullPointerError(NativeArgumentError):
    """A C kernel was handed a NULL pointer where it needs a buffer (``HE_ERR_NULL``)."""


class ScratchError(NativeArgumentError):
    """A scratch or table buffer handed to a C kernel is too small or misaligned (``HE_ERR_SCRATCH``)."""


class DimensionMismatchError(NativeArgumentError):
    """A modulus built for one ring dimension was used with another (``HE_ERR_DIMENSION``)."""


class NativeRangeError(NativeError, ValueError):
    """A value lies outside the range a C kernel allows (``HE_ERR_RANGE``)."""


class NativeOverflowError(NativeError, OverflowError):
    """A C kernel's result would not fit its integer type (``HE_ERR_OVERFLOW``)."""


# Status code -> (exception, reason); the codes are the HE_* constants of csrc/he_core.h
# (tests/he_core/native checks the two agree).
STATUS = {
    1: (NativeArgumentError, "invalid size or parameter"),
    2: (NativeOverflowError, "a result would not fit its integer type"),
    3: (ScratchError, "a scratch or table buffer is too small or misaligned"),
    4: (NativeRangeError, "a value lies outside the allowed range"),
    5: (NullPointerError, "a required pointer is NULL"),
    6: (DimensionMismatchError, "a modulus was built for another ring dimension"),
}


# The code paths of the CKKS vector kernels, by the CKKS_VEC_* codes of csrc/he_core.h.
VECTOR_PATHS = ("scalar", "avx2", "avx512", "ifma")
_env_applied = False  # HENN_VECTOR is applied at the first load only


def load(name: str) -> ModuleType:
    """Import ``he_core.native._<name>`` with the thread setting of :mod:`he_core.threads`;
    raise ImportError saying how to build it if missing."""
    try:
        mod = importlib.import_module(f"he_core.native._{name}")
    except ImportError as exc:
        raise ImportError(
            f"the native module he_core.native._{name} is not built ({exc}); "
            f"run `pip install -e .` or `python csrc/build_native.py {name}` from the source tree"
        ) from exc
    threads.apply(mod)  # the module's pool starts at one thread; hand it the setting
    global _env_applied
    if name == "ckks" and os.environ.get("HENN_VECTOR") and not _env_applied:
        _ask_vector_path(mod, os.environ["HENN_VECTOR"], "HENN_VECTOR")
        _env_applied = True  # once per process: later calls to vector_path() must stick
    return mod


def check(status: int, what: str) -> None:
    """Raise the named exception of a non-zero HE_* status code: "cannot <what>: <reason>"."""
    if status != 0:
        cls, reason = STATUS.get(status, (NativeError, f"unknown status {status}"))
        raise cls(f"cannot {what}: {reason} (native status {status})")


def cpu_path() -> str:
    """Which build of the wide-vector CKKS kernels this CPU runs.

    ``"x86-64-v4"`` (AVX-512), ``"x86-64-v3"`` (AVX2) or ``"default"`` for the portable
    build's dispatch, ``"native"`` for a ``HENN_NATIVE=1`` (``-march=native``) build.
    """
    mod = load("ckks")
    return mod.ffi.string(mod.lib.ckks_cpu_path()).decode("ascii")


def vector_path(use: str | None = None) -> str:
    """Which code runs the CKKS wide-vector kernels, after switching to ``use`` if given.

    The kernels are the number-theoretic transforms and the sums of products:

    * ``"ifma"``: AVX-512, with IFMA's 52-bit products for primes below 2^50 (transforms and
      sums of products) and 64-bit ones for the other primes (transforms);
    * ``"avx512"``: AVX-512 with 64-bit products only;
    * ``"avx2"``: the transforms on four AVX2 lanes;
    * ``"scalar"``: one coefficient at a time.

    Every path gives bit-identical results. The default is the best path this CPU and build
    have, except AVX2, which runs only when asked for (its transforms measured no faster
    than the scalar ones). A request is capped at the best path available: ``"ifma"`` on a
    CPU without it gives the best of the others. ``HENN_VECTOR`` sets the path at load.

    Raises:
        ValueError: ``use`` is not one of ``VECTOR_PATHS``.
    """
    mod = load("ckks")
    if use is not None:
        _ask_vector_path(mod, use, "vector_path")
    return VECTOR_PATHS[mod.lib.ckks_vector_path(-1)]


def _ask_vector_path(mod: ModuleType, use: str, what: str) -> None:
    if use not in VECTOR_PATHS:
        raise ValueError(f"{what}: unknown vector path {use!r}; choose one of {', '.join(VECTOR_PATHS)}")
    mod.lib.ckks_vector_path(VECTOR_PATHS.index(use))
