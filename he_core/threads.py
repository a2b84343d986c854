"""How many threads the native kernels use.

The C kernels split their work over RNS limbs, rows and ciphertexts on a small thread
pool per native module (``csrc/pool.c``); cffi releases the GIL around every call, so
other Python threads run meanwhile. Results are identical for any thread count.

The setting, in order of precedence:

* :func:`set_threads` (or the ``henn --threads N`` option), for this process;
* the ``HENN_THREADS`` environment variable, read once at import;
* the cores this process may run on (``os.sched_getaffinity``), so a process pinned
  with ``taskset -c 0`` uses one thread.

Several processes on one machine must share its cores, or their threads fight for them:
give each of W workers ``cores // W`` threads (:func:`threads_per_worker`), e.g. a Dask
``LocalCluster(n_workers=2)`` on 2 cores runs each worker with ``HENN_THREADS=1``
(set it in the workers' environment, or pin each worker to its own cores).
"""
from __future__ import annotations

import operator
import os
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator

from .errors import ParameterError

ENV = "HENN_THREADS"
MAX_THREADS = 256  # HE_MAX_THREADS of csrc/he_core.h
_MODULES = ("he_core.native._vhe", "he_core.native._ckks")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this platform
        return max(1, os.cpu_count() or 1)


def parse_threads(value, source: str = "threads") -> int:
    """A thread count from an int or a decimal string, validated.

    Raises:
        ParameterError: (a ``ValueError``) for anything but an integer in 1 .. 256.
    """
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("+").isdigit():
            raise ParameterError(f"cannot use {source}={value!r}: need a whole number of threads >= 1")
        count = int(text)
    elif isinstance(value, bool):
        raise ParameterError(f"cannot use {source}={value!r}: need a whole number of threads >= 1")
    else:
        try:
            count = operator.index(value)
        except TypeError:
            raise ParameterError(f"cannot use {source}={value!r}: need a whole number of threads >= 1") from None
    if not 1 <= count <= MAX_THREADS:
        raise ParameterError(f"cannot use {source}={value!r}: need 1 .. {MAX_THREADS} threads")
    return count


def default_threads() -> int:
    """``$HENN_THREADS`` if set, else the available cores (capped at the pool's maximum)."""
    env = os.environ.get(ENV)
    if env is not None and env.strip():
        return parse_threads(env, ENV)
    return min(available_cores(), MAX_THREADS)


_setting = default_threads()
_warned: set[str] = set()


def get_threads() -> int:
    """The thread count the native kernels are told to use."""
    return _setting


def set_threads(n) -> int:
    """Use ``n`` threads in every native kernel from now on; returns the previous setting.

    Raises:
        ParameterError: if ``n`` is not an integer in 1 .. 256.
    """
    global _setting
    count = parse_threads(n)
    previous, _setting = _setting, count
    for name in _MODULES:
        mod = sys.modules.get(name)
        if mod is not None:
            apply(mod)
    return previous


@contextmanager
def using_threads(n) -> Iterator[int]:
    """Run a block with ``n`` threads, then restore the previous setting."""
    previous = set_threads(n)
    try:
        yield get_threads()
    finally:
        set_threads(previous)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """The threads each of ``workers`` processes sharing ``cores`` (default: available) should use."""
    workers = parse_threads(workers, "workers")
    cores = available_cores() if cores is None else parse_threads(cores, "cores")
    return max(1, cores // workers)


def threads_built(mod) -> bool:
    """Whether a loaded native module was built with its thread pool."""
    return bool(mod.lib.he_threads_built())


def apply(mod) -> None:
    """Hand the setting to a freshly loaded (or already loaded) native module.

    A module built without threads (``HENN_NO_THREADS=1``) runs every kernel on one
    thread; that is said once, as a ``RuntimeWarning``, when more were asked for.
    """
    status = mod.lib.he_set_threads(_setting)
    if status != 0:  # parse_threads keeps the setting in range; this is a binding bug
        raise ParameterError(f"cannot set {_setting} threads: the native module refused (status {status})")
    name = getattr(mod, "__name__", "native module")
    if _setting > 1 and not threads_built(mod) and name not in _warned:
        _warned.add(name)
        warnings.warn(f"{name} was built without threads (HENN_NO_THREADS): its kernels run on one "
                      f"thread although {_setting} were asked for", RuntimeWarning, stacklevel=2)
