"""Shared set-up of every benchmark: one thread, importable ``benchmarks`` package, machine info.

Run everything with ``pytest benchmarks/ --benchmark-only``; the quick subset with
``-m "not slow"`` (see docs/performance.md).
"""
import os
import pathlib
import sys

# One thread everywhere, so numbers compare across libraries and machines. Set before any
# numeric library is imported by a benchmark module; an explicit setting is kept.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = str(pathlib.Path(__file__).resolve().parents[1])
if ROOT not in sys.path:  # importlib mode does not add the repository root
    sys.path.insert(0, ROOT)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Add the CPU model, library versions and thread settings to saved benchmark JSON."""
    from henn.bench import report

    machine_info["henn"] = {"cpu": report.cpu_model(), "libraries": report.library_versions(),
                            "threads": {v: os.environ.get(v) for v in report.THREAD_VARS}}
