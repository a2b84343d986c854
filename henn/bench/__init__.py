"""Benchmarks of every op of the he_core scheme interface, behind ``henn bench``.

Example::

    from henn.bench import run, table
    records = run(["plain"], sizes=[8], quick=True)
    print(table(records))
"""
from .ops import OP_NAMES, OPS, get_op
from .report import header, plot, table, to_json, write_json
from .runner import FULL_SIZES, QUICK_SIZES, Record, run
from .timing import FULL, QUICK, Budget, Timing, interleaved, measure

__all__ = [
    "Budget", "FULL", "FULL_SIZES", "OPS", "OP_NAMES", "QUICK", "QUICK_SIZES", "Record", "Timing", "get_op",
    "header", "interleaved", "measure", "plot", "run", "table", "to_json", "write_json",
]
