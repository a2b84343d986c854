"""Where a coefficient-packed CKKS batch (a *table*) keeps its values, and what marks one.

Element ``(r, j)`` of a table is coefficient ``(r % R) * stride + j`` of ciphertext
``r // R`` (``R = N / stride`` rows each; a *reversed* row holds element ``j`` at
``stride - 1 - j``), scaled by the ciphertext's scale. ``meta["coeff"]`` marks the layout,
``meta["rev"]`` the order. A *constant* (one value in every slot) is a constant
polynomial. The operations on tables: :mod:`.coeff`.
"""
from __future__ import annotations

import numpy as np

from ...ciphertext import Ciphertext
from . import layout
from .params import REFRESH_FLOOR_LEVELS

# Tables sit one level above the refresh floor: the products their rows enter (inner
# products, updates) rescale once and must land where a masked refresh still fits.
TABLE_LEVEL = 1 + REFRESH_FLOOR_LEVELS
LAYOUTS = ("coeff", "constant", "slots")


def is_coeff(ct: Ciphertext) -> bool:
    return bool(ct.meta.get("coeff", False))


def is_constant(ct: Ciphertext) -> bool:
    """A single value in every slot: the message is a constant polynomial."""
    return (not is_coeff(ct) and ct.shape == (1, 1) and ct.meta["rep"] and ct.meta["stride"] == 1
            and not ct.meta["dirty"])


def coeff_meta(level: int, stride: int, rev: bool, dirty: bool) -> dict:
    return {**layout.meta(level, stride, dirty=dirty), "coeff": True, "rev": bool(rev)}


def coeff_polys(values: np.ndarray, stride: int, rev: bool, scale: float, n: int) -> list[np.ndarray]:
    """Rounded integer coefficient vectors (one per ciphertext) of a coefficient-packed batch."""
    rows, size = values.shape
    rpc = n // stride
    nct = -(-rows // rpc)
    coeffs = np.zeros((nct * rpc, stride))
    cols = stride - 1 - np.arange(size) if rev else np.arange(size)
    coeffs[:rows, cols] = values * scale
    return [np.rint(c).astype(np.int64) for c in coeffs.reshape(nct, n)]


def nonzero_coeffs(ct: Ciphertext, n: int) -> int:
    """How many message coefficients of one ciphertext may be non-zero (for the noise estimate).

    A clean table holds only its rows' values; a constant is a constant polynomial;
    anything else (garbage, slot packings) may fill all N coefficients.
    """
    if is_constant(ct):
        return 1
    if not is_coeff(ct) or ct.meta["dirty"]:
        return n
    return min(ct.rows, n // ct.meta["stride"]) * ct.size


def coeff_positions(ct: Ciphertext, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(ciphertext index, coefficient index) of every element, row-major."""
    stride = ct.meta["stride"]
    rpc = n // stride
    r = np.arange(ct.rows)[:, None]
    j = np.arange(ct.size)[None, :]
    col = stride - 1 - j if ct.meta["rev"] else j
    return np.broadcast_to(r // rpc, ct.shape), (r % rpc) * stride + col
