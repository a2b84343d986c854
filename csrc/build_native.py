"""Build the native kernels with cffi (out-of-line API mode).

``csrc/he_core.h`` is the one public header: it declares every exported function once.
Each native module is a section of it plus the ``.c`` files that share its prefix:

* ``he_core.native._vhe``  — section ``vhe``  + ``csrc/vhe_*.c``
* ``he_core.native._ckks`` — section ``ckks`` + ``csrc/ckks_*.c``

and every module also gets the shared sources (``csrc/pool.c``, its thread pool).

The declarations handed to cffi are the lines between ``CDEF-BEGIN <section>`` and
``CDEF-END <section>`` of the ``common`` section and the module's own; ``#define NAME
<integer>`` lines there become constants of the module, other preprocessor lines are
dropped (cffi's parser cannot read them). Internal helpers live in ``*_internal.h``.

The default build is portable (baseline x86-64 code, so a built wheel runs on any
x86-64 CPU): the hot CKKS kernels carry GCC ``target_clones`` copies for x86-64-v3
(AVX2) and x86-64-v4 (AVX-512) and the loader picks one per CPU; ``ckks_cpu_path()``
(``he_core.native.cpu_path()``) says which.

Environment switches:

* ``HENN_NATIVE=1``    — tune for the build machine instead (``-march=native``, one copy of
  every kernel, no dispatch); the library then only runs on CPUs like the build machine.
* ``HENN_SANITIZE=1``  — build with ``-fsanitize=address,undefined`` (run the tests with
  ``LD_PRELOAD=$(gcc -print-file-name=libasan.so)``; see README, "Hardening").
* ``HENN_DEBUG=1``     — ``-O0 -g``.
* ``HENN_NO_THREADS=1`` — build without the thread pool (every kernel on the calling
  thread; ``he_core.threads`` then warns at import). Also the automatic choice where
  POSIX threads are missing.

Threads come from a small pthread pool (csrc/pool.c) rather than OpenMP: libgomp's
workers do not survive ``fork`` (a forked Dask / multiprocessing worker would hang on
its first parallel kernel) and spin between jobs, which steals a shared core.

Run ``python csrc/build_native.py [vhe|ckks ...]`` to rebuild modules in place during
development; ``pip install -e .`` does the same for all of them.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "he_core.h")
MODULES = ("vhe", "ckks")
SHARED_SOURCES = ("pool.c",)
_DEFINE = re.compile(r"#define\s+[A-Z_][A-Z0-9_]*\s+-?\d+\b")


def cdef_section(text: str, name: str, path: str = HEADER) -> str:
    """The declarations between ``CDEF-BEGIN name`` and ``CDEF-END name`` of a header's text."""
    begin, end = re.search(rf"CDEF-BEGIN {name}\b.*\n", text), re.search(rf"\n.*CDEF-END {name}\b", text)
    if not begin or not end or end.start() < begin.end():
        raise RuntimeError(f"{path}: missing CDEF-BEGIN {name} / CDEF-END {name} markers")
    lines = text[begin.end(): end.start()].splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#") or _DEFINE.match(line.strip()))


def module_cdef(prefix: str) -> str:
    """What cffi is told about module ``prefix``: the common section, then its own."""
    text = open(HEADER, encoding="utf-8").read()
    return cdef_section(text, "common") + "\n" + cdef_section(text, prefix)


def compile_flags() -> list[str]:
    if os.environ.get("HENN_DEBUG") == "1":
        flags = ["-O0", "-g"]
    else:
        flags = ["-O3"]
    # -fno-wrapv undoes the -fwrapv of Python's own CFLAGS (which setuptools passes first):
    # the kernels check every sum that could overflow, and under -fwrapv a missed one would
    # wrap silently where UBSan (HENN_SANITIZE=1) is otherwise able to report it.
    flags += ["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-wrapv"]
    if os.environ.get("HENN_NATIVE") == "1":
        flags += ["-march=native", "-DHENN_NATIVE_BUILD"]
    if os.environ.get("HENN_SANITIZE") == "1":
        flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
    flags += ["-DHENN_NO_THREADS"] if no_threads() else ["-pthread"]
    return flags


def no_threads() -> bool:
    """Build without the thread pool: asked for, or no POSIX threads on this platform."""
    return os.environ.get("HENN_NO_THREADS") == "1" or os.name != "posix"


def link_flags() -> list[str]:
    flags = ["-lm"] + ([] if no_threads() else ["-pthread"])
    if os.environ.get("HENN_SANITIZE") == "1":
        flags += ["-fsanitize=address,undefined"]
    return flags


def make_ffi(prefix: str, *, absolute: bool = False) -> FFI:
    """The cffi builder of one module; setuptools wants paths relative to the project root,
    ``ffi.compile`` (which works inside its temporary directory) wants absolute ones."""
    sources = sorted(glob.glob(os.path.join(HERE, f"{prefix}_*.c")))
    sources += [os.path.join(HERE, name) for name in SHARED_SOURCES]
    place = (lambda p: p) if absolute else (lambda p: os.path.relpath(p, os.path.dirname(HERE)))
    ffi = FFI()
    ffi.cdef(module_cdef(prefix))
    ffi.set_source(
        f"he_core.native._{prefix}",
        '#include "he_core.h"',
        sources=[place(s) for s in sources],
        include_dirs=[place(HERE)],
        extra_compile_args=compile_flags(),
        extra_link_args=link_flags(),
    )
    return ffi


ffi_vhe = make_ffi("vhe")
ffi_ckks = make_ffi("ckks")


def main(argv: list[str]) -> None:
    """Compile the named modules (default: all) into ``he_core/native/``."""
    root = os.path.dirname(HERE)
    os.chdir(root)
    for prefix in argv or MODULES:
        ffi = make_ffi(prefix, absolute=True)
        out = ffi.compile(tmpdir=os.path.join(root, "build", f"cffi_{prefix}"), verbose=False)
        dest = os.path.join(root, "he_core", "native", os.path.basename(out))
        os.replace(out, dest)
        print(f"built {dest}")


def parse_args(argv: list[str]) -> list[str]:
    """The module names to build (``--help`` explains them; an unknown name exits with status 2)."""
    parser = argparse.ArgumentParser(prog="python csrc/build_native.py",
                                     description="Rebuild native modules of he_core in place (default: all). "
                                                 "HENN_NATIVE=1, HENN_SANITIZE=1, HENN_DEBUG=1, HENN_NO_THREADS=1 as in "
                                                 "the module "
                                                 "docstring.")
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"one of {', '.join(MODULES)}")
    modules = parser.parse_args(argv).modules
    for name in modules:
        if name not in MODULES:
            parser.error(f"cannot build {name!r}: the modules are {', '.join(MODULES)}")
    return modules


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]))
