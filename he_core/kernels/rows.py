"""Row gather-sum and scatter-add on float64 tables, in Numba.

``numpy.add.at`` (the only correct NumPy scatter-add with repeated indices) is
unbuffered and slow; a compiled loop over the selected rows is the better tool here,
and there is no integer exactness to protect, so Numba rather than C. NumPy
references (``*_reference``) define the behaviour the kernels are tested against.
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _gather_sum(table, rows, out):
    for r in rows:
        for j in range(table.shape[1]):
            out[j] += table[r, j]


@numba.njit(cache=True, nogil=True)
def _scatter_add(table, rows, update, broadcast):
    for i in range(rows.shape[0]):
        src = 0 if broadcast else i
        r = rows[i]
        for j in range(table.shape[1]):
            table[r, j] += update[src, j]


def gather_sum(table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Sum of ``table[rows]`` as a ``(1, size)`` array; repeated rows count again.

    ``rows`` must already be validated (int64, within range) by the caller.
    """
    out = np.zeros((1, table.shape[1]), dtype=np.float64)
    _gather_sum(table, rows, out[0])
    return out


def scatter_add(table: np.ndarray, rows: np.ndarray, update: np.ndarray) -> None:
    """In place: ``table[rows[i]] += update[i]`` (or ``update[0]`` for a one-row update)."""
    _scatter_add(table, rows, update, update.shape[0] == 1 and rows.shape[0] != 1)


def gather_sum_reference(table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return table[rows].sum(axis=0, keepdims=True)


def scatter_add_reference(table: np.ndarray, rows: np.ndarray, update: np.ndarray) -> None:
    np.add.at(table, rows, update[0] if update.shape[0] == 1 else update)
