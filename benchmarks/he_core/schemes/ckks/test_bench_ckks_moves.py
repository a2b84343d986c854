"""Row moves and matvec of the native CKKS scheme at N = 8192 (the default set), 16 rows.

The cases of the benchmark engineer's training profile: subtracting a fresh (n, 1)
batch from the (n, 1) output of ``inner`` on size-8 rows (a change of stride), take_rows,
index_add_ and concat_rows on size-8 rows, and matvec at sizes 8 and 64::

    pytest benchmarks/he_core/schemes/ckks/test_bench_ckks_moves.py --benchmark-only \\
        --benchmark-columns=median,iqr,rounds

Keys are made once per size (never timed) with the sizes declared the way the
henn engine declares them (the vector size and 1); each result is checked against
the plaintext answer once before timing.
"""
from __future__ import annotations

import numpy as np
import pytest

from he_core import KeyRequirements, SeededRandom
from he_core.schemes.ckks import CkksParams, CkksScheme

ROWS = 16
BOUND = 2.0**-15
_ctx: dict = {}


def context(size: int):
    if size not in _ctx:
        scheme = CkksScheme(CkksParams())
        req = KeyRequirements(sizes=(size, 1), rotations=(1, -1), multiply=True)
        keys = scheme.keygen(req, rng=SeededRandom(1))
        _ctx[size] = (scheme, keys, np.random.default_rng(size))
    return _ctx[size]


def checked(scheme, keys, ct, want):
    err = float(np.max(np.abs(scheme.decrypt_exact_local(ct, keys.secret) - want)))
    assert err <= BOUND, f"error {err:.3g}"


@pytest.mark.parametrize("size", [8])
def test_sub_fresh_from_inner(benchmark, size):
    s, k, rng = context(size)
    x, w, t = rng.uniform(-1, 1, (ROWS, size)), rng.uniform(-1, 1, (ROWS, size)), rng.uniform(-1, 1, (ROWS, 1))
    inner, fresh = s.inner(s.encrypt(x), s.encrypt(w)), s.encrypt(t)
    checked(s, k, s.sub(inner, fresh), (x * w).sum(1, keepdims=True) - t)
    benchmark(s.sub, inner, fresh)


@pytest.mark.parametrize("size", [8])
def test_take_rows(benchmark, size):
    s, k, rng = context(size)
    x = rng.uniform(-1, 1, (ROWS, size))
    rows = np.array([3, 1, 4, 1, 5, 9, 2, 6, 15, 0, 7, 8])
    a = s.encrypt(x)
    checked(s, k, s.take_rows(a, rows), x[rows])
    benchmark(s.take_rows, a, rows)


@pytest.mark.parametrize("size", [8])
def test_index_add(benchmark, size):
    s, k, rng = context(size)
    x, y = rng.uniform(-1, 1, (ROWS, size)), rng.uniform(-1, 1, (8, size))
    rows = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    a, b = s.encrypt(x), s.encrypt(y)
    target = lambda: a.replace(data=a.data.copy())  # noqa: E731

    def run(t):
        s.index_add_(t, rows, b)

    t = target()
    run(t)
    want = x.copy()
    np.add.at(want, rows, y)
    checked(s, k, t, want)
    benchmark.pedantic(run, setup=lambda: ((target(),), {}), rounds=10, warmup_rounds=1)


@pytest.mark.parametrize("size", [8])
def test_concat_rows(benchmark, size):
    s, k, rng = context(size)
    x, y = rng.uniform(-1, 1, (5, size)), rng.uniform(-1, 1, (11, size))
    a, b = s.encrypt(x), s.encrypt(y)
    checked(s, k, s.concat_rows([a, b]), np.vstack([x, y]))
    benchmark(s.concat_rows, [a, b])


@pytest.mark.parametrize("size", [8, 64])
def test_matvec(benchmark, size):
    s, k, rng = context(size)
    x, m = rng.uniform(-1, 1, (ROWS, size)), rng.uniform(-1, 1, (size, size))
    a = s.encrypt(x)
    checked(s, k, s.matvec(a, m), x @ m.T)
    benchmark(s.matvec, a, m)
