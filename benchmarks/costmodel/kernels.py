"""What one call of each :class:`RnsRing` entry point does, counted from ``csrc/`` (not measured).

For a call on polynomials of ``L`` limbs of ``N`` coefficients, :func:`work` returns
``(ntts, modmuls, vec_limbs, bytes)``:

* ``ntts``: forward or inverse NTTs of one limb of size ``N`` (including those *inside*
  a kernel: a key switch's mod-up and mod-down, a rescale's conversion of the last limb);
* ``modmuls``: modular multiplications, ``N/2 log2 N`` per NTT (one per butterfly, as
  :mod:`benchmarks.limits.counts` counts them) plus the element-wise products
  (a lazy 128-bit product of the key-switch inner product counts as one);
* ``vec_limbs``: element-wise passes over one limb that are not NTTs (add, sub, neg,
  permute, reduce; a product counts here too), i.e. ``N``-long vector operations;
* ``bytes``: operand bytes read and written by the call (8 per coefficient per limb),
  the switching key included, scratch excluded: a lower bound on memory traffic.

The formulas follow ``csrc/ckks_keyswitch.c`` and ``csrc/ckks_arith.c``: hybrid key
switching with digits of ``alpha`` primes, ``np`` special primes; a digit of one prime
needs no base-conversion product (only a reduction), and its own limb no NTT.
"""
from __future__ import annotations

import math


def ntt_modmuls(n: int) -> int:
    return (n // 2) * int(math.log2(n))


def keyswitch_parts(n: int, nq: int, np_: int, alpha: int, hoisted: str = "") -> dict:
    """Counts of one key switch at ``nq`` limbs; ``hoisted``: "modup" or "dot" for the two halves."""
    beta = -(-nq // alpha)
    ntot = nq + np_
    digits = [min(alpha, nq - lo) for lo in range(0, nq, alpha)]
    up_ntts = nq + beta * ntot - nq                      # INTT of d, then NTT of every non-own extended limb
    up_mul = sum(dj * n for dj in digits if dj > 1)      # q_hat^-1 scaling (1 for a one-prime digit)
    up_mul += sum(dj * n * (ntot - dj) for dj in digits if dj > 1)  # base conversion products
    dot_mul = 2 * beta * ntot * n                        # inner product with the key (lazy 128-bit)
    down_ntts = 2 * (np_ + nq)                           # per part: INTT of the special limbs, NTT of nq limbs
    down_mul = 2 * ((np_ * n if np_ > 1 else 0) + (np_ * nq * n if np_ > 1 else 0) + nq * n)
    key_bytes = 2 * beta * ntot * n * 8
    if hoisted == "modup":
        return dict(ntts=up_ntts, modmuls=up_ntts * ntt_modmuls(n) + up_mul,
                    vec_limbs=beta * ntot, bytes=nq * n * 8 + beta * ntot * n * 8)
    if hoisted == "dot":
        return dict(ntts=down_ntts, modmuls=down_ntts * ntt_modmuls(n) + dot_mul + down_mul,
                    vec_limbs=2 * beta * ntot + 2 * ntot + 2 * nq,
                    bytes=beta * ntot * n * 8 + key_bytes + 2 * nq * n * 8)
    ntts = up_ntts + down_ntts
    return dict(ntts=ntts, modmuls=ntts * ntt_modmuls(n) + up_mul + dot_mul + down_mul,
                vec_limbs=beta * ntot + 2 * beta * ntot + 2 * ntot + 2 * nq,
                bytes=nq * n * 8 + key_bytes + 2 * nq * n * 8)


def work(method: str, n: int, limbs: int, *, np_: int = 1, alpha: int = 1, extra: int = 0) -> dict:
    """Counts of one call of ``RnsRing.<method>`` on ``limbs`` limbs (see the module docstring).

    ``extra``: the destination limbs of a base conversion; the special primes dropped by drop_special.
    """
    w = 8 * n
    m = ntt_modmuls(n)
    if method in ("ntt", "intt"):
        return dict(ntts=limbs, modmuls=limbs * m, vec_limbs=0, bytes=2 * limbs * w)
    if method in ("add", "sub"):
        return dict(ntts=0, modmuls=0, vec_limbs=limbs, bytes=3 * limbs * w)
    if method in ("neg", "permute"):
        return dict(ntts=0, modmuls=0, vec_limbs=limbs, bytes=2 * limbs * w)
    if method == "mul":
        return dict(ntts=0, modmuls=limbs * n, vec_limbs=limbs, bytes=3 * limbs * w)
    if method == "muladd":
        return dict(ntts=0, modmuls=limbs * n, vec_limbs=limbs, bytes=4 * limbs * w)
    if method in ("mul_int", "mul_scalar_limb"):
        return dict(ntts=0, modmuls=limbs * n, vec_limbs=limbs, bytes=2 * limbs * w)
    if method == "from_signed":
        return dict(ntts=0, modmuls=0, vec_limbs=limbs, bytes=w + limbs * w)
    if method == "rescale":  # INTT of the last limb, NTT of its conversion to each other limb, one product each
        return dict(ntts=limbs, modmuls=limbs * m + (limbs - 1) * n, vec_limbs=2 * (limbs - 1),
                    bytes=(2 * limbs - 1) * w)
    if method == "drop_special":  # extra rescales, from limbs down to limbs - extra
        out = dict(ntts=0, modmuls=0, vec_limbs=0, bytes=0)
        for j in range(extra):
            for k, v in work("rescale", n, limbs - j).items():
                out[k] += v
        return out
    if method == "base_conv":
        mul = (limbs * n + limbs * extra * n) if limbs > 1 else 0
        return dict(ntts=0, modmuls=mul, vec_limbs=limbs + extra, bytes=(limbs + extra) * w)
    if method == "keyswitch":
        return keyswitch_parts(n, limbs, np_, alpha)
    if method == "modup":
        return keyswitch_parts(n, limbs, np_, alpha, "modup")
    if method == "keyswitch_hoisted":
        return keyswitch_parts(n, limbs, np_, alpha, "dot")
    return dict(ntts=0, modmuls=0, vec_limbs=0, bytes=0)
