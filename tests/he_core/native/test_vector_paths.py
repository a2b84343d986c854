"""The CKKS vector kernels (transforms, sums of products) give the same words on every code path.

The paths (scalar, AVX-512, AVX-512 IFMA) are picked per CPU at run time; each path this
machine has is compared with the scalar one on random, zero and all-(q - 1) inputs, over
ring sizes from the smallest the vector code takes (16) to 2^15 and primes on both sides
of IFMA's 2^50 limit; the sums of products also against exact integer arithmetic.
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from he_core import native
from he_core.errors import ParameterError
from he_core.schemes.ckks.primes import ntt_primes
from he_core.schemes.ckks.ring import RnsRing

from .kernel_cases import AVAILABLE, using_path

# Primes below 2^50 take the IFMA path where the CPU has it; the others the 64-bit AVX-512 one.
BITS = (30, 40, 49, 50, 55, 60, 61)
def ring_of(n: int, bits: tuple[int, ...]) -> RnsRing:
    primes: list[int] = []
    for b in bits:
        primes += ntt_primes(b, n, 1, frozenset(primes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RnsRing(n, tuple(primes))


def transforms(ring: RnsRing, a: np.ndarray, path: str) -> tuple[np.ndarray, np.ndarray]:
    with using_path(path) as got:
        assert got == path
        return ring.ntt(a.copy()), ring.intt(a.copy())


def inputs(ring: RnsRing, kind: str, rng: np.random.Generator) -> np.ndarray:
    q = np.array(ring.q, dtype=np.uint64)[:, None]
    if kind == "zero":
        return np.zeros((len(ring.q), ring.n), dtype=np.uint64)
    if kind == "top":
        return np.repeat(q - np.uint64(1), ring.n, axis=1)
    return np.stack([rng.integers(0, int(p), ring.n, dtype=np.uint64) for p in ring.q])


def test_the_default_path_is_the_best_this_cpu_has():
    flags = set()
    with contextlib.suppress(OSError, StopIteration):
        flags = set(next(line for line in open("/proc/cpuinfo", encoding="ascii")
                         if line.startswith("flags")).split())
    if flags:
        # An AVX2-only CPU stays scalar by default (its AVX2 transforms are opt-in).
        want = ("ifma" if "avx512ifma" in flags else "avx512") if {"avx512f", "avx512dq"} <= flags else "scalar"
        if native.vector_path() != "scalar" or want == "scalar":  # a build without the vector code reports scalar
            assert native.vector_path() == want


def test_a_request_is_capped_at_what_the_cpu_has():
    best = native.vector_path()
    with using_path("ifma") as got:
        assert got == best
    with using_path("scalar") as got:
        assert got == "scalar"


def test_an_unknown_path_is_refused():
    with pytest.raises(ValueError, match="unknown vector path"):
        native.vector_path("avx1024")


@pytest.mark.parametrize("path", AVAILABLE[1:] or ["(none)"])
@pytest.mark.parametrize("n", [8, 16, 32, 64, 1024, 8192, 32768])
@pytest.mark.parametrize("kind", ["random", "zero", "top"])
def test_vector_paths_match_the_scalar_one(path, n, kind):
    if path == "(none)":
        pytest.skip("this CPU or build has no vector NTT path")
    ring = ring_of(n, BITS)
    a = inputs(ring, kind, np.random.default_rng(n))
    fwd0, inv0 = transforms(ring, a, "scalar")
    fwd1, inv1 = transforms(ring, a, path)
    assert np.array_equal(fwd0, fwd1)
    assert np.array_equal(inv0, inv1)
    with using_path(path):
        assert np.array_equal(ring.intt(fwd1.copy()), a)  # and the vector inverse undoes the vector forward


@settings(max_examples=40, deadline=None)
@given(logn=st.integers(3, 13), bits=st.lists(st.sampled_from(BITS), min_size=1, max_size=3, unique=True),
       seed=st.integers(0, 2**32 - 1))
def test_every_path_agrees_on_random_rings(logn, bits, seed):
    ring = ring_of(1 << logn, tuple(bits))
    a = inputs(ring, "random", np.random.default_rng(seed))
    results = [transforms(ring, a, path) for path in AVAILABLE]
    for fwd, inv in results[1:]:
        assert np.array_equal(fwd, results[0][0])
        assert np.array_equal(inv, results[0][1])
    assert all(np.all(fwd < np.array(ring.q, dtype=np.uint64)[:, None]) for fwd, _ in results)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_the_small_rings_are_correct_on_every_path(n):
    # Below 8 (AVX2) or 16 (AVX-512) words the scalar code runs whatever was asked.
    ring = ring_of(n, (40, 60))
    a = inputs(ring, "random", np.random.default_rng(0))
    fwd0, inv0 = transforms(ring, a, "scalar")
    fwd1, inv1 = transforms(ring, a, AVAILABLE[-1])
    assert np.array_equal(fwd0, fwd1) and np.array_equal(inv0, inv1)


def exact_dot(xs, ps, primes) -> np.ndarray:
    q = np.array(primes, dtype=object)[:, None]
    return sum(x.astype(object) * p.astype(object) for x, p in zip(xs, ps)) % q


@pytest.mark.parametrize("terms", [1, 2, 15, 16, 31, 64, 65, 130])
@pytest.mark.parametrize("n", [4, 16, 4096])
@pytest.mark.parametrize("kind", ["random", "top"])
def test_sums_of_products_are_exact_on_every_path(terms, n, kind):
    ring = ring_of(n, BITS)
    rng = np.random.default_rng(terms * n)
    xs = [inputs(ring, kind, rng) for _ in range(terms)]
    ps = [inputs(ring, kind, rng) for _ in range(terms)]
    want = exact_dot(xs, ps, ring.q)
    for path in AVAILABLE:
        with using_path(path):
            got = ring.dot(xs, ps)
        assert np.array_equal(got.astype(object), want), path


def test_a_sum_of_products_refuses_bad_factors():
    ring = ring_of(16, (40, 60))
    a = inputs(ring, "random", np.random.default_rng(0))
    with pytest.raises(ParameterError, match="factors"):
        ring.dot([a, a], [a])
    with pytest.raises(ParameterError, match="factors"):
        ring.dot([], [])
    with pytest.raises(ParameterError):
        ring.dot([a], [a[:1]])  # another limb count
    with pytest.raises(ParameterError, match="over one of its factors"):
        ring.dot([a], [a.copy()], out=a)


@pytest.mark.parametrize("n", [4, 16, 4096])
@pytest.mark.parametrize("kind", ["random", "top", "zero"])
def test_products_are_exact_on_every_path(n, kind):
    ring = ring_of(n, BITS)
    rng = np.random.default_rng(n)
    x, y = inputs(ring, kind, rng), inputs(ring, "random", rng)
    want = exact_dot([x], [y], ring.q)
    for path in AVAILABLE:
        with using_path(path):
            assert np.array_equal(ring.mul(x, y).astype(object), want), path


def test_the_environment_sets_the_path_once_and_a_later_choice_sticks():
    import os
    import subprocess
    import sys

    code = ("from he_core import native; a = native.vector_path(); b = native.vector_path('ifma'); "
            "native.cpu_path(); print(a, b, native.vector_path())")
    env = {**os.environ, "HENN_VECTOR": "scalar"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    first, chosen, after = out.stdout.split()
    assert first == "scalar" and after == chosen == AVAILABLE[-1]
    bad = subprocess.run([sys.executable, "-c", "from he_core import native; native.vector_path()"],
                         env={**os.environ, "HENN_VECTOR": "sse9"}, capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown vector path 'sse9'" in bad.stderr

