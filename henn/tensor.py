"""``EncTensor``: a ciphertext with numpy-like operators.

An :class:`EncTensor` pairs a :class:`he_core.Scheme` with one of its
:class:`he_core.Ciphertext` objects so model code can be written as ``w - lr * g``
instead of ``scheme.sub(w, scheme.mul_plain(g, lr))``. It knows nothing about any
particular scheme: every operator is one call of the public scheme interface.

Layout: an encrypted ``(rows, size)`` matrix is a ciphertext of ``rows`` encrypted
vectors of length ``size``; an encrypted weight matrix ``W`` of shape ``(in, out)``
is therefore one encrypted row vector per input unit.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from he_core import Ciphertext, Scheme, SecretKey

from . import columns


class EncTensor:
    """An encrypted ``(rows, size)`` matrix bound to the scheme that evaluates on it.

    Plaintext operands (Python numbers or numpy arrays broadcasting against
    ``shape``) on either side of ``+ - *`` become ``add_plain`` / ``mul_plain``;
    another :class:`EncTensor` becomes ``add`` / ``sub`` / ``mul``.

    Attributes:
        scheme: the scheme the ciphertext belongs to.
        ct: the wrapped ciphertext.
    """

    __slots__ = ("scheme", "ct")
    # Make numpy defer to our reflected operators (``array * tensor``) instead of
    # broadcasting element by element over an object array.
    __array_ufunc__ = None

    def __init__(self, scheme: Scheme, ct: Ciphertext):
        if not isinstance(ct, Ciphertext):
            raise TypeError(f"cannot wrap: expected a Ciphertext, got {type(ct).__name__}")
        self.scheme = scheme
        self.ct = ct

    # ------------------------------------------------------------------ construction
    @classmethod
    def encrypt(cls, scheme: Scheme, values: Any, key: SecretKey | None = None, *, rng=None,
                layout: Any = None) -> "EncTensor":
        """Encrypt a vector or ``(rows, size)`` array (public key unless ``key`` is given).

        Args:
            scheme: scheme with public keys installed (or pass ``key``).
            values: reals, a 1-D vector (one row) or a 2-D array.
            key: optional secret key for symmetric encryption.
            rng: randomness for the encryption noise (default: OS CSPRNG).
            layout: ``None``, or ``"table"`` for a batch used with row gathers and
                scatters (see :meth:`he_core.Scheme.encrypt`).

        Returns:
            The encrypted tensor.
        """
        return cls(scheme, scheme.encrypt(values, key, rng=rng, layout=layout))

    def _wrap(self, ct: Ciphertext) -> "EncTensor":
        return EncTensor(self.scheme, ct)

    # ------------------------------------------------------------------ shape
    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.ct.shape)

    @property
    def rows(self) -> int:
        return self.ct.rows

    @property
    def size(self) -> int:
        return self.ct.size

    def __len__(self) -> int:
        return self.ct.rows

    def __repr__(self) -> str:
        return f"EncTensor({self.ct.describe()})"

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other: Any) -> "EncTensor":
        if isinstance(other, EncTensor):
            return self._wrap(self.scheme.add(self.ct, other.ct))
        return self._wrap(self.scheme.add_plain(self.ct, other))

    __radd__ = __add__

    def __sub__(self, other: Any) -> "EncTensor":
        if isinstance(other, EncTensor):
            return self._wrap(self.scheme.sub(self.ct, other.ct))
        return self._wrap(self.scheme.sub_plain(self.ct, other))

    def __rsub__(self, other: Any) -> "EncTensor":
        # other - self == (-self) + other
        return self._wrap(self.scheme.add_plain(self.scheme.neg(self.ct), other))

    def __neg__(self) -> "EncTensor":
        return self._wrap(self.scheme.neg(self.ct))

    def __mul__(self, other: Any) -> "EncTensor":
        if isinstance(other, EncTensor):
            return self._wrap(self.scheme.mul(self.ct, other.ct))
        return self._wrap(self.scheme.mul_plain(self.ct, other))

    __rmul__ = __mul__

    def __rmatmul__(self, weights: Any) -> "EncTensor":
        """``X @ W`` for a plaintext ``(q, rows)`` matrix ``X`` and this encrypted ``W``."""
        return self._wrap(self.scheme.lincomb(weights, self.ct))

    def __matmul__(self, other: Any) -> "EncTensor":
        """``H @ W`` for this encrypted ``(rows, in)`` batch and a plaintext ``(in, out)`` matrix.

        One ``matvec`` (a linear-transform capability: rotations on a packing scheme,
        a key made by the key holder for this matrix on ``vhe``, which refuses
        without it). An encrypted ``W`` ``(in, out)`` works too
        (:func:`henn.columns.rmatmul`: one column extraction and one broadcast product
        per input); layers keep ``W`` transposed instead (:func:`henn.columns.matmul`).
        """
        if isinstance(other, EncTensor):
            return columns.rmatmul(self, other, columns.basis_for(self))
        w = np.asarray(other, dtype=np.float64)
        if w.ndim != 2 or w.shape[0] != self.size:
            raise ValueError(f"cannot matmul: a ({self.rows}, {self.size}) batch by a matrix of shape {w.shape}")
        return self._wrap(self.scheme.matvec(self.ct, w.T))

    def inner(self, other: "EncTensor") -> "EncTensor":
        """Row-wise inner product with another encrypted tensor: shape ``(rows, 1)``."""
        return self._wrap(self.scheme.inner(self.ct, _ct(other, "inner")))

    def polyval(self, coeffs: Sequence[float]) -> "EncTensor":
        """Element-wise ``sum(coeffs[i] * x**i)``."""
        return self._wrap(self.scheme.polyval(self.ct, coeffs))

    def declare_bound(self, bound: float) -> "EncTensor":
        """The same tensor with the caller's bound on |values| (see :meth:`he_core.Scheme.declare_bound`)."""
        return self._wrap(self.scheme.declare_bound(self.ct, bound))

    # ------------------------------------------------------------------ rows
    def row_sum(self, idx: Any = None) -> "EncTensor":
        """Sum of the selected rows (all by default): shape ``(1, size)``."""
        return self._wrap(self.scheme.row_sum(self.ct, idx))

    def take_rows(self, idx: Any) -> "EncTensor":
        """The rows at ``idx`` as a new tensor."""
        return self._wrap(self.scheme.take_rows(self.ct, idx))

    def index_add_(self, idx: Any, other: "EncTensor") -> "EncTensor":
        """In place: add ``other`` to the rows at ``idx`` (repeated indices accumulate)."""
        self.scheme.index_add_(self.ct, idx, _ct(other, "index_add_"))
        return self

    def bag_sum(self, bags: Any) -> "EncTensor":
        """Per bag (a 1-D array of row indices), the sum of the rows it names: shape ``(len(bags), size)``."""
        return self._wrap(self.scheme.bag_sum(self.ct, bags))

    def bag_add_(self, bags: Any, other: "EncTensor") -> "EncTensor":
        """In place: add row ``i`` of ``other`` to every row ``bags[i]`` names (repeats accumulate)."""
        self.scheme.bag_add_(self.ct, bags, _ct(other, "bag_add_"))
        return self

    def copy(self) -> "EncTensor":
        return self._wrap(self.scheme.copy(self.ct))

    # ------------------------------------------------------------------ leaving encryption
    def decrypt(self, secret: SecretKey) -> np.ndarray:
        """Decrypt to a float64 ``(rows, size)`` array (needs the secret key)."""
        return self.scheme.decrypt(self.ct, secret)

    def budget(self):
        """The scheme's remaining-headroom report for this ciphertext."""
        return self.scheme.budget(self.ct)


def _ct(x: Any, op: str) -> Ciphertext:
    if isinstance(x, EncTensor):
        return x.ct
    raise TypeError(f"cannot {op}: expected an EncTensor, got {type(x).__name__}")
