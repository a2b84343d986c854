"""The baby-step / giant-step matrix-vector product, side by side: henn's (hoisted) against SEAL's
same rotations done one by one.

A (T, T) matrix M acts on every block of T slots of a full ciphertext at once (the
block-diagonal matrix diag(M, M, ...)), so the product decrypts to ``x.reshape(-1, T) @ M.T``.
Both libraries compute the same plan (:func:`bsgs_plan`): with the diagonals shifted by
T - 1, y = sum_j rot_{g j}( sum_i rot_{-g j}(d_{g j + i}) * rot_i(x') ), x' = rot_{-(T - 1)}(x),
g about sqrt(2T - 1), then one rescale. Each rotation has its own Galois key on both sides
(no power-of-two compositions). henn decomposes x' once for all its baby steps (hoisting);
SEAL's ``rotate_vector`` key-switches each from scratch, which is what its API offers. The
diagonals are encoded before timing on both sides (henn keeps them in its cache).
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class BsgsPlan:
    """The rotations and plaintext vectors of one block-diagonal product.

    Attributes:
        start: the first rotation, -(T - 1).
        giant: g.
        babies: baby-step rotations (0 included).
        terms: for each giant step j (in order), its rotation g j and the (baby i, vector) pairs.
    """

    start: int
    giant: int
    babies: tuple[int, ...]
    terms: tuple[tuple[int, tuple[tuple[int, np.ndarray], ...]], ...]

    @property
    def steps(self) -> list[int]:
        """Every rotation step the plan takes (each needs a Galois key)."""
        return sorted({self.start, *(b for b in self.babies if b), *(r for r, _ in self.terms if r)})


def bsgs_plan(matrix: np.ndarray, slots: int) -> BsgsPlan:
    """The plan for a square ``matrix`` of power-of-two size T <= slots on full ciphertexts."""
    size = matrix.shape[0]
    if matrix.shape != (size, size) or size & (size - 1) or not 2 <= size <= slots:
        raise ValueError(f"cannot plan a product with a {matrix.shape} matrix on {slots} slots")
    n_diag = 2 * size - 1
    giant = int(np.floor(np.sqrt(n_diag - 1))) + 1
    t = np.arange(slots)
    block_start = (t // size) * size
    terms = []
    for j in range(-(-n_diag // giant)):
        pairs = []
        for i in range(giant):
            kp = giant * j + i
            if kp >= n_diag:
                break
            k = kp - (size - 1)  # slot t reads x[t + k], inside its own block only
            col = t + k
            inside = (col >= block_start) & (col < block_start + size)
            diag = np.where(inside, matrix[t % size, np.clip(col - block_start, 0, size - 1)], 0.0)
            if np.any(diag):
                pairs.append((i, np.roll(diag, giant * j)))  # rot_{-g j}(d): np.roll right by g j
        if pairs:
            terms.append((giant * j, tuple(pairs)))
    babies = tuple(sorted({i for _, pairs in terms for i, _ in pairs}))
    return BsgsPlan(-(size - 1), giant, babies, tuple(terms))


def expected(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """What the product decrypts to: every block of T slots times M."""
    size = matrix.shape[0]
    return (x.reshape(-1, size) @ matrix.T).reshape(-1)


class SealMatVec:
    """The plan on SEAL (``tenseal.sealapi``), rotations one by one.

    Args:
        seal: a set-up ``SealAdapter`` (its context, key generator, encoder and evaluator).
        plan: the product's plan; its Galois keys are made here, not timed.
    """

    def __init__(self, seal, plan: BsgsPlan) -> None:
        self.seal, self.plan, s = seal, plan, seal._s
        self.gk = s.GaloisKeys()
        seal.keygen.create_galois_keys([galois_element(step, seal.setting.n) for step in plan.steps], self.gk)
        self._encoded: dict = {}

    def _plaintexts(self, parms_id) -> list:
        key = tuple(parms_id)
        if key not in self._encoded:
            s, enc = self.seal._s, self.seal.encoder
            out = []
            for _, pairs in self.plan.terms:
                row = []
                for i, vec in pairs:
                    pt = s.Plaintext()
                    enc.encode(vec.tolist(), parms_id, self.seal.setting.scale, pt)
                    row.append((i, pt))
                out.append(row)
            self._encoded[key] = out
        return self._encoded[key]

    def encrypt(self, values: np.ndarray):
        return self.seal.encrypt(values)

    def decrypt(self, ct) -> np.ndarray:
        return self.seal.decrypt(ct)

    def __call__(self, ct):
        s, ev, plan = self.seal._s, self.seal.evaluator, self.plan
        pts = self._plaintexts(ct.parms_id())
        x0 = s.Ciphertext(self.seal.ctx)
        ev.rotate_vector(ct, plan.start, self.gk, x0)
        babies = {0: x0}
        for i in plan.babies:
            if i:
                babies[i] = s.Ciphertext(self.seal.ctx)
                ev.rotate_vector(x0, i, self.gk, babies[i])
        acc = None
        for (rot, _), row in zip(plan.terms, pts):
            inner = None
            for i, pt in row:
                term = s.Ciphertext(self.seal.ctx)
                ev.multiply_plain(babies[i], pt, term)
                if inner is None:
                    inner = term
                else:
                    ev.add_inplace(inner, term)
            if rot:
                ev.rotate_vector_inplace(inner, rot, self.gk)
            if acc is None:
                acc = inner
            else:
                ev.add_inplace(acc, inner)
        ev.rescale_to_next_inplace(acc)
        return acc


class HennMatVec:
    """henn's ``matvec`` on a ciphertext of slots / T rows of T (its rows are the blocks).

    Args:
        henn: a set-up ``HennCkksAdapter`` whose keys include the matvec's rotations.
        matrix: the (T, T) matrix.
    """

    def __init__(self, henn, matrix: np.ndarray) -> None:
        self.henn, self.matrix = henn, matrix

    def encrypt(self, values: np.ndarray):
        size = self.matrix.shape[0]
        return self.henn.scheme.encrypt(values.reshape(-1, size))

    def decrypt(self, ct) -> np.ndarray:
        return self.henn.scheme.decrypt_exact_local(ct, self.henn.keys.secret).reshape(-1)

    def __call__(self, ct):
        return self.henn.scheme.matvec(ct, self.matrix)


def galois_element(step: int, n: int) -> int:
    """The Galois element of a left rotation by ``step`` slots: 3^step mod 2N (a negative step
    as slots + step)."""
    slots = n // 2
    return pow(3, step % slots, 2 * n)
