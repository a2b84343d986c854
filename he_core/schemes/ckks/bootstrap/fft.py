"""The slot DFT of the subring as butterfly stages in diagonal form, grouped into levels.

U0 = F R with R the bit reversal and F = S_m .. S_1 the stages of the CKKS "special FFT"
(Han-Hhan-Cheon 2019; the factorisation of Chen-Chillotti-Song 2019 applied to
bootstrapping). Stage s (half-length h = 2^(s-1)) maps the pair (u, v) at positions
(a, a + h) of every block of 2h to (u + w v, u - w v), w = exp(2 pi i (5^r mod 8h) / (8h))
for the r-th pair of the block: three cyclic diagonals (offsets 0, +h, -h).

Every map here is a dict ``offset -> diagonal`` of a linear map on P-periodic vectors,
y_j = sum_k d_k[j] x_{j+k}, kept at its period (n or 2n), never as a dense matrix: at
n = 2^15 a dense factor would take 16 GB. Composition multiplies diagonals
(A B: alpha_a rot_a(beta_b) at offset a + b), so a level of s stages has at most
2^(s+1) - 1 diagonals.
"""
from __future__ import annotations

import numpy as np

Diagonals = dict  # offset (signed, in (-P/2, P/2]) -> complex vector of length P


def signed(k: int, period: int) -> int:
    k %= period
    return k if 2 * k <= period else k - period


def stage(n: int, half: int, inverse: bool) -> Diagonals:
    """One butterfly stage (or its inverse) on n-periodic vectors."""
    j = np.arange(n)
    r = j % (2 * half)
    low = r < half
    quad = 8 * half
    w = np.exp(2j * np.pi * np.array([pow(5, int(i), quad) for i in np.where(low, r, r - half)]) / quad)
    if inverse:  # per pair: (u, v) = ((a + b) / 2, (a - b) / (2 w))
        parts = {0: np.where(low, 0.5, -0.5 / w), half: np.where(low, 0.5, 0), -half: np.where(low, 0, 0.5 / w)}
    else:
        parts = {0: np.where(low, 1, -w), half: np.where(low, w, 0), -half: np.where(low, 0, 1)}
    out: Diagonals = {}
    for k, d in parts.items():
        key = signed(k, n)
        out[key] = out.get(key, 0) + d.astype(np.complex128)
    return out


def compose(a: Diagonals, b: Diagonals, period: int) -> Diagonals:
    """The map a after b (both on ``period``-periodic vectors)."""
    out: Diagonals = {}
    for ka, da in a.items():
        for kb, db in b.items():
            key = signed(ka + kb, period)
            out[key] = out.get(key, 0) + da * np.roll(db, -ka)
    return {k: d for k, d in out.items() if np.any(np.abs(d) > 1e-300)}


def lift(a: Diagonals, period: int) -> Diagonals:
    """The same map written on a multiple of its period (diagonals tiled, offsets kept)."""
    return {k: np.tile(d, period // len(d)) for k, d in a.items()}


def scaled(a: Diagonals, factor: complex) -> Diagonals:
    return {k: d * factor for k, d in a.items()}


def levels_of(n: int, levels: int, inverse: bool) -> list[Diagonals]:
    """F (or F^-1) as ``levels`` products of consecutive stages, in the order they apply.

    F^-1 leaves CoeffToSlot's output bit-reversed; EvalMod is slot-wise and SlotToCoeff
    by F expects exactly that order, so no permutation is ever applied.
    """
    halves = [1 << s for s in range(n.bit_length() - 1)]
    stages = [stage(n, h, inverse) for h in (halves[::-1] if inverse else halves)]
    levels = max(1, min(levels, len(stages)))
    out = []
    for part in np.array_split(np.arange(len(stages)), levels):
        m = stages[part[0]]
        for i in part[1:]:
            m = compose(stages[i], m, n)
        out.append(m)
    return out


def to_dense(a: Diagonals, period: int) -> np.ndarray:
    """The period x period matrix of a map (tests and small references only)."""
    m = np.zeros((period, period), dtype=np.complex128)
    j = np.arange(period)
    for k, d in a.items():
        m[j, (j + k) % period] += d
    return m


def bit_reversal(n: int) -> np.ndarray:
    """R as an index array: CoeffToSlot's output slot k holds coefficient ``bit_reversal(n)[k]``."""
    bits = n.bit_length() - 1
    return np.array([int(format(i, f"0{bits}b")[::-1], 2) if bits else 0 for i in range(n)])
