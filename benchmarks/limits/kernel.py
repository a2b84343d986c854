"""A measured upper bound on 64-bit modular multiply-adds per second on this CPU.

Two tiny C loops, compiled at run time with cffi (API mode, ``-O3 -march=native``) into
a temporary directory (``-funroll-loops``, ``restrict`` pointers: the fastest variant
we found), run over arrays that fit in the L1 cache, one thread:

* ``shoup``   — ``acc += a * w mod q`` with a constant ``w`` and its Shoup quotient
  ``floor(w * 2^64 / q)``: the multiply of an NTT butterfly or a key-switching
  multiply by a fixed key (two 64x64 multiplies and a conditional subtraction);
* ``barrett`` — ``acc = (acc + a * b) mod q`` for two varying operands through a
  128-bit product and Barrett reduction: the element-wise product of two ciphertexts;
* ``shoup_ifma`` — the Shoup loop on eight lanes of AVX-512 IFMA 52-bit products (q < 2^50),
  on CPUs that have it: the ceiling of henn's vector NTTs on primes below 2^50.

Every element is independent, so the loops measure throughput, not latency; no real
kernel that does more work per modular multiply (loads of twiddles, bit-reversed
access, branches) can beat them. The results are checked against Python integers.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import tempfile
import time

import numpy as np

CDEF = """
uint64_t limits_shoup(uint64_t *restrict acc, const uint64_t *restrict a, size_t n, uint64_t w, uint64_t w_shoup,
                      uint64_t q, size_t reps);
uint64_t limits_barrett(uint64_t *restrict acc, const uint64_t *restrict a, const uint64_t *restrict b,
                        size_t n, uint64_t q, uint64_t mu_hi, uint64_t mu_lo, size_t reps);
int limits_has_ifma(void);
uint64_t limits_shoup_ifma(uint64_t *restrict acc, const uint64_t *restrict a, size_t n, uint64_t w,
                           uint64_t w_shoup52, uint64_t q, size_t reps);
"""

SOURCE = r"""
#include <stdint.h>
#include <stddef.h>
typedef unsigned __int128 u128;

/* acc[i] <- acc[i] + a[i]*w mod q, lazily kept below 2q; q < 2^62. */
uint64_t limits_shoup(uint64_t *restrict acc, const uint64_t *restrict a, size_t n, uint64_t w, uint64_t w_shoup,
                      uint64_t q, size_t reps) {
    const uint64_t two_q = 2 * q;
    for (size_t r = 0; r < reps; r++) {
        for (size_t i = 0; i < n; i++) {
            uint64_t quot = (uint64_t)(((u128)a[i] * w_shoup) >> 64);
            uint64_t prod = a[i] * w - quot * q;          /* in [0, 2q) */
            uint64_t s = acc[i] + prod;                   /* in [0, 4q) */
            s -= (s >= two_q) ? two_q : 0;
            acc[i] = s;
        }
    }
    return acc[0];
}

/* acc[i] <- (acc[i] + a[i]*b[i]) mod q with Barrett reduction by mu = floor(2^128 / q). */
uint64_t limits_barrett(uint64_t *restrict acc, const uint64_t *restrict a, const uint64_t *restrict b,
                        size_t n, uint64_t q, uint64_t mu_hi, uint64_t mu_lo, size_t reps) {
    for (size_t r = 0; r < reps; r++) {
        for (size_t i = 0; i < n; i++) {
            u128 x = (u128)a[i] * b[i] + acc[i];
            uint64_t x_lo = (uint64_t)x, x_hi = (uint64_t)(x >> 64);
            /* estimate floor(x * mu / 2^128) from the high words; off by at most 2 */
            u128 t = (u128)x_lo * mu_hi + (((u128)x_lo * mu_lo) >> 64);
            uint64_t est = (uint64_t)(((u128)x_hi * mu_lo + t) >> 64) + x_hi * mu_hi;
            uint64_t rem = x_lo - est * q;
            rem -= (rem >= q) ? q : 0;
            rem -= (rem >= q) ? q : 0;
            acc[i] = rem;
        }
    }
    return acc[0];
}

#ifdef __AVX512IFMA__
#include <immintrin.h>
int limits_has_ifma(void) { return 1; }

/* The Shoup loop on eight lanes of IFMA's 52-bit products, q < 2^50 (n a multiple of 8). */
uint64_t limits_shoup_ifma(uint64_t *restrict acc, const uint64_t *restrict a, size_t n, uint64_t w,
                           uint64_t w_shoup52, uint64_t q, size_t reps) {
    const __m512i vw = _mm512_set1_epi64((long long)w), vws = _mm512_set1_epi64((long long)w_shoup52);
    const __m512i negq = _mm512_set1_epi64((long long)((1ULL << 52) - q)), mask = _mm512_set1_epi64((1LL << 52) - 1);
    const __m512i two_q = _mm512_set1_epi64((long long)(2 * q)), zero = _mm512_setzero_si512();
    for (size_t r = 0; r < reps; r++) {
        for (size_t i = 0; i < n; i += 8) {
            __m512i x = _mm512_loadu_si512(a + i);
            __m512i quot = _mm512_madd52hi_epu64(zero, x, vws);
            __m512i prod = _mm512_and_si512(_mm512_madd52lo_epu64(_mm512_madd52lo_epu64(zero, x, vw), quot, negq), mask);
            __m512i s = _mm512_add_epi64(_mm512_loadu_si512(acc + i), prod);
            _mm512_storeu_si512(acc + i, _mm512_min_epu64(s, _mm512_sub_epi64(s, two_q)));
        }
    }
    return acc[0];
}
#else
int limits_has_ifma(void) { return 0; }

uint64_t limits_shoup_ifma(uint64_t *restrict acc, const uint64_t *restrict a, size_t n, uint64_t w,
                           uint64_t w_shoup52, uint64_t q, size_t reps) { return 0; }
#endif
"""

N_ELEMENTS = 1024  # three arrays of 8 KiB: well inside L1
Q = (1 << 59) - 55  # any odd modulus below 2^62 works; the speed does not depend on its value
Q50 = (1 << 49) + 9  # an odd modulus below 2^50 for the IFMA loop (its values must fit 52 bits)


@functools.lru_cache(maxsize=1)
def load():
    """Compile (once per process) and import the kernel module."""
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    name = f"_henn_limits_{os.getpid()}"
    ffi.set_source(name, SOURCE, extra_compile_args=["-O3", "-march=native", "-funroll-loops", "-std=c11"])
    tmp = tempfile.mkdtemp(prefix="henn-limits-")
    path = ffi.compile(tmpdir=tmp, verbose=False)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ptr(ffi, array: np.ndarray):
    return ffi.cast("uint64_t *", ffi.from_buffer(array))


def inputs(n: int = N_ELEMENTS, q: int = Q, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gen = np.random.default_rng(seed)
    return tuple(gen.integers(0, q, size=n, dtype=np.uint64) for _ in range(3))


def shoup(acc: np.ndarray, a: np.ndarray, w: int, q: int = Q, reps: int = 1) -> None:
    """Run the Shoup multiply-add loop in place on ``acc`` (values kept below 2q)."""
    mod = load()
    w_shoup = (w << 64) // q
    mod.lib.limits_shoup(_ptr(mod.ffi, acc), _ptr(mod.ffi, a), a.size, w, w_shoup, q, reps)


def barrett(acc: np.ndarray, a: np.ndarray, b: np.ndarray, q: int = Q, reps: int = 1) -> None:
    """Run the Barrett multiply-add loop in place on ``acc`` (values reduced below q)."""
    mod = load()
    mu = (1 << 128) // q
    mod.lib.limits_barrett(_ptr(mod.ffi, acc), _ptr(mod.ffi, a), _ptr(mod.ffi, b), a.size, q,
                           mu >> 64, mu & (2**64 - 1), reps)


def has_ifma() -> bool:
    """Whether this CPU (the compiler's -march=native) has AVX-512 IFMA, hence the ``shoup_ifma`` loop."""
    return bool(load().lib.limits_has_ifma())


def shoup_ifma(acc: np.ndarray, a: np.ndarray, w: int, q: int = Q50, reps: int = 1) -> None:
    """The Shoup loop on IFMA lanes (q < 2^50, values kept below 2q; a no-op without IFMA)."""
    mod = load()
    mod.lib.limits_shoup_ifma(_ptr(mod.ffi, acc), _ptr(mod.ffi, a), a.size, w, (w << 52) // q, q, reps)


def peak(kind: str, seconds: float = 0.5, n: int = N_ELEMENTS) -> float:
    """Modular multiply-adds per second of the ``shoup``, ``shoup_ifma`` or ``barrett`` loop (best of several runs)."""
    acc, a, b = inputs(n)
    if kind == "shoup_ifma":
        acc, a, b = inputs(n, Q50)
    w = int(b[0])
    call = {"shoup": lambda reps: shoup(acc, a, w, reps=reps),
            "shoup_ifma": lambda reps: shoup_ifma(acc, a, w, reps=reps),
            "barrett": lambda reps: barrett(acc, a, b, reps=reps)}[kind]
    call(100)  # warm-up
    reps, best = 100, 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        call(reps)
        elapsed = time.perf_counter() - start
        if elapsed < 0.01:
            reps *= 2
            continue
        best = max(best, reps * n / elapsed)
    return best
