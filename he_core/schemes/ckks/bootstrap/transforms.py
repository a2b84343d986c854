"""CoeffToSlot and SlotToCoeff: the homomorphic DFTs of bootstrapping, as dense BSGS linear maps.

Sparse packing with n slots (n <= N/4): a polynomial of the subring Z[X^gap], gap =
N / (2n), t(X) = sum_{k < 2n} tau_k X^(k gap), has n-periodic slots
z_j = sum_k tau_k w^(k e_j), w = exp(i pi / (2n)), e_j = 5^j mod 4n. Since
w^(n e_j) = i^(5^j) = i, z = U0 (tau_lo + i tau_hi) with the n x n matrix
U0[j, k] = w^(k e_j) (Cheon-Han-Kim-Kim-Song 2018, section 4). So

* CoeffToSlot (CtS): v = T z puts U0^-1 z in slots [0, n) and -i U0^-1 z in [n, 2n)
  of every block of 2n slots; v + conj(v) then holds tau_0 .. tau_{2n-1} as *real*
  slots (one conjugation, no level);
* SlotToCoeff (StC): z = S tau with S = [U0, i U0] read from 2n-periodic real slots.

Full packing (n = N/2, gap = 1): CtS gives w = U0^-1 z / 2 (complex slots), whose
real and imaginary parts (by conjugation and a free multiplication by the monomial
X^(N/2), i.e. by i in every slot) are the two coefficient halves; StC is U0 on
re + i im.

Both maps act on block-periodic slot vectors: a B x B block M on B-periodic input
is the cyclic diagonal form y_j = sum_k d_k[j] x_{j+k} with d_k[j] = M[j mod B,
(j + k) mod B] (B diagonals, not N/2). They are applied with the baby-step /
giant-step diagonal method (Halevi-Shoup), the baby rotations hoisted (one key-
switching decomposition shared). This is the single-level (dense) version; the
FFT-like multi-level factorisation (Chen-Chillotti-Song 2019) is the next stage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ....ciphertext import Ciphertext
from ....errors import ParameterError


# ---------------------------------------------------------------------- plaintext matrices
def subring_dft(n: int) -> np.ndarray:
    """U0 (n x n): slots of the subring polynomial with coefficients tau_lo + i tau_hi."""
    if n < 1 or n & (n - 1):
        raise ParameterError(f"cannot build the slot DFT: n={n} is not a power of two")
    e = np.array([pow(5, j, 4 * n) for j in range(n)], dtype=np.int64)
    return np.exp(1j * np.pi * np.outer(e, np.arange(n)) / (2 * n))


def cts_block(n: int, factor: float) -> np.ndarray:
    """The 2n x 2n CtS block T (sparse packing): (v + conj v) = factor * 2 * tau on 2n-periodic slots."""
    inv = np.linalg.inv(subring_dft(n)) * factor
    block = np.zeros((2 * n, 2 * n), dtype=np.complex128)
    block[:n, :n] = inv
    block[n:, :n] = -1j * inv
    return block


def stc_block(n: int, factor: float) -> np.ndarray:
    """The 2n x 2n StC block S = factor [U0, i U0], output n-periodic (repeated in both halves)."""
    u = subring_dft(n) * factor
    return np.block([[u, 1j * u], [u, 1j * u]])


def block_diagonals(block: np.ndarray, slots: int) -> dict[int, np.ndarray]:
    """Cyclic diagonals k -> d_k (length ``slots``) of diag(M, M, ...) on block-periodic input.

    Raises:
        ParameterError: the block size does not divide the slot count.
    """
    b = block.shape[0]
    if block.shape != (b, b) or slots % b:
        raise ParameterError(f"cannot use a {block.shape} block on {slots} slots")
    j = np.arange(slots)
    out = {}
    for k in range(b):
        d = block[j % b, (j + k) % b]
        if np.any(np.abs(d) > 0):
            out[k] = d
    return out


def apply_reference(block: np.ndarray, slotvec: np.ndarray) -> np.ndarray:
    """The map on plaintext slots: each block of the (block-periodic) vector times M."""
    b = block.shape[0]
    return (slotvec.reshape(-1, b) @ block.T).reshape(-1)


def giant_step(n_diag: int) -> int:
    """Giant step g of the BSGS split (about sqrt(2 n_diag): babies cost less, being hoisted)."""
    return max(1, 1 << round(math.log2(math.sqrt(2 * n_diag))))


def bsgs_rotations(n_diag: int, slots: int) -> list[int]:
    """The rotations a BSGS transform with ``n_diag`` consecutive diagonals uses (babies, then giants)."""
    g = giant_step(n_diag)
    babies = list(range(1, min(g, n_diag)))
    giants = [g * j % slots for j in range(1, -(-n_diag // g))]
    return sorted({r for r in babies + giants if r})


# ---------------------------------------------------------------------- homomorphic application
@dataclass
class LinearTransform:
    """A block-periodic plaintext map applied by BSGS; encoded diagonals are kept per (level, scale).

    Args:
        block: the B x B complex block (B divides the slot count).
        slots: N/2.
    """

    block: np.ndarray
    slots: int
    diags: dict = field(init=False)
    g: int = field(init=False)
    _encoded: dict = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.diags = block_diagonals(self.block, self.slots)
        self.g = giant_step(self.block.shape[0])

    def rotations(self) -> list[int]:
        return bsgs_rotations(self.block.shape[0], self.slots)

    def _factors(self, scheme, ct: Ciphertext):
        key = (scheme.level(ct), ct.scale)
        if key not in self._encoded:
            order = sorted(self.diags)
            # rot_{-g j}(d_k): the giant rotation after the inner sum puts each diagonal back in place.
            rolled = np.array([np.roll(self.diags[k], self.g * (k // self.g)) for k in order])
            pts, pt_scale = scheme._plain_factors(ct, rolled)
            stats = {k: _plain_stats(rolled[i]) for i, k in enumerate(order)}
            self._encoded = {key: ({k: pt for k, pt in zip(order, pts)}, pt_scale, stats)}
        return self._encoded[key]

    def apply(self, scheme, ct: Ciphertext) -> Ciphertext:
        """M applied to ct's block-periodic slots: one level (rescaled once, at the end)."""
        pts, pt_scale, stats = self._factors(scheme, ct)
        g = self.g
        babies = scheme._rotate_many(ct, sorted({k % g for k in pts}))  # hoisted
        acc = None
        for j in sorted({k // g for k in pts}):
            inner = None
            for k in (k for k in sorted(pts) if k // g == j):
                term = scheme._mul_pts(babies[k % g], [pts[k]], pt_scale, True, *stats[k])
                inner = term if inner is None else scheme._add_raw(inner, term, rule="independent")
            inner = scheme._rotate_ct(inner, g * j) if j else inner
            acc = inner if acc is None else scheme._add_raw(acc, inner, rule="independent")
        return scheme._rescale_ct(acc)


def _plain_stats(vec: np.ndarray) -> tuple[float, float]:
    w2 = np.abs(vec) ** 2
    return float(np.sqrt(np.max(w2))), float(np.mean(w2))
