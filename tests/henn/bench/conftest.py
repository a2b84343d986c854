"""Make the source tree's ``benchmarks`` package importable for the peer-report tests.

``benchmarks/`` is not installed (it is not part of the wheel); pytest's importlib mode
does not put the repository root on ``sys.path``, so add it here.
"""
import pathlib
import sys

ROOT = str(pathlib.Path(__file__).resolve().parents[3])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
