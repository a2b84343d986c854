"""Columns of encrypted batches, and the matrix products built from them.

An encrypted ``(rows, size)`` batch holds one encrypted vector per row; the scheme
interface offers row operations (``take_rows``, ``row_sum``, ``lincomb``) and products
that broadcast a ``size == 1`` ciphertext across a vector, but no column access. Two
identities give it, with public material only:

* column ``j`` of ``X`` is the row-wise inner product with the one-hot row ``e_j``;
* a ``(rows, 1)`` column ``c`` lands at position ``j`` of a width-``n`` batch as the
  broadcast product ``c * e_j``.

The one-hot rows are public constants: a :class:`Basis` encrypts each once with the
public key (on the scheme, or the guarded view, the tensors live on) and keeps it.
Everything here works through the tensors' own operations (the tensor type is taken
from the tensors or given to the :class:`Basis`), so :mod:`henn.tensor` can build its
encrypted-by-encrypted ``@`` on this module.
Each extraction or placement is one ciphertext product: one level on a leveled
scheme, one key switch on ``vhe``.

From these, :func:`matmul` multiplies an encrypted batch by an encrypted matrix
(``H @ W``) and :func:`rmatmul` an encrypted matrix by an encrypted batch
(``W @ H``), with the same operations the layers use.
"""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np

class Basis:
    """Encrypted public rows (one-hot ``e_j`` of each width, and other constants), made on first use.

    Args:
        scheme: the scheme (or guarded view) the tensors live on; public keys installed.
        tensor: the tensor type the rows are made as (:class:`henn.tensor.EncTensor`).
    """

    def __init__(self, scheme: Any, tensor: type):
        self.scheme = scheme
        self.tensor = tensor
        self._rows: dict[tuple[str, bytes], Any] = {}

    def unit(self, width: int, j: int) -> Any:
        """The encrypted ``(1, width)`` one-hot row ``e_j``.

        One row, not a whole batch: a packing scheme lays a batch out at its own
        stride, and a one-row operand is the cheap one to move to the other's.

        Raises:
            ValueError: ``j`` outside ``[0, width)``.
        """
        if not 0 <= j < width:
            raise ValueError(f"cannot make a one-hot row: position {j} outside a width of {width}")
        values = np.zeros(width)
        values[j] = 1.0
        return self.row(values)

    def row(self, values: Any) -> Any:
        """The encrypted ``(1, len(values))`` row of these public constants."""
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        key = (self.scheme.public_keys.key_id, values.tobytes())
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = self.tensor.encrypt(self.scheme, values.reshape(1, -1))
        return row

    def __len__(self) -> int:
        return len(self._rows)


_BASES: "weakref.WeakKeyDictionary[Any, Basis]" = weakref.WeakKeyDictionary()


def basis_for(like: Any) -> Basis:
    """The shared :class:`Basis` of a tensor's scheme (or guarded view), kept as long as the scheme lives."""
    basis = _BASES.get(like.scheme)
    if basis is None:
        basis = _BASES[like.scheme] = Basis(like.scheme, type(like))
    return basis


def column(x: Any, j: int, basis: Basis) -> Any:
    """Column ``j`` of ``x`` as a ``(rows, 1)`` tensor (``x`` itself when it has one column)."""
    if x.size == 1:
        if j != 0:
            raise ValueError(f"cannot take column {j} of a one-column tensor")
        return x
    return x.inner(basis.unit(x.size, j))


def columns(x: Any, basis: Basis) -> list[Any]:
    """Every column of ``x``, in order."""
    return [column(x, j, basis) for j in range(x.size)]


def place(cols: list[Any], basis: Basis) -> Any:
    """The ``(rows, len(cols))`` tensor whose column ``j`` is ``cols[j]`` (each ``(rows, 1)``).

    Raises:
        ValueError: no columns, or a column wider than one.
    """
    if not cols:
        raise ValueError("cannot place columns: none given")
    for j, c in enumerate(cols):
        if c.size != 1:
            raise ValueError(f"cannot place columns: column {j} has width {c.size}, not 1")
    if len(cols) == 1:
        return cols[0]
    width = len(cols)
    out = None
    for j, c in enumerate(cols):
        term = c * basis.unit(width, j)
        out = term if out is None else out + term
    return out


def concat_rows(parts: list[Any]) -> Any:
    """The rows of every part, in order, as one tensor (all parts of the same width)."""
    if not parts:
        raise ValueError("cannot concatenate rows: no tensors given")
    if len(parts) == 1:
        return parts[0]
    scheme = parts[0].scheme
    return type(parts[0])(scheme, scheme.concat_rows([p.ct for p in parts]))


def matmul(h: Any, wt: Any, basis: Basis) -> Any:
    """``H @ W`` for an encrypted batch ``H`` ``(rows, in)`` and an encrypted ``W`` given as ``W^T``.

    ``W^T`` is ``(out, in)``: one encrypted row per output unit (the layout an
    encrypted-input layer keeps, so its forward and backward both read rows).

    Returns:
        ``(rows, out)``.

    Raises:
        ValueError: the widths do not match.
    """
    if h.size != wt.size:
        raise ValueError(f"cannot multiply: the batch has width {h.size}, the matrix takes {wt.size} inputs")
    if wt.rows == 1:
        return h.inner(wt)
    return place([h.inner(wt.take_rows([j])) for j in range(wt.rows)], basis)


def rmatmul(w: Any, h: Any, basis: Basis) -> Any:
    """``W @ H`` for an encrypted ``W`` ``(q, r)`` and an encrypted batch ``H`` ``(r, size)``: ``(q, size)``.

    Raises:
        ValueError: ``W`` has ``r`` columns but ``H`` a different number of rows.
    """
    if w.size != h.rows:
        raise ValueError(f"cannot multiply: the matrix has {w.size} columns, the batch {h.rows} rows")
    out = None
    for r in range(h.rows):
        term = column(w, r, basis) * h.take_rows([r])
        out = term if out is None else out + term
    return out
