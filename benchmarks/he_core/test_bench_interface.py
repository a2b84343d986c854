"""Every op of the scheme interface, for every available scheme, at several vector sizes.

Grouped by op and size, so pytest-benchmark prints the schemes side by side::

    pytest benchmarks/he_core/test_bench_interface.py --benchmark-only
    pytest benchmarks/he_core/test_bench_interface.py --benchmark-only -m "not slow"   # sizes 8 and 64

Key generation and input encryption happen outside the timed region; each op's result
is checked against the plaintext answer once before it is timed.
"""
import pytest

import he_core
from henn.bench import ops as bench_ops
from henn.bench import runner

SCHEMES = he_core.available_schemes()
SIZES = [8, 64, pytest.param(256, marks=pytest.mark.slow)]
ROWS = 16

_contexts: dict = {}


def _context(scheme_name: str, size: int) -> bench_ops.Context:
    """Keys for (scheme, size) are made once per session: keygen is never timed."""
    key = (scheme_name, size)
    if key not in _contexts:
        _contexts[key] = bench_ops.make_context(he_core.get_scheme(scheme_name), size, ROWS)
    return _contexts[key]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("op_name", bench_ops.OP_NAMES)
@pytest.mark.parametrize("scheme_name", SCHEMES)
def test_op(benchmark, scheme_name, op_name, size):
    op = bench_ops.get_op(op_name)
    ctx = _context(scheme_name, size)
    reason = op.unsupported_reason(ctx.scheme)
    if reason:
        pytest.skip(reason)
    benchmark.group = f"{op_name} size {size}"
    benchmark.extra_info.update(scheme=scheme_name, op=op_name, size=size)
    prepared = op.prepare(ctx)
    benchmark.extra_info["max_abs_err"] = runner.check(ctx.scheme, prepared)
    if prepared.inplace:
        # A fresh target for every call: accumulating forever would change what is measured.
        benchmark.pedantic(prepared.run, setup=prepared.reset, rounds=50, iterations=1, warmup_rounds=2)
    else:
        benchmark(prepared.run)
