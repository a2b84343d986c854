"""How many modular multiplications an NTT and a ciphertext product take, counted analytically.

The counts follow the textbook RNS-CKKS algorithms (the ones SEAL implements):

* a negacyclic NTT of length ``N`` in one RNS limb: ``N/2 * log2 N`` butterflies, one
  modular multiplication each (the ``1/N`` scaling of the inverse is folded into the
  twiddles and not counted);
* a ciphertext x ciphertext product at ``L`` limbs: the tensor product, 4 multiplications
  per coefficient per limb (``d0 = a0 b0``, ``d1 = a0 b1 + a1 b0``, ``d2 = a1 b1``), then
  relinearisation of ``d2`` by hybrid key switching with ``dnum`` digits and ``K``
  special primes (SEAL: ``dnum = L`` digits of one prime each, ``K = 1``).

Key switching, per the usual decomposition (see Han and Ki, "Better bootstrapping for
approximate homomorphic encryption", and SEAL's ``switch_key_inplace``):

1. inverse NTT of ``d2`` in its ``L`` limbs;
2. per digit (``alpha = L / dnum`` primes), extend to the other ``L + K - alpha``
   primes (fast base conversion: ``alpha`` multiplications per output coefficient and
   prime, plus ``alpha`` for the ``q_hat^-1`` factors) and NTT the ``L + K - alpha`` new limbs;
3. multiply-accumulate with the two key polynomials: ``2 * dnum * (L + K) * N``;
4. mod-down for each of the two results: inverse NTT of the ``K`` special limbs, base
   conversion back to ``L`` limbs, NTT of those, and the multiplication by ``P^-1``.
"""
from __future__ import annotations

import math


def ntt(n: int, limbs: int = 1) -> int:
    """Modular multiplications of one forward (or inverse) NTT over ``limbs`` limbs."""
    return limbs * (n // 2) * int(math.log2(n))


def base_conversion(n: int, src: int, dst: int) -> int:
    """Fast base conversion of ``src`` limbs to ``dst`` new limbs (one limb: only reductions)."""
    return 0 if src == 1 else n * src + n * src * dst


def key_switch(n: int, limbs: int, special: int = 1, dnum: int | None = None) -> int:
    """Hybrid key switching of one polynomial at ``limbs`` limbs."""
    dnum = limbs if dnum is None else dnum
    alpha = math.ceil(limbs / dnum)
    total = ntt(n, limbs)  # 1: to coefficients
    for _ in range(dnum):  # 2: extend every digit
        new = limbs + special - alpha
        total += base_conversion(n, alpha, new)
        total += ntt(n, new)
    total += 2 * dnum * (limbs + special) * n  # 3: inner product with the key
    for _ in range(2):  # 4: mod-down of both results
        total += ntt(n, special) + base_conversion(n, special, limbs) + ntt(n, limbs) + n * limbs
    return total


def tensor(n: int, limbs: int) -> int:
    """Element-wise products of the tensor step of a size-2 by size-2 product."""
    return 4 * n * limbs


def ct_ct_multiply(n: int, limbs: int, special: int = 1, dnum: int | None = None) -> int:
    """Tensor product plus relinearisation."""
    return tensor(n, limbs) + key_switch(n, limbs, special, dnum)
