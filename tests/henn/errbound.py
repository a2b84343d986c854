"""A test-only scheme that computes exactly and carries a worst-case fixed-point error bound.

``ErrBoundScheme`` evaluates every op of the scheme interface on float64 values (the
ideal real-number computation, up to 1e-16 relative round-off) and propagates, per
entry, a bound ``e`` on how far a fixed-point scheme with unit ``u = 2^-f`` may be
from that ideal after the same ops, assuming (as the ``vhe`` scheme documents) that
every encoding and every rescaled result is off by at most one unit ``u``:

* encode a plaintext ``p``: ``u``; ``a + b``: ``ea + eb``; ``a + p``: ``ea + u``;
* ``a * p`` (plaintext, rescaled): ``|p| ea + (|a| + ea) u + u``;
* ``a * b`` (rescaled): ``|a| eb + |b| ea + ea eb + u``;
* ``inner``: the sum of the element products' bounds before the final ``u``;
* ``lincomb(W, a)``: ``|W| @ ea + u (|a| + ea) summed over rows + u``.

Used to *derive* the tolerance of the plain-vs-vhe twin test instead of guessing it.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from he_core import Capability, Ciphertext, KeyPair, PublicKeys, SecretKey
from he_core.keys import new_key_id
from he_core.optional import Products
from he_core.params import Parameters
from he_core.scheme import Budget, Scheme


@dataclasses.dataclass(frozen=True)
class ErrBoundParams(Parameters):
    scheme = "errbound"
    unit_bits: int = 16


class ErrBoundScheme(Products, Scheme):
    name = "errbound"
    params_class = ErrBoundParams
    capabilities = frozenset({Capability.PUBLIC_KEY_ENCRYPT, Capability.CIPHER_MULTIPLY, Capability.INNER_PRODUCT,
                              Capability.RESCALE})

    @property
    def unit(self) -> float:
        return 2.0 ** -self.params.unit_bits

    def _ct(self, key_id: str, v: np.ndarray, e: np.ndarray) -> Ciphertext:
        e = np.broadcast_to(e, v.shape).copy()
        return Ciphertext(self.name, self.params_id, key_id, v.shape, 1.0, (v, e))

    def error_bound(self, ct: Ciphertext) -> np.ndarray:
        """The propagated bound on |fixed-point result - ideal value|, per entry."""
        return ct.data[1].copy()

    def _keygen(self, requirements, rng):
        kid = new_key_id()
        return KeyPair(SecretKey(self.name, self.params_id, kid, None, requirements),
                       PublicKeys(self.name, self.params_id, kid, None, requirements))

    def _encrypt_secret(self, values, key, scale, rng):
        return self._ct(key.key_id, values.copy(), np.full(values.shape, self.unit))

    def _encrypt_public(self, values, public, scale, rng):
        return self._ct(public.key_id, values.copy(), np.full(values.shape, self.unit))

    def _decrypt(self, ct, key):
        return ct.data[0].copy()

    def _add(self, a, b):
        return self._ct(a.key_id, a.data[0] + b.data[0], a.data[1] + b.data[1])

    def _sub(self, a, b):
        return self._ct(a.key_id, a.data[0] - b.data[0], a.data[1] + b.data[1])

    def _neg(self, a):
        return self._ct(a.key_id, -a.data[0], a.data[1])

    def _add_plain(self, a, values):
        return self._ct(a.key_id, a.data[0] + values, a.data[1] + self.unit)

    def _mul_plain(self, a, values, rescale):
        v, e = a.data
        u = self.unit
        return self._ct(a.key_id, v * values, np.abs(values) * e + (np.abs(v) + e) * u + u)

    def _mul(self, a, b, rescale):
        (va, ea), (vb, eb) = a.data, b.data
        return self._ct(a.key_id, va * vb, np.abs(va) * eb + np.abs(vb) * ea + ea * eb + self.unit)

    def _inner(self, a, b, rescale):
        (va, ea), (vb, eb) = a.data, b.data
        e = np.sum(np.abs(va) * eb + np.abs(vb) * ea + ea * eb, axis=1, keepdims=True) + self.unit
        return self._ct(a.key_id, np.sum(va * vb, axis=1, keepdims=True), e)

    def _rescale(self, a):
        return a

    def _lincomb(self, weights, a, rescale):
        v, e = a.data
        u = self.unit
        err = np.abs(weights) @ e + u * np.sum(np.abs(v) + e, axis=0, keepdims=True) + u
        return self._ct(a.key_id, weights @ v, err)

    def _take_rows(self, a, rows):
        return self._ct(a.key_id, a.data[0][rows], a.data[1][rows])

    def _concat_rows(self, parts):
        return self._ct(parts[0].key_id, np.concatenate([p.data[0] for p in parts]),
                        np.concatenate([p.data[1] for p in parts]))

    def _row_sum(self, a, rows):
        v, e = (a.data[0], a.data[1]) if rows is None else (a.data[0][rows], a.data[1][rows])
        return self._ct(a.key_id, v.sum(axis=0, keepdims=True), e.sum(axis=0, keepdims=True))

    def _index_add_(self, a, rows, b):
        for i, r in enumerate(rows):
            j = 0 if b.rows == 1 else i
            a.data[0][r] += b.data[0][j]
            a.data[1][r] += b.data[1][j]

    def _budget(self, a):
        return Budget(kind="unbounded", remaining=float("inf"))
