"""vhe benchmarks: native kernels against the NumPy reference, and per-call overhead of the scheme.

Kernel benchmarks are grouped by ``<kernel>-m<size>`` so each group shows native and
reference side by side (the ratio is the speed-up). Key generation happens in fixtures,
outside every timed region. Run::

    pytest benchmarks/he_core/schemes/vhe --benchmark-only                # everything
    pytest benchmarks/he_core/schemes/vhe --benchmark-only -m "not slow"  # skips the slow reference runs
"""
import warnings

import numpy as np
import pytest

import he_core
from he_core import KeyRequirements
from he_core.schemes.vhe import native, reference

SIZES = (4, 16, 64, 256)
BATCH = 16  # rows per batched kernel call
IMPLS = {"native": native, "reference": reference}


def _keys(sizes):
    scheme = he_core.get_scheme("vhe")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        keys = scheme.keygen(KeyRequirements(sizes=sizes), rng=he_core.SeededRandom(1))
    return scheme, keys


@pytest.fixture(scope="module")
def world():
    return _keys(SIZES)


def _params(threshold):
    """(impl, size) cases; the reference at sizes >= threshold is marked slow."""
    out = []
    for m in SIZES:
        for impl in IMPLS:
            marks = [pytest.mark.slow] if impl == "reference" and m >= threshold else []
            out.append(pytest.param(impl, m, marks=marks, id=f"{impl}-m{m}"))
    return out


def _ct(scheme, m, rows=BATCH, lo=-4.0, hi=4.0, seed=0):
    return scheme.encrypt(np.random.default_rng(seed).uniform(lo, hi, (rows, m)))


@pytest.mark.parametrize("impl,m", _params(256))
def test_keyswitch_batched(benchmark, world, impl, m):
    """Batched key switch (re-randomisation key, S_m -> S_m) of BATCH ciphertexts."""
    scheme, keys = world
    p = scheme.params
    c = _ct(scheme, m).data
    mt = keys.public.data["rr"][str(m)]
    benchmark.group = f"keyswitch-m{m}"
    fn = IMPLS[impl].keyswitch
    if impl == "reference" and m >= 64:
        benchmark.pedantic(fn, args=(c, mt, p.digit_bits, p.ell, m, p.limit), rounds=2, iterations=1)
    else:
        benchmark(fn, c, mt, p.digit_bits, p.ell, m, p.limit)


@pytest.mark.parametrize("impl,m", _params(256))
def test_tensor(benchmark, world, impl, m):
    scheme, _ = world
    p = scheme.params
    a, b = _ct(scheme, m).data, _ct(scheme, m, seed=1).data
    benchmark.group = f"tensor-m{m}"
    benchmark(IMPLS[impl].tensor, a, m, b, m, p.k, p.w * p.scale, p.limit)


@pytest.mark.parametrize("impl,m", _params(1024))
def test_add(benchmark, world, impl, m):
    scheme, _ = world
    a, b = _ct(scheme, m).data, _ct(scheme, m, seed=1).data
    benchmark.group = f"add-m{m}"
    benchmark(IMPLS[impl].add, a, b, 1, m, scheme.params.limit)


@pytest.mark.parametrize("impl,m", _params(1024))
def test_scale_and_rescale(benchmark, world, impl, m):
    scheme, _ = world
    a = _ct(scheme, m).data
    f = np.full(1, 3 * 2**14, dtype=np.int64)
    benchmark.group = f"scale-m{m}"
    benchmark(IMPLS[impl].scale, a, f, scheme.params.scale, m, scheme.params.limit)


@pytest.mark.parametrize("impl,m", _params(1024))
def test_gather_sum(benchmark, world, impl, m):
    scheme, _ = world
    table = _ct(scheme, m, rows=1000, lo=-0.01, hi=0.01).data
    idx = np.random.default_rng(2).integers(0, 1000, 150).astype(np.int64)
    benchmark.group = f"gather_sum-m{m}"
    benchmark(IMPLS[impl].gather_sum, table, idx, m, scheme.params.limit)


@pytest.mark.parametrize("impl,m", _params(1024))
def test_scatter_add(benchmark, world, impl, m):
    scheme, _ = world
    table = _ct(scheme, m, rows=1000, lo=-0.01, hi=0.01).data
    upd = _ct(scheme, m, rows=1, lo=-1e-4, hi=1e-4).data
    idx = np.random.default_rng(2).integers(0, 1000, 150).astype(np.int64)
    benchmark.group = f"scatter_add-m{m}"
    benchmark(IMPLS[impl].scatter_add, table, idx, upd, m, scheme.params.limit)


# ---------------------------------------------------------------- scheme calls (per-call overhead)
@pytest.fixture(scope="module")
def small():
    scheme, keys = _keys((1, 8))
    rng = np.random.default_rng(0)
    return {
        "scheme": scheme,
        "v1": scheme.encrypt([[0.5]]),
        "v8": scheme.encrypt(rng.uniform(-1, 1, (1, 8))),
        "table": scheme.encrypt(rng.uniform(-1, 1, (5000, 8))),
        "upd": scheme.encrypt(rng.uniform(-1e-6, 1e-6, (1, 8))),
        "idx": rng.integers(0, 5000, 150).astype(np.int64),
    }


CALLS = {
    "add-m8": lambda s, d: s.add(d["v8"], d["v8"]),
    "add_plain-m1": lambda s, d: s.add_plain(d["v1"], 0.25),
    "mul_plain-m1": lambda s, d: s.mul_plain(d["v1"], 0.01),
    "mul_plain-m8": lambda s, d: s.mul_plain(d["v8"], 0.01),
    "mul-m1": lambda s, d: s.mul(d["v1"], d["v1"]),
    "mul-m8": lambda s, d: s.mul(d["v8"], d["v8"]),
    "mul_scalar_vector-m8": lambda s, d: s.mul(d["v1"], d["v8"]),
    "inner-m8": lambda s, d: s.inner(d["v8"], d["v8"]),
    "row_sum150-m8": lambda s, d: s.row_sum(d["table"], d["idx"]),
    "index_add150-m8": lambda s, d: s.index_add_(d["table"], d["idx"], d["upd"]),
    "polyval3-m1": lambda s, d: s.polyval(d["v1"], [0.5, 0.197, 0.0, -0.004]),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_call_overhead(benchmark, small, call):
    """A whole public scheme call on tiny ciphertexts: validation + bookkeeping + one native call."""
    benchmark.group = "vhe-call-overhead"
    fn = CALLS[call]
    benchmark(fn, small["scheme"], small)


@pytest.mark.parametrize("m", SIZES)
@pytest.mark.parametrize("op", ["mul", "inner", "encrypt_public"])
def test_scheme_ops(benchmark, world, op, m):
    scheme, _ = world
    a = _ct(scheme, m, rows=4, lo=-2, hi=2)
    benchmark.group = f"scheme-{op}"
    if op == "mul":
        benchmark(scheme.mul, a, a)
    elif op == "inner":
        benchmark(scheme.inner, a, a)
    else:
        x = np.random.default_rng(3).uniform(-2, 2, (4, m))
        benchmark(scheme.encrypt, x)
