"""Plaintext matrix-vector products on CKKS batches (the diagonal method).

``matvec`` uses the diagonal method on the block-diagonal matrix diag(M, M, ...) that
acts on every row block at once, with baby-step / giant-step rotations: with the
shifted diagonal index k' = k + (T - 1) = g*j + i, y = sum_j rot_gj( sum_i
rot_-gj(d_k) * rot_i(x') ), x' = rot_-(T-1)(x); a matrix without negative diagonals
(one output row) takes k' = k and x' = x. All products are accumulated before
one rescale. The baby-step rotations of x' share one decomposition (hoisting, see
``Rotator.rotate_many``) and have their own Galois keys when the vector size was
declared in the key requirements (``KeySet.matvec_rotations``).

The block-diagonal matrix has blocks for the batch's rows only (the last ciphertext of a
batch gets its own, shorter, diagonals): every slot outside the rows and sizes of the
result decrypts to zero whatever the input held there, so a dirty input needs no
cleaning level and an untrusted one (a client's query, whose metadata is its own) cannot
make the product answer more rows than it declares. The encoded diagonals of recent
matrices are kept, in one cache for the process bounded in bytes (a server applies the
same weights to every query, and the encodings do not depend on any key).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

from ...errors import EncodingError
from . import layout, noise
from .arith import Evaluator
from .context import CkksContext
from .keyset import bsgs_giant
from .noise_records import NoiseRecords
from .rotation import Rotator
from .row_moves import RowMover
from .targets import LayoutTargets


#: Bytes of encoded diagonals kept for the process (every scheme instance and client key share them).
DIAGONAL_CACHE_BYTES = 256 << 20
_diagonal_cache: OrderedDict = OrderedDict()
_diagonal_lock = threading.Lock()


class DiagonalMatVec:
    """``matvec`` by the baby-step / giant-step diagonal method, with the encoded diagonals cached.

    Args:
        ctx: the parameter set's objects; records: noise records; evaluator: the plaintext
        products and sums; rotator: the (hoisted) rotations; mover: restrides the input;
        targets: the error for a coefficient-packed input.
    """

    def __init__(self, ctx: CkksContext, records: NoiseRecords, evaluator: Evaluator, rotator: Rotator,
                 mover: RowMover, targets: LayoutTargets) -> None:
        self.params, self.params_id, self.ring = ctx.params, ctx.params_id, ctx.ring
        self.records, self.evaluator, self.targets = records, evaluator, targets
        self.rotator, self.mover = rotator, mover

    def matvec(self, a, matrix, key):
        """``a @ matrix.T`` row by row (one level).

        Raises:
            EncodingError: the matrix needs more slots per row than the ring has.
            RefreshRequired: ``a`` is coefficient-packed.
        """
        if a.meta.get("coeff"):
            raise self.targets.need_slots("matvec", a)
        out_size, size = matrix.shape
        slots = self.params.slots
        stride = max(a.meta["stride"], layout.next_pow2(out_size), layout.next_pow2(size))
        if stride > slots:
            raise EncodingError(f"cannot matvec: a {matrix.shape} matrix needs {stride} slots per row")
        if stride != a.meta["stride"]:
            a = self.mover.gather(a, [(i, i, 1.0) for i in range(a.rows)], a.rows, stride)
        # Blocks for the batch's rows only (the last ciphertext's own count), so nothing outside them
        # reaches the result: no cleaning level, and no answer for a row the batch does not declare.
        rpc, nct = slots // stride, a.data.shape[0]
        last = a.rows - (nct - 1) * rpc
        n_diag = 2 * stride - 1
        g = bsgs_giant(n_diag)
        factor, pt_scale, stats, start = self.diagonal_plan(a, matrix, stride, rpc if nct > 1 else last, g)
        if nct > 1 and last < rpc:
            short = self.diagonal_plan(a, matrix, stride, last, g)[0]
            factor = {kp: [factor[kp][0]] * (nct - 1) + [short[kp][0]] for kp in factor}
        x0 = self.rotator.rotate(a, start)
        babies = self.rotator.rotate_many(x0, sorted({kp % g for kp in factor}))  # hoisted: x0 is decomposed once
        acc = None
        for j in range(-(-n_diag // g)):
            terms = [(i, g * j + i) for i in range(g) if g * j + i in factor]
            if not terms:
                continue
            inner = self.rotator.rotate(self.inner_sum(babies, terms, factor, pt_scale, stats), g * j)
            acc = inner if acc is None else self.evaluator.add(acc, inner, rule="independent")
        if acc is None:  # the zero matrix
            acc = self.evaluator.mul_slots(a, np.zeros((1, slots)), False, True)
        out = self.evaluator.rescale(acc)
        # Output slot t is sum_j M[t, j] x_j: at most V times the largest absolute row sum of M.
        vmax = a.meta["vmax"] * float(np.max(np.sum(np.abs(matrix), axis=1), initial=0.0))
        out = self.records.noisy(out, self.records.nv(out)[0], vmax)
        return out.replace(shape=(a.rows, out_size), meta={**out.meta, "stride": stride, "dirty": False, "rep": False})

    def inner_sum(self, babies: dict, terms: list, factor: dict, pt_scale: float, stats: dict):
        """sum over (i, kp) of babies[i] times diagonal kp, not rescaled: one sum of products per
        component (reduced once), and the terms' noise (as ``Evaluator.mul_pts`` gives it) summed once."""
        first = babies[terms[0][0]]
        data = np.empty_like(first.data)
        for c in range(first.data.shape[0]):
            pts = [factor[kp][c if len(factor[kp]) > 1 else 0] for _, kp in terms]
            for p in range(2):
                self.ring.dot([babies[i].data[c, p] for i, _ in terms], pts, data[c, p])
        variances, vmax = [], 0.0
        for i, kp in terms:
            var, vm = self.evaluator.plain_product_noise(babies[i], pt_scale, *stats[kp])
            variances.append(var)
            vmax += vm
        # Different diagonals read different (rotated) slots: independent errors.
        meta = self.records.meta({**first.meta, "dirty": False}, layout.level(first),
                                 noise.sum_var(variances, True), vmax)
        return first.replace(data=data, scale=first.scale * pt_scale, meta=meta)

    def diagonal_plan(self, a, matrix, stride, blocks, g) -> tuple[dict, float, dict, int]:
        """The encoded diagonals of ``blocks`` copies of ``matrix`` for ``a`` (kept for the next call).

        Returns:
            ``kp -> [plaintext]`` (rolled by its giant step), the plaintexts' scale, ``kp ->
            plain_stats`` and the start rotation of the input. Diagonal k (``y_t += M[t, t+k]
            x_{t+k}``) has index kp = k + stride - 1 after a start rotation by -(stride - 1);
            when no diagonal is negative (one output row, say), kp = k and the input needs no
            start rotation: a key switch fewer, and fewer giant steps (each is a giant key's).
        """
        digest = hashlib.blake2b(np.ascontiguousarray(matrix).tobytes(), digest_size=16).digest()
        key = (self.params_id, digest, matrix.shape, stride, blocks, g, layout.level(a), a.scale)
        with _diagonal_lock:
            if key in _diagonal_cache:
                _diagonal_cache.move_to_end(key)
                return _diagonal_cache[key][0]
        diags = self.block_diagonals(matrix, stride, blocks)
        start = -(stride - 1)
        if diags and min(diags) >= stride - 1:
            diags, start = {kp - (stride - 1): d for kp, d in diags.items()}, 0
        order = sorted(diags)
        stats = {kp: noise.plain_stats(diags[kp][None, :]) for kp in order}
        if not order:
            entry = ({}, 1.0, {}, 0)  # the zero matrix
        else:
            # rot_{-gj} of each diagonal (slot t takes d[t - gj]), all encoded in one batch.
            rolled = np.array([np.roll(diags[kp], g * (kp // g)) for kp in order]).reshape(len(order),
                                                                                           self.params.slots)
            pts, pt_scale = self.evaluator.plain_factors(a, rolled)
            entry = ({kp: [pt] for kp, pt in zip(order, pts)}, pt_scale, stats, start)
        size = sum(pts[0].nbytes for pts in entry[0].values())
        with _diagonal_lock:
            _diagonal_cache[key] = (entry, size)
            total = sum(s for _, s in _diagonal_cache.values())
            while total > DIAGONAL_CACHE_BYTES and len(_diagonal_cache) > 1:
                total -= _diagonal_cache.popitem(last=False)[1][1]
        return entry

    def block_diagonals(self, matrix: np.ndarray, stride: int, blocks: int | None = None) -> dict[int, np.ndarray]:
        """Non-zero shifted diagonals k' = k + stride - 1 of diag(M, ..., M, 0, ...): ``blocks`` copies of M."""
        slots = self.params.slots
        blocks = slots // stride if blocks is None else blocks
        mp = np.zeros((stride, stride))
        mp[: matrix.shape[0], : matrix.shape[1]] = matrix
        r = np.arange(stride)
        out = {}
        for k in range(-(stride - 1), stride):
            c = r + k
            ok = (c >= 0) & (c < stride)
            d = np.zeros(stride)
            d[ok] = mp[r[ok], c[ok]]
            if np.any(d):
                full = np.zeros(slots)
                full[: blocks * stride] = np.tile(d, blocks)
                out[k + stride - 1] = full
        return out
