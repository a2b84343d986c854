"""pytest-benchmark view of the peer comparison: grouped by op and N, one entry per library.

    pytest benchmarks/peers --benchmark-only -m "not slow"      # N = 8192
    pytest benchmarks/peers --benchmark-only --benchmark-group-by=group

Libraries that are not installed are skipped. ``python -m benchmarks.peers`` prints the
same comparison with henn/peer ratios, timing the libraries interleaved.
"""
import pytest

from benchmarks.peers import adapters, compare

NS = [8192, pytest.param(16384, marks=pytest.mark.slow)]
LIBS = [cls.name for cls in adapters.ADAPTERS]
_ready: dict = {}


def _adapter(name: str, n: int):
    key = (name, n)
    if key not in _ready:
        lib = next(a for a in adapters.adapters([name]))
        try:
            lib.setup(compare.SETTINGS[n])
            _ready[key] = (lib, compare.op_cases(lib, compare._inputs(n // 2)))
        except adapters.PeerMissing as exc:
            _ready[key] = str(exc)
    return _ready[key]


@pytest.mark.peers
@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("op", adapters.OPS)
@pytest.mark.parametrize("lib_name", LIBS)
def test_peer_op(benchmark, lib_name, op, n):
    ready = _adapter(lib_name, n)
    if isinstance(ready, str):
        pytest.skip(ready)
    _, cases = ready
    call, result, expected = cases[op]
    bits = compare.precision_bits(result(), expected)
    assert bits > 10, f"{lib_name} {op} decrypts to only {bits:.1f} bits of precision"
    benchmark.group = f"{op} N={n}"
    benchmark.extra_info.update(library=lib_name, precision_bits=bits)
    benchmark(call)
