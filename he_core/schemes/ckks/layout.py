"""Slot layout of a logical (rows, size) ciphertext batch.

Row r lives in ciphertext r // rpc, in the block of ``stride`` slots starting at slot
(r % rpc) * stride, where ``stride`` is a power of two >= size and rpc = slots // stride
rows fit one ciphertext. Only the first ``size`` slots of each used block are values;
``meta["dirty"]`` says whether the other slots may hold garbage (after rotate-and-sum),
and ``meta["rep"]`` marks a one-row batch whose every block holds the row.
"""
from __future__ import annotations

import numpy as np


def next_pow2(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()


def rows_per_ct(slots: int, stride: int) -> int:
    return slots // stride


def count_cts(rows: int, slots: int, stride: int) -> int:
    rpc = rows_per_ct(slots, stride)
    return -(-rows // rpc)


def pack(values: np.ndarray, slots: int, stride: int, rep: bool = False) -> np.ndarray:
    """(rows, size) values to (nct, slots) slot vectors; ``rep`` tiles one row into every block."""
    rows, size = values.shape
    rpc = rows_per_ct(slots, stride)
    if rep:
        values = np.broadcast_to(values[:1], (rpc, size))
        rows = rpc
    nct = -(-rows // rpc)
    out = np.zeros((nct * rpc, stride), dtype=values.dtype)
    out[:rows, :size] = values
    return out.reshape(nct, slots)


def unpack(slotvecs: np.ndarray, rows: int, size: int, stride: int) -> np.ndarray:
    """Inverse of :func:`pack`: (nct, slots) to (rows, size)."""
    nct, slots = slotvecs.shape
    blocks = slotvecs.reshape(nct * (slots // stride), stride)
    return blocks[:rows, :size]


def slot_of(row: int, slots: int, stride: int) -> tuple[int, int]:
    """(ciphertext index, first slot) of a row."""
    rpc = rows_per_ct(slots, stride)
    return row // rpc, (row % rpc) * stride


def meta(level: int, stride: int, dirty: bool = False, rep: bool = False) -> dict:
    return {"level": int(level), "stride": int(stride), "dirty": bool(dirty), "rep": bool(rep)}


def is_clean(ct) -> bool:
    return not ct.meta["dirty"] and not ct.meta["rep"]


def level(ct) -> int:
    """A ciphertext's level: its limbs (axis 2 of its (nct, parts, limbs, N) data) minus one."""
    return ct.data.shape[2] - 1
