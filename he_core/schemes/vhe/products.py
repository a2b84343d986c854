"""vhe products, linear maps and re-keying: every operation that ends in a key switch.

A mixin of :class:`~he_core.schemes.vhe.scheme.VheScheme` (the scheme's encoding, noise
and range checks are its own). Each operation checks its range and the noise known
before the switch first (nothing is computed when those fail), then the switched result:
the switch adds e_bound times the sum of the |digits| it switched, which the kernel
measures.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...ciphertext import Ciphertext
from ...errors import EncodingError, KeyMissingError, MismatchError
from ...keys import SecretKey, SwitchKey
from ...randomness import RandomSource, resolve
from . import kernels, keygen


class VheProductsMixin:
    """Ciphertext products, inner products, linear maps and re-keying (``polyval`` is the shared circuit on these hooks)."""

    def make_linear_key(self, secret: SecretKey, matrix: Any, *, rng: RandomSource | int | None = None) -> SwitchKey:
        """Key holder: public material for :meth:`matvec` with this plaintext ``(out, size)`` matrix.

        The matrix is encoded as G = round(matrix * 2^f); the key switches from G S_size to
        S_out, so ``out`` and ``size`` must both be sizes of the secret key.

        Raises:
            KeyMissingError: a size is not part of the secret key.
            EncodingError: the matrix is not finite and 2-D.
        """
        self._check_secret(secret)
        g_real = self._as_finite(matrix, "matrix")
        if g_real.ndim != 2:
            raise EncodingError(f"cannot make a linear key: matrix must be 2-D, got shape {g_real.shape}")
        out, size = g_real.shape
        g = np.rint(g_real * self._f)
        if np.abs(g).max(initial=0) >= 2.0**52:
            raise EncodingError("cannot make a linear key: matrix entries too large")
        g = g.astype(np.int64)
        src = g.astype(object) @ keygen.full_key(self._secret_t(secret, size, "make a linear key")).astype(object)
        hi, lo = keygen.split_switch_matrix(src, self._secret_t(secret, out, "make a linear key"), self.params,
                                            resolve(rng))
        return SwitchKey(self.name, self.params_id, secret.key_id, secret.key_id,
                         {"kind": "linear", "G": g, "hi": hi, "lo": lo}, self.params)

    def _product_noise(self, a, b, va: int, vb: int, value_bound: int, div: int, slots: int, op: str) -> int:
        """Noise bound of a product before its key switch, checked with its range before any work."""
        na, nb = a.meta["noise"], b.meta["noise"]
        per_slot = -(-(va * nb + vb * na + -(-na * nb // self._w)) // div) + self._round_l1sq
        noise = self._check_noise(slots * per_slot, op)
        self._check_range(value_bound, noise, 0, op, a.scale * b.scale / div)
        return noise

    def _switched(self, noise: int, value_bound: int, stats, op: str, scale: float) -> int:
        """Final checks of a key-switched product: its measured switch noise and its range.

        The switch adds at most e_bound * (sum of |digits|) (stats[2], measured by the
        kernel; at most 128 per switched entry), and its key columns are measured exactly.
        """
        noise = self._check_noise(noise + self._e_bound * int(stats[2]), op)
        self._check_range(value_bound, noise, int(stats[1]), op, scale)
        return noise

    def _mul(self, a, b, rescale):
        if a.shape[1] == 1 and b.shape[1] > 1:
            a, b = b, a  # the vector first
        m = a.shape[1]
        div = self._f if rescale else 1
        va, vb = self._value_bound(a), self._value_bound(b)
        value_bound = -(-va * vb // div)
        noise = self._product_noise(a, b, va, vb, value_bound, div, 1, "mul")
        if b.shape[1] == m:
            data, stats = kernels.mul(a.data, m, b.data, m, self._k, self._w * div, self._key("ew", m, "mul"),
                                      self._b, self._ell, m, self._limit)
        else:
            data, stats = kernels.mul(b.data, 1, a.data, m, self._k, self._w * div, self._key("sv", m, "mul"),
                                      self._b, self._ell, m, self._limit)
        noise = self._switched(noise, value_bound, stats, "mul", a.scale * b.scale / div)
        return Ciphertext("vhe", self.params_id, a.key_id, (data.shape[0], m), a.scale * b.scale / div, data,
                          {"noise": noise, "head": int(stats[0]), "tail": int(stats[1])}, self.params)

    def _inner(self, a, b, rescale):
        m = a.shape[1]
        div = self._f if rescale else 1
        va, vb = self._value_bound(a), self._value_bound(b)
        value_bound = -(-m * va * vb // div)
        noise = self._product_noise(a, b, va, vb, value_bound, div, m, "inner")
        data, stats = kernels.mul(a.data, m, b.data, m, self._k, self._w * div, self._key("ip", m, "inner"),
                                  self._b, self._ell, 1, self._limit)
        noise = self._switched(noise, value_bound, stats, "inner", a.scale * b.scale / div)
        return self._make(a.key_id, data.shape[0], 1, a.scale * b.scale / div, data, noise, stats)

    def _matvec(self, a, matrix, key):
        if key is None or not isinstance(key, SwitchKey) or not isinstance(key.data, dict) \
                or key.data.get("kind") != "linear":
            raise KeyMissingError("cannot matvec: pass key=scheme.make_linear_key(secret, matrix), made by the key "
                                  "holder for this matrix")
        if key.from_key_id != a.key_id or key.scheme != self.name or key.params_id != self.params_id:
            raise MismatchError(f"cannot matvec: the linear key belongs to key {key.from_key_id[:12]}, the "
                                f"ciphertext to {a.key_id[:12]}")
        g = np.rint(matrix * self._f)
        if g.shape != key.data["G"].shape or not np.array_equal(g, key.data["G"]):
            raise MismatchError("cannot matvec: the linear key was made for a different matrix")
        out = g.shape[0]
        gl1 = int(np.abs(key.data["G"]).sum(axis=1).max())
        worst = (a.size + self._k) * self._swn
        self._check_noise(-(-(a.meta["noise"] * gl1 + worst) // self._f) + self._round_l1, "matvec")
        self._check_range(-(-self._value_bound(a) * gl1 // self._f), 0, (a.size + self._k) * self._swt, "matvec",
                          a.scale)
        hi, (_, _, l1) = kernels.keyswitch(a.data, key.data["hi"], self._b, self._ell, out, self._limit)
        lo, _ = kernels.keyswitch(a.data, key.data["lo"], self._b, self._ell, out, self._limit)
        # hi * 2^32 + lo is one key switch of the same digits: its noise is e_bound * l1.
        noise = self._check_noise(-(-(a.meta["noise"] * gl1 + self._e_bound * int(l1)) // self._f)
                                  + self._round_l1, "matvec")
        self._check_range(-(-self._value_bound(a) * gl1 // self._f), noise, (a.size + self._k) * self._swt,
                          "matvec", a.scale)
        data, stats = kernels.combine(hi, lo, 32, self._f, out, self._limit)
        return self._make(a.key_id, a.rows, out, a.scale, data, noise, stats)

    def _rekey(self, ct, switch_key):
        data = switch_key.data
        if not isinstance(data, dict) or data.get("kind") != "rekey" or str(ct.size) not in data["mt"]:
            raise KeyMissingError(f"cannot rekey: the switch key has no matrix for vectors of size {ct.size}")
        self._check_noise(ct.meta["noise"] + (ct.size + self._k) * self._swn, "rekey")  # worst case, before work
        out, stats = kernels.keyswitch(ct.data, data["mt"][str(ct.size)], self._b, self._ell, ct.size, self._limit)
        noise = ct.meta["noise"] + self._e_bound * int(stats[2])
        return self._make(switch_key.to_key_id, ct.rows, ct.size, ct.scale, out, noise, stats)

