"""What a CKKS ciphertext must satisfy before any kernel touches it.

The checks role of :class:`~he_core.schemes.ckks.scheme.CkksScheme`: the array's structure (dtype,
limbs, ring degree, exactly the ciphertexts its shape needs), its layout metadata, its
noise record and, for ciphertexts from files or sockets, residues below their primes.
"""
from __future__ import annotations

import math

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import MismatchError
from . import layout, noise
from .context import CkksContext


class CiphertextChecks:
    """Structure, layout and noise checks of ciphertexts of one parameter set.

    Args:
        ctx: the parameter set's objects (ring degree, levels, primes, noise formulas).
    """

    def __init__(self, ctx: CkksContext) -> None:
        self.params, self.ring, self.model = ctx.params, ctx.ring, ctx.noise

    def structure(self, a: Ciphertext) -> None:
        """The structure the kernels rely on (the scheme checks membership first).

        A ciphertext that arrived from a file or a socket is checked before any kernel
        touches it: a uint64 array (nct, 2 or 3, limbs, N) with 1 .. levels+1 limbs,
        a layout dict whose stride fits the ring, and exactly the ciphertexts its shape
        needs (a spare one would be computed on and answered, though no row names it).
        """
        data, meta, n = a.data, a.meta, self.ring.n
        if (not isinstance(data, np.ndarray) or data.dtype != np.uint64 or data.ndim != 4
                or data.shape[1] not in (2, 3) or not 1 <= data.shape[2] <= self.params.levels + 1
                or data.shape[3] != n or data.shape[0] < 1 or not data.flags.c_contiguous):
            raise MismatchError(f"{a.describe()} is malformed: expected a C-contiguous uint64 array "
                                f"(nct, 2, limbs <= {self.params.levels + 1}, {n})")
        stride = meta.get("stride") if isinstance(meta, dict) else None
        coeff = meta.get("coeff", False) if isinstance(meta, dict) else None
        limit = n if coeff else self.params.slots
        if (isinstance(stride, bool) or not isinstance(stride, int) or stride < 1 or stride & (stride - 1)
                or stride > limit or stride < a.size or not isinstance(coeff, bool)
                or not all(isinstance(meta.get(k), bool) for k in ("dirty", "rep"))
                or (coeff and not isinstance(meta.get("rev"), bool))):
            raise MismatchError(f"{a.describe()} has malformed layout metadata {meta!r}")
        if data.shape[0] != -(-a.rows // (limit // stride)):
            raise MismatchError(f"{a.describe()} holds {data.shape[0]} ciphertexts, its shape needs "
                                f"{-(-a.rows // (limit // stride))}")
        self.noise(a)

    def noise(self, a: Ciphertext) -> None:
        """The noise metadata: ``nvar``, ``nslot``, ``nspec`` and ``vmax``, finite non-negative reals.

        A ciphertext without them (written before they existed) gets the most pessimistic
        public bound, the largest error and value its decryption can represent (see
        ``NoiseModel.fill_unknown``): it stays usable, and whatever is sized from the bound
        (flooding, refresh masks) errs on the safe side, at the cost of its precision.
        Refusing would strand every older file for no security gain.
        """
        if math.isfinite(a.scale) and a.scale > 0:
            self.model.fill_unknown(a.meta, layout.level(a), a.scale)
        bad = noise.malformed(a.meta)
        if bad is None and not isinstance(a.meta.get("fresh", False), bool):
            bad = f"fresh={a.meta['fresh']!r}"
        flood = a.meta.get("flood", 0.0)
        if bad is None and (isinstance(flood, bool) or not isinstance(flood, (int, float)) or not 0 <= flood
                            <= a.meta["nvar"]):
            bad = f"flood={flood!r}"
        if bad is not None:
            raise MismatchError(f"{a.describe()} has malformed noise metadata {bad} (need a finite number >= 0)")

    def validate_values(self, ct: Ciphertext) -> None:
        """Every residue below its prime: the kernels assume reduced inputs (and a wrapped one is not a ciphertext)."""
        primes = np.array(self.ring.q[: ct.data.shape[2]], dtype=np.uint64)
        if np.any(ct.data >= primes[None, None, :, None]):
            raise MismatchError(f"{ct.describe()} is malformed: it holds a residue that is not below its prime")
