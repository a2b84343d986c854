"""CoeffToSlot and SlotToCoeff: the homomorphic DFTs of bootstrapping, as BSGS linear maps.

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
(j + k) mod B] (B diagonals, not N/2). The pipeline applies them as the FFT's
butterfly stages grouped into levels (:mod:`.fft`), each level with the baby-step /
giant-step diagonal method (Halevi-Shoup), the baby rotations hoisted (one key-
switching decomposition shared). The dense blocks here are the plaintext
definitions the tests compare with.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ....ciphertext import Ciphertext
from ....errors import ParameterError
from .. import layout
from .pipeline_roles import PipelineRoles


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

    Offsets are signed, in (-B/2, B/2]: on B-periodic vectors a rotation by k - B is one
    by k, and the butterflies of the FFT factors sit at small offsets of either sign.

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
            out[k if 2 * k <= b else k - b] = d
    return out


def apply_reference(block: np.ndarray, slotvec: np.ndarray) -> np.ndarray:
    """The map on plaintext slots: each block of the (block-periodic) vector times M."""
    b = block.shape[0]
    return (slotvec.reshape(-1, b) @ block.T).reshape(-1)


def giant_step(offsets) -> int:
    """The power-of-two giant step g that needs the fewest rotations for these diagonal offsets.

    Offset k = g j + i (0 <= i < g): babies i (hoisted, about 2/3 of a key switch each)
    and giants g j.
    """
    best = None
    for g in (1 << e for e in range(0, 17)):
        babies = {k % g for k in offsets} - {0}
        giants = {k // g for k in offsets} - {0}
        cost = 2 * len(babies) + 3 * len(giants)
        if best is None or cost < best[0]:
            best = (cost, g)
        if g > 2 * max(abs(k) for k in offsets):
            break
    return best[1]


def bsgs_rotations(offsets, slots: int) -> list[int]:
    """The rotations a BSGS transform with these diagonal offsets uses (babies and giants, mod slots)."""
    g = giant_step(offsets)
    steps = {k % g for k in offsets} | {g * (k // g) for k in offsets}
    return sorted({r % slots for r in steps if r % slots})


# ---------------------------------------------------------------------- homomorphic application
@dataclass
class LinearTransform:
    """A periodic plaintext map applied by BSGS; encoded diagonals are kept per (level, scale).

    Args:
        diags: offset -> diagonal of a map on P-periodic vectors (P divides the slot count;
            see :mod:`.fft`), tiled here to every slot.
        slots: N/2.
    """

    diags: dict
    slots: int
    g: int = field(init=False)
    _encoded: dict = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for k, d in self.diags.items():
            if self.slots % len(d):
                raise ParameterError(f"cannot use a diagonal of period {len(d)} on {self.slots} slots")
        self.diags = {k: np.tile(d, self.slots // len(d)) for k, d in self.diags.items() if np.any(d)}
        self.g = giant_step(list(self.diags))

    @classmethod
    def from_block(cls, block: np.ndarray, slots: int) -> "LinearTransform":
        """diag(M, M, ...) on block-periodic slots."""
        return cls(block_diagonals(block, block.shape[0]), slots)

    def rotations(self) -> list[int]:
        return bsgs_rotations(list(self.diags), self.slots)

    def _factors(self, roles: PipelineRoles, ct: Ciphertext):
        key = (layout.level(ct), ct.scale)
        if key not in self._encoded:
            order = sorted(self.diags)
            # rot_{-g j}(d_k): the giant rotation after the inner sum puts each diagonal back in place.
            rolled = np.array([np.roll(self.diags[k], self.g * (k // self.g)) for k in order])
            pts, pt_scale = roles.evaluator.plain_factors(ct, rolled)
            stats = {k: _plain_stats(rolled[i]) for i, k in enumerate(order)}
            self._encoded = {key: ({k: pt for k, pt in zip(order, pts)}, pt_scale, stats)}
        return self._encoded[key]

    def apply(self, roles: PipelineRoles, ct: Ciphertext) -> Ciphertext:
        """M applied to ct's block-periodic slots: one level (rescaled once, at the end)."""
        pts, pt_scale, stats = self._factors(roles, ct)
        g = self.g
        babies = roles.rotator.rotate_many(ct, sorted({k % g for k in pts}))  # hoisted
        acc = None
        for j in sorted({k // g for k in pts}):
            inner = None
            for k in (k for k in sorted(pts) if k // g == j):
                term = roles.evaluator.mul_pts(babies[k % g], [pts[k]], pt_scale, True, *stats[k])
                inner = term if inner is None else roles.evaluator.add(inner, term, rule="independent")
            inner = roles.rotator.rotate(inner, g * j) if j else inner  # negative j: a rotation to the right
            acc = inner if acc is None else roles.evaluator.add(acc, inner, rule="independent")
        return roles.evaluator.rescale(acc)


def _plain_stats(vec: np.ndarray) -> tuple[float, float]:
    w2 = np.abs(vec) ** 2
    return float(np.sqrt(np.max(w2))), float(np.mean(w2))
