"""Sparse plaintext input into an encrypted table: bags of indices and the layer that sums their rows.

A text model's first layer multiplies a bag-of-words row (0/1 over a vocabulary of
thousands) by a ``(vocab, hidden)`` weight. Dense, that is ``vocab`` plaintext
products per sample; sparse, it is the sum of the table rows the sample names, which a
scheme does as one gather (:meth:`he_core.Scheme.row_sum`) and, backward, one scatter
(:meth:`he_core.Scheme.index_add_`) of the gradient into the same rows. Only the rows
a sample names are touched, so a step costs the words of the batch, not the vocabulary.

* :class:`Bags` — the sparse input: one sorted array of row indices per sample (a
  repeated index counts several times), built from lists of index arrays or from a
  SciPy sparse matrix of non-negative integer counts (``CountVectorizer`` output).
* :class:`EmbeddingBag` — ``h_b = sum_{r in bag_b} W[r]`` with ``W`` encrypted in the
  scheme's *table* layout (``EncTensor.encrypt(..., layout="table")``), the layout
  whose gathers and scatters are cheapest (for CKKS: coefficient-packed, no level).

The gradient of ``W`` is sparse: :class:`~henn.module.RowGrad`, one encrypted row per
sample and the rows it lands on; :class:`~henn.optim.SGD` applies it in place.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from he_core import Scheme

from .module import Module, Parameter, RowGrad
from .tensor import EncTensor


class Bags:
    """Per sample, the table rows it names (the plaintext input of :class:`EmbeddingBag`).

    Args:
        bags: one 1-D array of non-negative integer indices per sample (any order;
            stored sorted). An empty bag is allowed: it maps to a zero row.
        width: the number of table rows the indices address (the vocabulary size).

    Raises:
        ValueError: no samples, a non-integer or multi-dimensional bag, or an index
            outside ``[0, width)``.
    """

    def __init__(self, bags: Iterable[Any], width: int):
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
            raise ValueError(f"cannot build Bags: width must be a positive integer, got {width!r}")
        self.width = int(width)
        self.bags = [self._checked(b, i) for i, b in enumerate(bags)]
        if not self.bags:
            raise ValueError("cannot build Bags: no samples given")

    def _checked(self, bag: Any, i: int) -> np.ndarray:
        arr = np.asarray(bag)
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"cannot build Bags: sample {i} must be a 1-D array of integer indices, got "
                             f"dtype {arr.dtype} and shape {arr.shape}")
        arr = np.sort(arr.astype(np.int64))
        if arr.size and (arr[0] < 0 or arr[-1] >= self.width):
            raise ValueError(f"cannot build Bags: sample {i} has an index outside [0, {self.width})")
        return arr

    @classmethod
    def from_sparse(cls, matrix: Any) -> "Bags":
        """Bags from a SciPy sparse ``(n, width)`` matrix of non-negative integer counts.

        Raises:
            ValueError: a negative or fractional entry (weighted bags are not supported).
        """
        csr = matrix.tocsr()
        data = np.asarray(csr.data, dtype=np.float64)
        if data.size and (np.any(data < 0) or np.any(data != np.round(data))):
            raise ValueError("cannot build Bags: a sparse input must hold non-negative integer counts "
                             "(weighted bags, e.g. tf-idf, are not supported)")
        counts = data.astype(np.int64)
        out = []
        for b in range(csr.shape[0]):
            lo, hi = csr.indptr[b], csr.indptr[b + 1]
            out.append(np.repeat(np.asarray(csr.indices[lo:hi], dtype=np.int64), counts[lo:hi]))
        return cls(out, csr.shape[1])

    def __len__(self) -> int:
        return len(self.bags)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.bags[i]

    def take(self, idx: Sequence[int] | np.ndarray) -> "Bags":
        """The samples at ``idx``, in that order."""
        out = Bags.__new__(Bags)
        out.width, out.bags = self.width, [self.bags[int(i)] for i in np.asarray(idx).reshape(-1)]
        return out

    def dense(self) -> np.ndarray:
        """The ``(n, width)`` count matrix (for plaintext references and small data)."""
        out = np.zeros((len(self), self.width))
        for b, bag in enumerate(self.bags):
            np.add.at(out[b], bag, 1.0)
        return out

    def __repr__(self) -> str:
        return f"Bags({len(self)} samples, width {self.width})"


class EmbeddingBag(Module):
    """``h_b = sum of W[r] over the rows r in sample b's bag``, with ``W`` an encrypted table.

    Args:
        weight: the encrypted ``(width, out)`` table, in the scheme's table layout.
        output_bound: a bound on every output entry the model vouches for (declared on
            the output: a refresh of it is masked for that size; ``None``: the trainer's).

    The output is one encrypted row per sample; the gradient reaches ``W`` as one
    scatter per batch into exactly the rows each sample named (see the module docstring).
    """

    def __init__(self, weight: EncTensor, *, output_bound: float | None = None):
        self.weight = Parameter(weight, "weight")
        self.output_bound = output_bound

    @classmethod
    def init(cls, scheme: Scheme, width: int, out_features: int, *, values: np.ndarray | None = None,
             rng: Any = None) -> "EmbeddingBag":
        """A table of zeros (every row starts neutral) or of ``values``, encrypted with the public key.

        Raises:
            ValueError: ``values`` of a shape other than ``(width, out_features)``.
        """
        table = np.zeros((width, out_features)) if values is None else np.asarray(values, dtype=np.float64)
        if table.shape != (width, out_features):
            raise ValueError(f"cannot build EmbeddingBag: values of shape {table.shape}, expected "
                             f"({width}, {out_features})")
        return cls(EncTensor.encrypt(scheme, table, rng=rng, layout="table"))

    @property
    def in_features(self) -> int:
        return self.weight.value.rows

    @property
    def out_features(self) -> int:
        return self.weight.value.size

    def key_sizes(self) -> set[int]:
        return {1, self.out_features}

    def forward_train(self, x: Any) -> tuple[EncTensor, Bags]:
        """``(H, bags)``: ``H`` is ``(len(bags), out)``, one gathered sum per sample.

        Raises:
            TypeError: the input is not :class:`Bags`.
            ValueError: its width is not the table's row count.
        """
        if not isinstance(x, Bags):
            raise TypeError(f"cannot run EmbeddingBag: expected Bags (sparse row indices), got {type(x).__name__}")
        if x.width != self.in_features:
            raise ValueError(f"cannot run EmbeddingBag: the bags address {x.width} rows, the table has "
                             f"{self.in_features}")
        out = self.weight.value.bag_sum(x.bags)
        return (out if self.output_bound is None else out.declare_bound(self.output_bound)), x

    def backward_train(self, bags: Bags, grad: EncTensor) -> None:
        """Store the sparse gradient: row ``b`` of ``grad`` lands on the rows of bag ``b``."""
        if grad.rows != len(bags):
            raise ValueError(f"cannot backpropagate EmbeddingBag: {grad.rows} gradient rows for {len(bags)} samples")
        self.weight.grad = RowGrad(bags.bags, grad)
        return None
