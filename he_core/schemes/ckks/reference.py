"""Slow, obviously-correct NumPy / Python-int references for every native CKKS kernel.

These define correct behaviour: the tests run the C kernels and these functions on
the same random inputs and require equal results (exactly, for integer kernels).
"""
from __future__ import annotations

import numpy as np


def _obj(a) -> np.ndarray:
    return np.array([int(x) for x in np.asarray(a).reshape(-1)], dtype=object).reshape(np.shape(a))


def bitrev(k: int, bits: int) -> int:
    return int(format(k, f"0{bits}b")[::-1], 2) if bits else 0


def ntt(a, q: int, psi: int) -> np.ndarray:
    """Negacyclic NTT in the native output order: out[k] = a(psi^(2*bitrev(k)+1)) mod q."""
    n = len(a)
    bits = n.bit_length() - 1
    coeffs = [int(x) for x in a]
    out = []
    for k in range(n):
        x = pow(psi, 2 * bitrev(k, bits) + 1, q)
        acc, xp = 0, 1
        for c in coeffs:
            acc = (acc + c * xp) % q
            xp = xp * x % q
        out.append(acc)
    return np.array(out, dtype=np.uint64)


def negacyclic_mul(a, b, q: int) -> np.ndarray:
    """Schoolbook product in Z_q[X]/(X^n + 1)."""
    n = len(a)
    a, b = [int(x) for x in a], [int(x) for x in b]
    out = [0] * n
    for i in range(n):
        for j in range(n):
            k = i + j
            if k < n:
                out[k] += a[i] * b[j]
            else:
                out[k - n] -= a[i] * b[j]
    return np.array([x % q for x in out], dtype=np.uint64)


def add(a, b, qs) -> np.ndarray:
    return np.array([[(int(x) + int(y)) % q for x, y in zip(ra, rb)] for ra, rb, q in zip(a, b, qs)], dtype=np.uint64)


def mul(a, b, qs) -> np.ndarray:
    return np.array([[(int(x) * int(y)) % q for x, y in zip(ra, rb)] for ra, rb, q in zip(a, b, qs)], dtype=np.uint64)


def crt(limbs, qs) -> list[int]:
    """Centred integers whose residues are the given limbs."""
    big = 1
    for q in qs:
        big *= q
    out = []
    for column in zip(*[[int(x) for x in row] for row in limbs]):
        v = 0
        for r, q in zip(column, qs):
            hat = big // q
            v += r * hat * pow(hat, -1, q)
        v %= big
        out.append(v - big if v > big // 2 else v)
    return out


def base_conv(x, src, dst) -> np.ndarray:
    """The fast base conversion formula sum_i [x_i * hat_i^-1]_{q_i} * hat_i mod p (Python ints)."""
    prod = 1
    for q in src:
        prod *= q
    out = np.zeros((len(dst), x.shape[1]), dtype=np.uint64)
    for k in range(x.shape[1]):
        ys = [int(x[i, k]) * pow(prod // q, -1, q) % q for i, q in enumerate(src)]
        for t, p in enumerate(dst):
            out[t, k] = sum(y * (prod // q) for y, q in zip(ys, src)) % p
    return out


def rescale(limbs, qs) -> np.ndarray:
    """round(x / q_last) reduced modulo the remaining primes (coefficient form)."""
    values = crt(limbs, qs)
    ql = qs[-1]
    rounded = [(2 * v + ql) // (2 * ql) for v in values]  # round half up
    return np.array([[v % q for v in rounded] for q in qs[:-1]], dtype=np.uint64)


def automorphism(a, g: int, q: int) -> np.ndarray:
    """Coefficients of a(X^g) in Z_q[X]/(X^n + 1)."""
    n = len(a)
    out = [0] * n
    for i, c in enumerate(a):
        k = i * g % (2 * n)
        if k < n:
            out[k] = (out[k] + int(c)) % q
        else:
            out[k - n] = (out[k - n] - int(c)) % q
    return np.array(out, dtype=np.uint64)


def decode(coeffs, scale: float) -> np.ndarray:
    """Slot j = m(zeta^(5^j)) / scale with zeta = exp(i*pi/N): the canonical embedding."""
    n = len(coeffs)
    m = np.asarray(coeffs, dtype=np.float64)
    exps = np.array([pow(5, j, 2 * n) for j in range(n // 2)])
    powers = np.exp(1j * np.pi * np.outer(exps, np.arange(n)) / n)
    return powers @ m / scale
