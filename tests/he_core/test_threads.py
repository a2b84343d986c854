"""he_core.threads: the setting (HENN_THREADS, set_threads, default = available cores), its
validation, how it reaches both native modules, and the one-thread build's warning."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from he_core import native, threads
from he_core.errors import ParameterError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = ("vhe", "ckks")


def run(code: str, **env) -> subprocess.CompletedProcess:
    """A fresh interpreter (the environment is read once, at import) with extra variables."""
    base = {k: v for k, v in os.environ.items() if k != threads.ENV}
    full = {**base, "PYTHONPATH": ROOT, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


@pytest.mark.parametrize("bad", [0, -1, 257, "0", "-2", "two", "", " ", "1.5", 2.0, True, None, [2]])
def test_bad_counts_are_refused_with_a_value_error(bad):
    with pytest.raises(ValueError, match="^cannot use threads="):
        threads.set_threads(bad)
    with pytest.raises(ParameterError):
        threads.parse_threads(bad)


def test_set_threads_reaches_every_loaded_module_and_using_threads_restores():
    mods = [native.load(name) for name in MODULES]
    before = threads.get_threads()
    with threads.using_threads(3) as n:
        assert n == 3 == threads.get_threads()
        assert [m.lib.he_get_threads() for m in mods] == [3, 3]
    assert threads.get_threads() == before
    assert [m.lib.he_get_threads() for m in mods] == [before, before]


def test_the_native_setter_refuses_out_of_range_counts():
    lib = native.load("ckks").lib
    assert lib.he_set_threads(0) == lib.HE_ERR_ARGUMENT
    assert lib.he_set_threads(lib.HE_MAX_THREADS + 1) == lib.HE_ERR_ARGUMENT
    assert lib.HE_MAX_THREADS == threads.MAX_THREADS


def test_default_is_the_cores_this_process_may_use():
    code = "from he_core import threads, native; print(threads.get_threads(), native.load('ckks').lib.he_get_threads())"
    pinned = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True,
                            env={**{k: v for k, v in os.environ.items() if k != threads.ENV}, "PYTHONPATH": ROOT})
    assert pinned.returncode == 0, pinned.stderr
    assert pinned.stdout.split() == ["1", "1"]
    free = run(code)
    cores = str(len(os.sched_getaffinity(0)))
    assert free.stdout.split() == [cores, cores]


def test_the_environment_variable_sets_and_is_validated():
    code = "from he_core import threads, native; print(threads.get_threads(), native.load('vhe').lib.he_get_threads())"
    assert run(code, HENN_THREADS="3").stdout.split() == ["3", "3"]
    bad = run(code, HENN_THREADS="zero")
    assert bad.returncode != 0 and "cannot use HENN_THREADS='zero'" in bad.stderr


def test_threads_per_worker_never_oversubscribes():
    assert threads.threads_per_worker(2, cores=2) == 1
    assert threads.threads_per_worker(3, cores=8) == 2
    assert threads.threads_per_worker(4, cores=2) == 1  # at least one each
    with pytest.raises(ValueError):
        threads.threads_per_worker(0)


def test_the_modules_are_built_with_their_pool():
    assert all(threads.threads_built(native.load(name)) for name in MODULES)


class _NoPool:
    """A stand-in for a module built with HENN_NO_THREADS (its he_threads_built says 0)."""

    __name__ = "he_core.native._fake"

    class lib:  # noqa: N801 - mirrors a cffi lib object
        @staticmethod
        def he_set_threads(n):
            return 0

        @staticmethod
        def he_threads_built():
            return 0


def test_a_one_thread_build_says_so_once_when_more_threads_are_asked():
    with threads.using_threads(2):
        with pytest.warns(RuntimeWarning, match="built without threads"):
            threads.apply(_NoPool())
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            threads.apply(_NoPool())  # said once per module


_FORK_RING: dict = {}


def _forked_ntt(a):
    """In the child: the same NTT with two threads, and whether it really used them."""
    ring = _FORK_RING["ring"]
    before = ring.lib.he_split_jobs()
    out = ring.ntt(a.copy())
    for _ in range(50):  # a busy machine may not run the worker before the caller is done
        if ring.lib.he_split_jobs() > before:
            break
        ring.ntt(a.copy())
    return out, ring.lib.he_split_jobs() > before


def test_a_forked_child_starts_its_own_workers():
    """The parent's workers do not exist in a forked child (as in a forked Dask or
    multiprocessing worker): the child's first split job must start new ones, not hang."""
    import multiprocessing

    import numpy as np

    from he_core.schemes.ckks.primes import ntt_primes
    from he_core.schemes.ckks.ring import RnsRing

    n = 16384  # long enough that a worker wakes before the caller has done every limb (vector NTTs are fast)
    _FORK_RING.setdefault("ring", RnsRing(n, tuple(ntt_primes(50, n, 8))))
    a = np.random.default_rng(0).integers(0, 2**40, (8, n), dtype=np.uint64)
    with threads.using_threads(2):
        want, used = _forked_ntt(a)  # the parent's pool is running
        assert used
        with multiprocessing.get_context("fork").Pool(1) as pool:
            got, child_used = pool.apply_async(_forked_ntt, (a,)).get(timeout=60)
    assert child_used
    assert np.array_equal(got, want)


@pytest.mark.slow
def test_a_build_without_threads_runs_on_one_thread_and_says_so(tmp_path):
    """HENN_NO_THREADS=1 (the fallback where POSIX threads are missing) builds every kernel
    for the calling thread; the module loads, works, reports one thread, and warns once."""
    import shutil

    for part in ("csrc", "he_core"):
        shutil.copytree(os.path.join(ROOT, part), tmp_path / part,
                        ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != threads.ENV}
    build = subprocess.run([sys.executable, "csrc/build_native.py", "vhe"], cwd=tmp_path, capture_output=True,
                           text=True, env={**env, "HENN_NO_THREADS": "1"}, timeout=600)
    assert build.returncode == 0, build.stderr
    code = ("import warnings, numpy as np\n"
            "warnings.simplefilter('always')\n"
            "with warnings.catch_warnings(record=True) as seen:\n"
            "    from he_core.schemes.vhe import native as vn\n"
            "print(vn.lib.he_threads_built(), vn.lib.he_get_threads(), sum('built without threads' in str(w.message)"
            " for w in seen))\n"
            "a = np.arange(12, dtype=np.int64).reshape(3, 4)\n"
            "print(vn.add(a, a, 1, 2, 2**62)[0].sum())\n")
    run_it = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={**env, "PYTHONPATH": str(tmp_path), threads.ENV: "2"}, timeout=120)
    assert run_it.returncode == 0, run_it.stderr
    assert run_it.stdout.split() == ["0", "1", "1", str(2 * sum(range(12)))]
