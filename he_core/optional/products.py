"""The standard implementation of the product protocols: multiplication, inner products, rescaling, linear maps.

A scheme that implements :class:`~he_core.protocols.Multiplication`,
:class:`~he_core.protocols.InnerProducts`, :class:`~he_core.protocols.Rescaling` or
:class:`~he_core.protocols.LinearMaps` takes the matching base class here: its public
methods check the capability and the operands, then call the ``_``-prefixed hook the
scheme implements. A hook left alone raises :class:`~he_core.errors.CapabilityError`.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import circuits
from ..capabilities import Capability
from ..ciphertext import Ciphertext
from ..errors import CapabilityError, EncodingError
from ..keys import SecretKey, SwitchKey
from ..randomness import RandomSource


class Products:
    """``mul``, ``square``, ``polyval``, ``inner`` and ``rescale`` (each checks its own capability)."""

    def mul(self, a: Ciphertext, b: Ciphertext, *, rescale: bool = True) -> Ciphertext:
        """Element-wise product of two ciphertexts.

        Rows broadcast (``1`` against ``r``) and so do sizes (a ``size == 1`` ciphertext
        multiplies every entry of the other's vectors).
        """
        self.require(Capability.CIPHER_MULTIPLY)
        self._check_pair(a, b, "mul", allow_size_broadcast=True)
        return self._mul(a, b, rescale)

    def square(self, a: Ciphertext, *, rescale: bool = True) -> Ciphertext:
        return self.mul(a, a, rescale=rescale)

    def inner(self, a: Ciphertext, b: Ciphertext, *, rescale: bool = True) -> Ciphertext:
        """Row-wise inner product of two ciphertexts: result shape ``(rows, 1)``."""
        self.require(Capability.INNER_PRODUCT)
        self._check_pair(a, b, "inner", allow_size_broadcast=False)
        return self._inner(a, b, rescale)

    def rescale(self, a: Ciphertext) -> Ciphertext:
        """Divide by the working scale (after a product made with ``rescale=False``)."""
        self.require(Capability.RESCALE)
        self._check_ct(a)
        return self._rescale(a)

    def polyval(self, a: Ciphertext, coeffs: Sequence[float]) -> Ciphertext:
        """Evaluate ``sum(coeffs[i] * a**i)`` element-wise by :func:`he_core.circuits.polyval`.

        The circuit's shape is the scheme's ``polyval_style``; its depth is
        ``op_cost("polyval", a, coeffs=coeffs).depth``, at most ``ceil(log2(degree)) + 1``
        for the generic style. The circuit's operands are ``a`` (checked here) and
        ciphertexts made from it, so its products and sums go straight to the hooks
        (:class:`SchemeHooks`) instead of re-checking keys, parameters and shapes.

        Raises:
            EncodingError: the coefficients are not a non-empty 1-D sequence of finite reals.
        """
        self.require(Capability.CIPHER_MULTIPLY)
        self._check_ct(a)
        return circuits.polyval(SchemeHooks(self), a, coeffs, self.polyval_style)

    # Hooks: reaching one means the capability was declared but not implemented.
    def _mul(self, a, b, rescale):
        raise CapabilityError(self.name, Capability.CIPHER_MULTIPLY.value)

    def _inner(self, a, b, rescale):
        raise CapabilityError(self.name, Capability.INNER_PRODUCT.value)

    def _rescale(self, a):
        raise CapabilityError(self.name, Capability.RESCALE.value)


class LinearMapping:
    """``matvec`` and ``make_linear_key``."""

    def matvec(self, a: Ciphertext, matrix: Any, *, key: SwitchKey | None = None) -> Ciphertext:
        """Apply a plaintext ``(out, size)`` matrix to every encrypted vector: ``(rows, out)``."""
        self.require(Capability.LINEAR_TRANSFORM)
        self._check_ct(a)
        m = self._as_finite(matrix, "matrix")
        if m.ndim != 2 or m.shape[1] != a.size:
            raise EncodingError(f"cannot matvec: matrix shape {m.shape} does not take vectors of size {a.size}")
        return self._matvec(a, m, key)

    def make_linear_key(self, secret: SecretKey, matrix: Any, *,
                        rng: RandomSource | int | None = None) -> SwitchKey | None:
        """Key holder: public material for :meth:`matvec` with this plaintext matrix (``None``: none needed).

        Raises:
            CapabilityError: the scheme has no linear maps.
            MismatchError: the secret key belongs elsewhere.
        """
        self.require(Capability.LINEAR_TRANSFORM)
        self._check_secret(secret)
        return None

    def _matvec(self, a, matrix, key):
        raise CapabilityError(self.name, Capability.LINEAR_TRANSFORM.value)


class SchemeHooks:
    """The four calls :func:`he_core.circuits.polyval` makes, bound to a scheme's ``_``-prefixed hooks."""

    __slots__ = ("_s",)

    def __init__(self, scheme: Any):
        self._s = scheme

    def mul(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        return self._s._mul(a, b, True)

    def mul_plain(self, a: Ciphertext, c: float) -> Ciphertext:
        return self._s._mul_plain(a, np.array(float(c)), True)

    def add(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        return self._s._add(a, b)

    def add_plain(self, a: Ciphertext, c: float) -> Ciphertext:
        return self._s._add_plain(a, np.array(float(c)))
