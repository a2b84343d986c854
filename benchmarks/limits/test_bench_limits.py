"""pytest-benchmark of the machine-limit loops (REPS x 1024 independent modular multiply-adds per call).

    pytest benchmarks/limits --benchmark-only

Divide REPS * 1024 by the median to get modular multiply-adds per second; ``python -m
benchmarks.limits`` prints that next to what the NTT and ciphertext products achieve.
"""
import pytest

from benchmarks.limits import kernel

REPS = 200  # enough work per call that Python's call overhead is under 1%


@pytest.fixture(scope="module")
def arrays():
    try:
        kernel.load()
    except Exception as exc:
        pytest.skip(f"cannot compile the limit kernels: {exc}")
    return kernel.inputs()


def test_shoup_multiply_add(benchmark, arrays):
    acc, a, b = arrays
    w = int(b[0])
    benchmark.group = f"limits: {REPS} x 1024 modular multiply-adds"
    benchmark(kernel.shoup, acc, a, w, kernel.Q, REPS)


def test_barrett_multiply_add(benchmark, arrays):
    acc, a, b = arrays
    benchmark.group = f"limits: {REPS} x 1024 modular multiply-adds"
    benchmark(kernel.barrett, acc, a, b, kernel.Q, REPS)
