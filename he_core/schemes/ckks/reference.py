"""Slow, obviously-correct NumPy / Python-int references for every native CKKS kernel.

These define correct behaviour: the tests run the C kernels and these functions on
the same random inputs and require equal results (exactly, for integer kernels).
The whole hybrid key switch (:func:`key_switch`) is defined at the end, step by step.
"""
from __future__ import annotations

import numpy as np

from .primes import primitive_root_2n


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


def intt(a, q: int, psi: int) -> np.ndarray:
    """Inverse of :func:`ntt`: coefficient i = N^-1 * sum_k a[k] * x_k^-i with x_k = psi^(2*bitrev(k)+1)."""
    n = len(a)
    bits = n.bit_length() - 1
    out = [0] * n
    for k, value in enumerate(int(v) for v in a):
        x_inv = pow(psi, -(2 * bitrev(k, bits) + 1), q)
        term = value
        for i in range(n):
            out[i] = (out[i] + term) % q
            term = term * x_inv % q
    n_inv = pow(n, -1, q)
    return np.array([c * n_inv % q for c in out], dtype=np.uint64)


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


def lincomb(a, factors, qs) -> np.ndarray:
    """``out[j] = sum_r factors[j][r] a[r]`` limb by limb, in Python integers (a: rows of (limbs, N) residues)."""
    rows = [np.asarray(r, dtype=object) for r in a]
    out = [[(sum((int(f) * row[l] for f, row in zip(fs, rows)), 0) % q) for l, q in enumerate(qs)] for fs in factors]
    return np.array([[np.asarray(limb, dtype=object).astype(np.uint64) for limb in o] for o in out], dtype=np.uint64)


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


# ---------------------------------------------------------------------- hybrid key switching
def product(primes) -> int:
    out = 1
    for q in primes:
        out *= q
    return out


def lift(limbs, primes) -> list[int]:
    """One ModUp digit as integers, one per coefficient, from its coefficient-form residues.

    The native ModUp fixes this lift (the rest of the switch then follows from it):

    * a one-prime digit is lifted centred, to (-q/2, q/2) (q is odd: no ties), so the
      digits carry no bias along the all-ones polynomial;
    * a several-prime digit (primes q_i, product Q_j) takes the fast base conversion's
      value sum_i [x_i (Q_j/q_i)^-1]_{q_i} (Q_j/q_i) as it stands: x + u Q_j for some u in
      [0, number of primes), left uncorrected: the key's P g_j s_from times Q_j is 0 modulo
      Q_l P (g_j is 0 modulo the other digits' primes), so u Q_j only adds u Q_j e_j / P
      to the switch's error.
    """
    if len(primes) == 1:
        q = primes[0]
        return [int(x) - q if int(x) > q // 2 else int(x) for x in limbs[0]]
    big = product(primes)
    out = []
    for column in zip(*[[int(x) for x in row] for row in limbs]):
        out.append(sum(x * pow(big // q, -1, q) % q * (big // q) for x, q in zip(column, primes)))
    return out


def digit_bounds(nq: int, alpha: int) -> list[tuple[int, int]]:
    """Limb ranges [lo, hi) of the digits: alpha primes each, the last one may be short."""
    return [(lo, min(lo + alpha, nq)) for lo in range(0, nq, alpha)]


def mod_up(limbs, qs, ps, alpha: int) -> np.ndarray:
    """Every digit of ``limbs`` (coefficient form over qs) lifted by :func:`lift` and reduced modulo
    qs + ps: (digits, len(qs) + len(ps), N), coefficient form."""
    digits = []
    for lo, hi in digit_bounds(len(qs), alpha):
        w = lift(limbs[lo:hi], qs[lo:hi])
        digits.append([[x % t for x in w] for t in tuple(qs) + tuple(ps)])
    return np.array(digits, dtype=np.uint64)


def mod_down(limbs, qs, ps) -> np.ndarray:
    """round(x / P) over qs, from x's coefficient-form residues over qs + ps (P = product of ps).

    Computed as (x - [x]_P) * P^-1 with the residue [x]_P centred in (-P/2, P/2) (P is odd:
    no ties), i.e. rounding to nearest. The native kernel finds the centred residue from
    an overflow count summed in doubles; within ~len(ps) * 2^-52 * P of +-P/2 that count can
    be one off (see test_moddown.py). Random inputs land there with negligible probability,
    so the tests against this reference require exact equality.
    """
    nq, big_p = len(qs), product(ps)
    x_p = crt([limbs[nq + i] for i in range(len(ps))], ps)  # centred, as crt returns
    out = np.empty((nq, len(x_p)), dtype=np.uint64)
    for t, q in enumerate(qs):
        p_inv = pow(big_p, -1, q)
        out[t] = [(int(x) - r) * p_inv % q for x, r in zip(limbs[t], x_p)]
    return out


def key_switch(d, key, qs, ps, alpha: int, galois: int = 1) -> np.ndarray:
    """The hybrid key switch of d, NTT form in and out, as the native one defines it.

    Steps, in coefficient form with Python integers: d's limbs are cut into digits of
    alpha primes and each digit is lifted to qs[:nq] + ps (:func:`mod_up`); the automorphism
    X -> X^galois is applied to every lifted digit (1: none; this is the hoisted switch
    with the permutation of that Galois element); both key parts are summed against the
    digits (negacyclic products modulo each prime); the sums are divided by P
    (:func:`mod_down`).

    Args:
        d: (nq, N) NTT form over qs[:nq].
        key: (dnum, 2, len(qs) + len(ps), N) NTT form over qs + ps (the key's limbs of
            q_nq .. q_L are not used at level nq - 1).
        qs: every ciphertext prime of the ring; ps: the special primes.
        alpha: primes per digit.
        galois: an odd Galois element below 2N.

    Returns:
        (2, nq, N) NTT form over qs[:nq].
    """
    nq, n = np.shape(d)
    targets = tuple(qs[:nq]) + tuple(ps)
    rows = list(range(nq)) + [len(qs) + i for i in range(len(ps))]  # key limb of each target
    roots = [primitive_root_2n(t, n) for t in targets]
    coeffs = [intt(d[i], q, roots[i]) for i, q in enumerate(qs[:nq])]
    digits = mod_up(coeffs, qs[:nq], ps, alpha)
    acc = np.zeros((2, len(targets), n), dtype=object)
    for j, digit in enumerate(digits):
        for t, (prime, row, psi) in enumerate(zip(targets, rows, roots)):
            limb = automorphism(digit[t], galois, prime) if galois != 1 else digit[t]
            for part in range(2):
                k = intt(key[j, part, row], prime, psi)
                acc[part, t] = (acc[part, t] + _obj(negacyclic_mul(limb, k, prime))) % prime
    out = np.empty((2, nq, n), dtype=np.uint64)
    for part in range(2):
        down = mod_down(acc[part], qs[:nq], ps)
        out[part] = [ntt(down[t], q, roots[t]) for t, q in enumerate(qs[:nq])]
    return out
