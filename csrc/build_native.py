"""Build the native kernels with cffi (out-of-line API mode).

Each native module is one C header plus the ``.c`` files that share its prefix:

* ``he_core.native._vhe``  — ``csrc/vhe.h``  + ``csrc/vhe_*.c``
* ``he_core.native._ckks`` — ``csrc/ckks.h`` + ``csrc/ckks_*.c``

The declarations handed to cffi are the lines of the header between the markers
``CDEF-BEGIN`` and ``CDEF-END`` (cffi's parser cannot read preprocessor lines).
``csrc/he_core.h`` is the one public header that includes them all.

Environment switches:

* ``HENN_PORTABLE=1``  — do not tune for the build machine (no ``-march=native``).
* ``HENN_SANITIZE=1``  — build with ``-fsanitize=address,undefined`` (run the tests with
  ``LD_PRELOAD=$(gcc -print-file-name=libasan.so)``; see README, "Hardening").
* ``HENN_DEBUG=1``     — ``-O0 -g``.

Run ``python csrc/build_native.py [vhe|ckks ...]`` to rebuild modules in place during
development; ``pip install -e .`` does the same for all of them.
"""
from __future__ import annotations

import glob
import os
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = {"vhe": "vhe", "ckks": "ckks"}


def _cdef_from_header(path: str) -> str:
    text = open(path, encoding="utf-8").read()
    try:
        start = text.index("CDEF-BEGIN")
        end = text.index("CDEF-END")
    except ValueError as exc:
        raise RuntimeError(f"{path}: missing CDEF-BEGIN / CDEF-END markers") from exc
    body = text[text.index("\n", start) + 1 : end]
    body = body[: body.rfind("\n")]  # drop the comment line holding CDEF-END
    return "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("#"))


def compile_flags() -> list[str]:
    if os.environ.get("HENN_DEBUG") == "1":
        flags = ["-O0", "-g"]
    else:
        flags = ["-O3"]
    flags += ["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing"]
    if os.environ.get("HENN_PORTABLE") != "1":
        flags.append("-march=native")
    if os.environ.get("HENN_SANITIZE") == "1":
        flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
    return flags


def link_flags() -> list[str]:
    flags = ["-lm"]
    if os.environ.get("HENN_SANITIZE") == "1":
        flags += ["-fsanitize=address,undefined"]
    return flags


def make_ffi(prefix: str, *, absolute: bool = False) -> FFI:
    """The cffi builder of one module; setuptools wants paths relative to the project root,
    ``ffi.compile`` (which works inside its temporary directory) wants absolute ones."""
    header = os.path.join(HERE, f"{prefix}.h")
    sources = sorted(glob.glob(os.path.join(HERE, f"{prefix}_*.c")))
    place = (lambda p: p) if absolute else (lambda p: os.path.relpath(p, os.path.dirname(HERE)))
    ffi = FFI()
    ffi.cdef(_cdef_from_header(header))
    ffi.set_source(
        f"he_core.native._{prefix}",
        f'#include "{prefix}.h"',
        sources=[place(s) for s in sources],
        include_dirs=[place(HERE)],
        extra_compile_args=compile_flags(),
        extra_link_args=link_flags(),
    )
    return ffi


def _has_module(prefix: str) -> bool:
    return os.path.exists(os.path.join(HERE, f"{prefix}.h"))


ffi_vhe = make_ffi("vhe") if _has_module("vhe") else None
ffi_ckks = make_ffi("ckks") if _has_module("ckks") else None


def main(argv: list[str]) -> None:
    """Compile the named modules (default: all) into ``he_core/native/``."""
    root = os.path.dirname(HERE)
    os.chdir(root)
    for prefix in argv or [p for p in MODULES if _has_module(p)]:
        ffi = make_ffi(prefix, absolute=True)
        out = ffi.compile(tmpdir=os.path.join(root, "build", f"cffi_{prefix}"), verbose=False)
        dest = os.path.join(root, "he_core", "native", os.path.basename(out))
        os.replace(out, dest)
        print(f"built {dest}")


if __name__ == "__main__":
    main(sys.argv[1:])
