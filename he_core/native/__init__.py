"""Loading the compiled cffi modules, with a clear message when they were not built."""
from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import NativeError

_STATUS = {1: "invalid argument", 2: "integer overflow", 3: "out of memory", 4: "value out of range"}


def load(name: str) -> ModuleType:
    """Import ``he_core.native._<name>``; raise ImportError saying how to build it if missing."""
    try:
        return importlib.import_module(f"he_core.native._{name}")
    except ImportError as exc:
        raise ImportError(
            f"the native module he_core.native._{name} is not built ({exc}); "
            f"run `pip install -e .` or `python csrc/build_native.py {name}` from the source tree"
        ) from exc


def check(status: int, what: str) -> None:
    """Turn a non-zero HE_* status code into a :class:`~he_core.errors.NativeError`."""
    if status != 0:
        raise NativeError(f"native {what} failed: {_STATUS.get(status, f'status {status}')}")
