"""The noise record a CKKS ciphertext carries in its metadata, and the analytic estimate read from it.

Every operation that changes a ciphertext's error writes ``nvar`` / ``nslot`` / ``nspec``
(variances, see :mod:`.noise`) and ``vmax`` (a bound on |value|) through :meth:`NoiseRecords.meta`,
which caps them at the modulus and drops the ``fresh`` / ``flood`` marks the new noise no
longer deserves.
"""
from __future__ import annotations

import math

import numpy as np

from ...ciphertext import Ciphertext
from . import layout, noise
from .coeff_layout import is_coeff, nonzero_coeffs
from .context import CkksContext


class NoiseRecords:
    """Reads and writes the noise fields of ciphertexts of one parameter set."""

    def __init__(self, ctx: CkksContext) -> None:
        self.noise, self.n = ctx.noise, ctx.ring.n

    def meta(self, meta: dict, level: int, var, vmax: float) -> dict:
        """``meta`` with the noise fields set from one variance (white noise) or (nvar, nslot, nspec).

        Variances are capped at (Q_level / 2)^2; nspec bounds the other two.
        """
        if type(var) is tuple and len(var) == 3:  # the float path of sums (see noise.sum_var_pair)
            limit = self.noise.cap_limit(level)
            nvar, nslot, nspec = (min(noise.finite_float(float(v)), limit) for v in var)
        else:
            nvar, nslot, nspec = self.noise.cap(np.broadcast_to(np.asarray(var, dtype=np.float64), (3,)), level)
        # "fresh" marks noise independent of every other ciphertext's (a re-encryption's),
        # "flood" the variance of a sanitising flood (independent of the key), "a_seed" the seeds
        # of a fresh encryption's uniform half; any operation that recomputes the noise drops them.
        out = {k: v for k, v in meta.items() if k not in ("fresh", "flood", "a_seed")}
        return {**out, "nvar": float(min(nvar, nspec)), "nslot": float(min(nslot, nspec)), "nspec": float(nspec),
                "vmax": float(noise.finite(vmax))}

    def noisy(self, ct: Ciphertext, var, vmax: float, *, keep_flood: bool = False) -> Ciphertext:
        """A shallow copy of ct with new noise metadata (never mutates ct: callers may hold it).

        ``keep_flood``: the new noise is the old plus independent terms only (a key switch,
        an added fresh update, a declared bound), so a sanitising flood in it stays a
        key-independent part of it.
        """
        meta = self.meta(ct.meta, layout.level(ct), var, vmax)
        if keep_flood and "flood" in ct.meta:
            meta["flood"] = float(min(ct.meta["flood"], meta["nvar"]))
        return ct.replace(meta=meta)

    @staticmethod
    def nv(ct: Ciphertext) -> tuple[np.ndarray, float]:
        """((nvar, nslot, nspec), vmax) of a ciphertext: the variances as the vector .noise's formulas take."""
        var = np.array([ct.meta["nvar"], ct.meta["nslot"], ct.meta["nspec"]], dtype=np.float64)
        return var, float(ct.meta["vmax"])

    @staticmethod
    def trio(ct: Ciphertext) -> tuple[tuple[float, float, float], float]:
        """:meth:`nv` as Python floats: ((nvar, nslot, nspec), vmax)."""
        m = ct.meta
        return (float(m["nvar"]), float(m["nslot"]), float(m["nspec"])), float(m["vmax"])

    def msg_norm2(self, ct: Ciphertext) -> float:
        """Bound on ||Delta m||_2^2 of each ciphertext of the batch (coefficient layouts: per non-zero coefficient)."""
        if ct.meta.get("coeff"):
            return noise.coeff_message_norm2(ct.scale, ct.meta["vmax"], nonzero_coeffs(ct, self.n))
        return noise.slot_message_norm2(ct.scale, ct.meta["vmax"])

    def estimate(self, ct: Ciphertext) -> dict:
        """The analytic noise estimate of a checked ciphertext (see ``CkksScheme.noise_estimate``)."""
        (nvar, nslot, _), vmax = self.nv(ct)
        est = noise.estimate(nvar, nslot, self.n, ct.scale, ct.data.shape[0], coeff=is_coeff(ct))
        # A sanitised ciphertext's flood is fresh Gaussian noise, independent of the key: a
        # release need not hide it again (the key-dependent rest is what flooding is for).
        flood = float(ct.meta.get("flood", 0.0))
        key_var = max(nvar - flood, 0.0)
        count = ct.data.shape[0] * self.n
        key = {"key_variance": key_var, "key_slot_variance": max(float(ct.meta["nslot"]) - flood, 0.0),
               "key_spectral": max(float(ct.meta["nspec"]) - flood, key_var),
               "key_coeff_bound": noise.coeff_bound(key_var, count)}
        key["key_l2_bound"] = noise.l2_bound(key_var, key["key_spectral"], count)
        return {**est, **key, "value_bound": vmax, "log2_scale": math.log2(ct.scale), "level": layout.level(ct)}
