"""NumPy reference kernels of the vhe scheme: the executable definition of every native kernel.

Each function computes exactly with Python integers (object arrays), checks the same
limits as the C kernels and raises :class:`~he_core.errors.HEOverflowError` where the
C kernel returns ``HE_ERR_OVERFLOW``. They are slow on purpose: obviously correct.
Signatures match :mod:`he_core.schemes.vhe.native`.
"""
from __future__ import annotations

import numpy as np

from ...errors import HEOverflowError

Stats = tuple[int, int]


def _obj(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.int64).astype(object)


def round_div(x, div: int):
    """floor((x + div // 2) / div): nearest integer, ties up (works on object arrays)."""
    return (x + div // 2) // div


def _finish(out_obj: np.ndarray, head: int, limit: int, what: str) -> tuple[np.ndarray, Stats]:
    mags = np.abs(out_obj)
    if out_obj.size and max(mags.flat) > limit:
        raise HEOverflowError(f"cannot {what}: a result entry exceeds 2^{limit.bit_length() - 1}")
    out = out_obj.astype(np.int64).reshape(out_obj.shape)
    mh = int(max(mags[..., :head].flat, default=0))
    mt = int(max(mags[..., head:].flat, default=0))
    return out, (mh, mt)


def _rows(x: np.ndarray, rows: int) -> np.ndarray:
    return np.broadcast_to(x, (rows,) + x.shape[1:])


def add(a, b, sign, head, limit):
    rows = max(a.shape[0], b.shape[0])
    return _finish(_rows(_obj(a), rows) + sign * _rows(_obj(b), rows), head, limit, "add")


def scale(a, p, div, head, limit):
    rows = max(a.shape[0], p.shape[0])
    return _finish(round_div(_rows(_obj(a), rows) * _obj(p).reshape(-1, 1), div), head, limit, "scale")


def combine(hi, lo, shift, div, head, limit):
    return _finish(round_div(_obj(hi) * (1 << shift) + _obj(lo), div), head, limit, "recombine")


def lincomb(w, a, div, head, limit):
    return _finish(round_div(_obj(w) @ _obj(a), div), head, limit, "lincomb")


def gather_sum(a, idx, head, limit):
    sel = _obj(a) if idx is None else _obj(a)[np.asarray(idx)]
    total = sel.sum(axis=0, keepdims=True) if sel.shape[0] else np.zeros((1, a.shape[1]), dtype=object)
    return _finish(total, head, limit, "row_sum")


def scatter_add(a, idx, b, head, limit):
    """In place, like the C kernel: updates apply in index order and every partial sum must
    stay within ``limit``; on overflow ``a`` is left unchanged."""
    work = _obj(a)
    bb = _obj(b)
    for j, r in enumerate(np.asarray(idx)):
        work[r] = work[r] + bb[0 if bb.shape[0] == 1 else j]
        if max(np.abs(work[r])) > limit:
            raise HEOverflowError(f"cannot index_add_: a result entry exceeds 2^{limit.bit_length() - 1}")
    touched = np.unique(np.asarray(idx))
    out, (mh, mt) = _finish(work[touched] if touched.size else work[:0], head, limit, "index_add_")
    a[touched] = out
    mult = int(np.bincount(np.asarray(idx)).max()) if len(idx) else 0
    return mh, mt, mult


def tensor(a, ma, b, m, k, div, limit):
    rows = max(a.shape[0], b.shape[0])
    A, B = _rows(_obj(a), rows), _rows(_obj(b), rows)
    slot = np.zeros(m, dtype=np.int64) if ma == 1 else np.arange(m)
    left = np.concatenate([A[:, slot][:, :, None], np.repeat(A[:, None, ma:], m, axis=1)], axis=2)
    right = np.concatenate([B[:, :m][:, :, None], np.repeat(B[:, None, m:], m, axis=1)], axis=2)
    prod = left[:, :, :, None] * right[:, :, None, :]  # (rows, m, 1+k, 1+k)
    out, _ = _finish(round_div(prod.reshape(rows, -1), div), 0, limit, "multiply")
    return out


def decompose(c: np.ndarray, digit_bits: int, ell: int) -> np.ndarray:
    """Signed base-2^b digits of every entry: shape (rows, n * ell), digit d of entry j at j*ell + d."""
    half, mask = 1 << (digit_bits - 1), (1 << digit_bits) - 1
    rest = np.asarray(c, dtype=np.int64).copy()
    digits = np.empty(rest.shape + (ell,), dtype=np.int64)
    for d in range(ell):
        digit = ((rest + half) & mask) - half
        digits[..., d] = digit
        rest = (rest - digit) >> digit_bits
    if np.any(rest != 0):
        raise HEOverflowError(f"cannot key switch: an entry needs more than {ell} base-2^{digit_bits} digits")
    return digits.reshape(rest.shape[0], -1)


def keyswitch(c, mt, digit_bits, ell, head, limit):
    """Returns ``(out, (head max, key-column max, largest digit L1 of a row))``."""
    digits = decompose(c, digit_bits, ell)
    out, (mh, mt_max) = _finish(digits.astype(object) @ mt.astype(object), head, limit, "key switch")
    l1 = int(np.abs(digits).sum(axis=1).max(initial=0))
    return out, (mh, mt_max, l1)


def mul(a, ma, b, m, k, div, mt, digit_bits, ell, head, limit):
    """A ciphertext product: :func:`tensor` then :func:`keyswitch`."""
    return keyswitch(tensor(a, ma, b, m, k, div, limit), mt, digit_bits, ell, head, limit)


def encrypt_secret(x, t, w, noise, data):
    """In place: ``data`` holds uniform draws ``(rows, m + k)``; its key columns stay, and each
    head entry u becomes ``w x + (u mod (2 noise + 1)) - noise - T tail``."""
    m = x.shape[1]
    co = _obj(data)
    head = (co[:, :m] % (2 * noise + 1)) - noise - co[:, m:] @ _obj(t).T + _obj(x) * w
    if head.size and max(np.abs(head).flat) > 2**63 - 1:
        raise HEOverflowError("cannot encrypt: an entry does not fit in int64")
    data[:, :m] = head.astype(np.int64)


def decrypt(c, m, k, t, w):
    co = _obj(c)
    s = co[:, :m] + co[:, m:] @ _obj(t).T
    x = round_div(s, w)
    if x.size and max(np.abs(x).flat) > 2**63 - 1:
        raise HEOverflowError("cannot decrypt: the message does not fit in int64")
    return x.astype(np.int64)
