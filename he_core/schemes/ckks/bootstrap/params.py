"""Parameter sets shaped for bootstrapping.

The chain is q_0 (61 bits), two 61-bit floor primes, then 58-bit scaling primes. The
wide primes at the top let CoeffToSlot encode its matrices with about 40 bits of
resolution (its integer plaintexts are scale * q_L / q_0 times entries of size
1 / (N K)), and EvalMod run at a 2^58 scale. The two floor primes bring the working
scale down to about 2^49 at level 0, so a level-0 message sits 12 bits below q_0:
small enough for the sine's error ((2 pi Delta m / q_0)^2 / 6, relative), large enough
that EvalMod's noise, multiplied back by q_0 / Delta, stays small.
"""
from __future__ import annotations

import warnings

from ....errors import ParameterError, SecurityWarning
from ..params import CkksParams
from .role import spec_for, transform_levels_for

FIRST_BITS, FLOOR_LEVELS, FLOOR_BITS, SCALE_BITS, SPECIAL_BITS = 61, 2, 61, 58, 61


def bootstrappable(poly_degree: int, *, levels_after: int = 3, hamming_weight: int = 32, dnum: int = 3,
                   transform_levels: int = 1, allow_insecure: bool = False) -> CkksParams:
    """A set with a sparse (fixed Hamming weight) secret whose bootstrapping leaves ``levels_after`` levels.

    Args:
        poly_degree: N.
        levels_after: the least output level of a bootstrap (>= FLOOR_LEVELS: the floor counts); one
            more when CoeffToSlot fits one level.
        hamming_weight: the secret's weight h (EvalMod's range grows with sqrt(h)).
        dnum: key-switching digits.
        transform_levels: levels for each of CoeffToSlot and SlotToCoeff (the FFT's stages grouped).
        allow_insecure: as :class:`CkksParams` (needed below N = 2^16 or beyond the sparse-secret estimate).

    Raises:
        ParameterError, InsecureParametersError: as :class:`CkksParams`.
    """
    with warnings.catch_warnings():  # a probe for the EvalMod range only: its (absent) security is moot
        warnings.simplefilter("ignore", SecurityWarning)
        probe = CkksParams(poly_degree=poly_degree, levels=3, dnum=1, first_bits=FIRST_BITS, scale_bits=SCALE_BITS,
                           special_bits=SPECIAL_BITS, floor_levels=FLOOR_LEVELS, floor_bits=FLOOR_BITS,
                           secret="hamming", hamming_weight=hamming_weight, allow_insecure=True)
    depth = 2 * transform_levels + 1 + spec_for(probe).depth  # + 1: CtS's split scalar (Bootstrapper.split_cts)
    levels = depth + max(levels_after, FLOOR_LEVELS)
    return CkksParams(poly_degree=poly_degree, levels=levels, first_bits=FIRST_BITS, scale_bits=SCALE_BITS,
                      special_bits=SPECIAL_BITS, floor_levels=FLOOR_LEVELS, floor_bits=FLOOR_BITS,
                      dnum=min(dnum, levels + 1), secret="hamming", hamming_weight=hamming_weight,
                      allow_insecure=allow_insecure)


def for_training(depth: int, *, slots: int = 16, ring: int | None = None) -> CkksParams:
    """A set leaving ``depth`` levels of computation between clean bootstraps of ``slots`` values.

    At N = 2^16 with a sparse secret of Hamming weight 192 (128-bit by the estimate in
    :data:`~he_core.schemes.ckks.params.SPARSE_SECRET_128`); ``ring`` gives a smaller,
    insecure ring of weight 32 for tests. Two levels come on top of ``depth``: the one that
    zeroes the other slots after a bootstrap, and the one a bootstrap starts from (where
    its input's scale is set).

    Raises:
        ParameterError: a depth below 1, slots not a power of two, or a chain too long for
            the ring at 128 bits.
    """
    if depth < 1:
        raise ParameterError(f"cannot choose bootstrapping parameters: depth must be >= 1, got {depth}")
    if slots < 2 or slots & (slots - 1):
        raise ParameterError(f"cannot choose bootstrapping parameters: slots must be a power of two >= 2, got {slots}")
    levels_after, transforms = depth + 2, transform_levels_for(slots)
    if ring is None:
        return bootstrappable(65536, levels_after=levels_after, hamming_weight=192, dnum=6,
                              transform_levels=transforms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        return bootstrappable(int(ring), levels_after=levels_after, hamming_weight=32, allow_insecure=True,
                              transform_levels=transforms)
