"""Key material of the vhe scheme: secrets T and the key-switch matrices built from them.

A key-switch matrix moves a ciphertext ``c`` under a source key ``S_src`` (any integer
``o x n`` matrix) to ``S' = [I_o | T']``. With ``c*`` the signed base-2^b digits of
``c`` and ``S*`` the matrix ``S_src`` with each column ``j`` expanded into the columns
``S_src[:, j] * 2^(b d)``, so that ``S* c* = S_src c``:

    M = [[S* - T' A + E], [A]]        and        S' (M c*) = S_src c + E c*.

A is uniform in [-a_bound, a_bound] and E in [-e_bound, e_bound]. Matrices are stored
transposed (``n * ell`` rows), the layout the native kernel streams through.
"""
from __future__ import annotations

import numpy as np

from ...errors import HEOverflowError
from ...randomness import RandomSource
from .params import INT64_MAX, VheParams


def new_secret(params: VheParams, m: int, rng: RandomSource) -> np.ndarray:
    """The secret block T (m x k) for vectors of length m."""
    return rng.integers(-params.t_bound, params.t_bound, (m, params.k))


def full_key(t: np.ndarray) -> np.ndarray:
    """S = [I | T] as an int64 matrix."""
    m = t.shape[0]
    return np.hstack([np.eye(m, dtype=np.int64), t])


def _noise_blocks(params: VheParams, o: int, cols: int, t_dst: np.ndarray, rng: RandomSource):
    a = rng.integers(-params.a_bound, params.a_bound, (params.k, cols))
    e = rng.integers(-params.e_bound, params.e_bound, (o, cols))
    return a, e - t_dst @ a


def _expanded(src: np.ndarray, params: VheParams) -> np.ndarray:
    """S*: column j of src times 2^(b d) for d < ell, as columns j*ell + d."""
    powers = np.array([1 << (params.digit_bits * d) for d in range(params.ell)], dtype=src.dtype)
    return (src[:, :, None] * powers[None, None, :]).reshape(src.shape[0], -1)


def switch_matrix(src: np.ndarray, t_dst: np.ndarray, params: VheParams, rng: RandomSource) -> np.ndarray:
    """Transposed int64 key-switch matrix from ``src`` (o x n, small entries) to [I | t_dst].

    Raises:
        HEOverflowError: an entry would not fit in int64 (src entries too large).
    """
    o, n = src.shape
    top_weight = 1 << (params.digit_bits * (params.ell - 1))
    if int(np.abs(src).max(initial=0)) * top_weight + params.k * params.t_bound * params.a_bound + params.e_bound \
            > INT64_MAX:
        raise HEOverflowError("cannot make a key-switch matrix: source key entries too large for int64")
    a, noise = _noise_blocks(params, o, n * params.ell, t_dst, rng)
    top = _expanded(src.astype(np.int64), params) + noise
    return np.ascontiguousarray(np.vstack([top, a]).T)


def split_switch_matrix(src: np.ndarray, t_dst: np.ndarray, params: VheParams, rng: RandomSource,
                        shift: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`switch_matrix` for large source entries: returns (hi, lo) with M = hi * 2^shift + lo.

    ``src`` may be an object array of Python ints; lo lies in [0, 2^shift).
    """
    o, n = src.shape
    a, noise = _noise_blocks(params, o, n * params.ell, t_dst, rng)
    top = _expanded(np.asarray(src, dtype=object), params) + noise.astype(object)
    full = np.vstack([top, a.astype(object)]).T
    lo = full & ((1 << shift) - 1)
    hi = (full - lo) >> shift
    if max(np.abs(hi).flat, default=0) > INT64_MAX:
        raise HEOverflowError("cannot make a linear key: matrix entries too large even when split")
    return np.ascontiguousarray(hi.astype(np.int64)), np.ascontiguousarray(lo.astype(np.int64))


def tensor_blocks(t_left: np.ndarray, t_right: np.ndarray) -> np.ndarray:
    """Row i: vec(L_i^T R_i) with L_i = [1 | t_left[i or 0]], R_i = [1 | t_right[i]]; shape (m, (1+k)^2)."""
    m = t_right.shape[0]
    left = np.hstack([np.ones((t_left.shape[0], 1), dtype=np.int64), t_left])
    right = np.hstack([np.ones((m, 1), dtype=np.int64), t_right])
    left = np.broadcast_to(left, right.shape)
    return (left[:, :, None] * right[:, None, :]).reshape(m, -1)


def block_diagonal(blocks: np.ndarray) -> np.ndarray:
    """Key of a compact tensor for element-wise products: row i holds blocks[i] at columns of slot i."""
    m, width = blocks.shape
    out = np.zeros((m, m * width), dtype=np.int64)
    for i in range(m):
        out[i, i * width:(i + 1) * width] = blocks[i]
    return out


def public_material(params: VheParams, secrets: dict[int, np.ndarray], rng: RandomSource) -> dict:
    """Every public key-switch matrix for the sizes in ``secrets`` (which always holds size 1).

    Returns a dict of kind -> {str(size): transposed matrix}:
        pub: identity -> S_m (public-key encryption of w x + r),
        rr:  S_m -> S_m (re-randomisation),
        ew:  element-wise product tensor of two size-m ciphertexts -> S_m,
        sv:  size-1 times size-m tensor -> S_m,
        ip:  inner-product tensor of two size-m ciphertexts -> S_1.
    """
    t1 = secrets[1]
    out: dict[str, dict[str, np.ndarray]] = {kind: {} for kind in ("pub", "rr", "ew", "sv", "ip")}
    for m, t in sorted(secrets.items()):
        key = str(m)
        out["pub"][key] = switch_matrix(np.eye(m, dtype=np.int64), t, params, rng)
        out["rr"][key] = switch_matrix(full_key(t), t, params, rng)
        same = tensor_blocks(t, t)
        out["ew"][key] = switch_matrix(block_diagonal(same), t, params, rng)
        out["sv"][key] = switch_matrix(block_diagonal(tensor_blocks(t1, t)), t, params, rng)
        out["ip"][key] = switch_matrix(same.reshape(1, -1), t1, params, rng)
    return out
