"""The vhe side of the masked refresh (a mixin of :class:`~he_core.schemes.vhe.scheme.VheScheme`).

vhe has no modulus: a masked value must stay inside the int64 range the parameters
allow (``|x| <= xmax`` in units of the scale), so the mask can be at most about 27
bits wide while the values use 16 to 20 of them. The hiding that leaves is a few bits
per entry, and :class:`henn.keyholder.MaskedRefresh` reports it as it is: vhe is
insecure by design (SECURITY.md), and its refreshes hide nothing worth the name.

Entries are the scaled integers of every value (``n_cts`` = rows, ``n_entries`` =
size); a refresh reads all of them.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import EncodingError
from ...refresh import Mask, MaskPlan


class VheRefreshMixin:
    """Masked refresh hooks of the vhe scheme."""

    def _check_vhe_target(self, target: Any) -> None:
        if target not in (None, "table"):
            raise EncodingError(f"cannot refresh into {target!r}: vhe has one layout (None, or the 'table' hint)")

    def _grid(self, ct: Ciphertext) -> float:
        """Masks are integers in units of 1 / grid: the working scale (or the ciphertext's, if smaller)."""
        return float(min(ct.scale, self._f))

    def _refresh_plan(self, ct: Ciphertext, target: Any, value_bound: float | None) -> MaskPlan:
        self._check_vhe_target(target)
        rows, size = ct.shape
        every = np.arange(rows * size)
        bound = self._value_bound(ct) * self._grid(ct) / ct.scale  # |value| in units of 1 / grid
        if value_bound is not None:
            bound = min(bound, value_bound * self._grid(ct))
        return MaskPlan(read=(every // size, every % size), bound_bits=math.log2(max(float(bound), 1.0)),
                        room_bits=math.log2(self._xmax) + 1.0, moduli=(), n_cts=rows, n_entries=size)

    def _mask_values(self, ct: Ciphertext, mask: Mask) -> np.ndarray:
        ints = mask.as_int64().astype(np.float64)  # |mask| < 2^31: exact in float64
        return (ints / self._grid(ct)).reshape(ct.shape)

    def _apply_mask(self, ct: Ciphertext, mask: Mask, rng) -> Ciphertext:
        return self._add_plain(ct, self._mask_values(ct, mask))

    def _reencrypt_masked(self, masked: Ciphertext, target: Any, key, rng) -> Ciphertext:
        self._check_vhe_target(target)
        values = self._decrypt(masked, key)
        return self._encrypt_secret(values, key, masked.scale if masked.scale <= self._f else None, rng)

    def _remove_mask(self, fresh: Ciphertext, mask: Mask, target: Any, source: Ciphertext,
                     value_bound: float | None) -> Ciphertext:
        return self._add_plain(fresh, -self._mask_values(source, mask))

    def _sanitize(self, ct: Ciphertext, flooding, rng) -> Ciphertext:
        # Nothing to gain: a vhe ciphertext shows its plaintext to anyone who rounds it
        # (SECURITY.md), and a re-randomising key switch would only spend noise budget.
        return self.copy(ct)

    def _refresh_target_signature(self, ct: Ciphertext, target: Any) -> dict:
        self._check_vhe_target(target)
        return {"layout": "same", "shape": list(ct.shape), "scale_out": float(min(ct.scale, self._f))}
