"""Linear layers with encrypted weights, for plaintext or encrypted input.

Two input kinds, each with the weight in the layout its products read by rows:

* **plaintext input** ``X`` ``(B, in)`` (the data owner's rows): ``W`` (``in x out``)
  is encrypted as ``in`` rows of length ``out``; ``X @ W`` and ``dW = X^T @ dZ`` are
  one ``lincomb`` each.
* **encrypted input** ``H`` ``(B, in)`` (a hidden layer's activations, or data the
  client encrypted): ``W`` is encrypted transposed, ``out`` rows of length ``in``.
  Output ``j`` is the row-wise inner product of ``H`` with row ``j``; the outputs are
  placed side by side with public one-hot rows (:mod:`henn.columns`). Backward takes
  the columns of ``dZ`` the same way: ``dW^T[j] = sum_b dZ[b, j] H[b]`` and
  ``dH = sum_j dZ[:, j] W^T[j]``. With one output no placement is needed.

Bias ``b`` is an encrypted ``(1, out)`` row added to every input row.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from he_core import OsRandom, RandomSource, Scheme

from . import columns
from .columns import Basis
from .module import Module, Parameter
from .tensor import EncTensor


def _uniform01(rng: np.random.Generator | RandomSource | None, shape: tuple[int, int]) -> np.ndarray:
    """Uniform reals in [0, 1) from a numpy generator, or 53 random bits each from a CSPRNG source."""
    if isinstance(rng, np.random.Generator):
        return rng.uniform(0.0, 1.0, size=shape)
    source = rng if rng is not None else OsRandom()
    return source.integers(0, 1 << 53, int(np.prod(shape))).reshape(shape) / float(1 << 53)


class Linear(Module):
    """``y = x @ W + b`` with encrypted ``W`` and ``b``.

    Args:
        weight: encrypted ``(in, out)`` for plaintext input, ``(out, in)`` (``W``
            transposed) for encrypted input (see the module docstring).
        bias: encrypted ``(1, out)``, or ``None`` for a layer without bias.
        encrypted_input: whether the layer's input is an :class:`EncTensor`.
        output_bound: a bound on every output entry the model vouches for (declared on
            the output: a refresh of it is masked for that size; ``None``: the trainer's).

    Raises:
        ValueError: shapes do not fit together.
    """

    def __init__(self, weight: EncTensor, bias: EncTensor | None, *, encrypted_input: bool = False,
                 output_bound: float | None = None):
        out = weight.rows if encrypted_input else weight.size
        if bias is not None and bias.shape != (1, out):
            raise ValueError(f"cannot build Linear: bias shape {bias.shape} does not match {out} outputs "
                             f"(weight {weight.shape}, {'encrypted' if encrypted_input else 'plaintext'} input)")
        self.weight = Parameter(weight, "weight")
        self.bias = Parameter(bias, "bias") if bias is not None else None
        self.encrypted_input = encrypted_input
        self.output_bound = output_bound
        self._basis: Basis | None = None

    @classmethod
    def init(cls, scheme: Scheme, in_features: int, out_features: int, *, init_scale: float,
             rng: np.random.Generator | RandomSource | None = None, encrypted_input: bool = False,
             bias: float | None = 0.0, layout: Any = None,
             encryption_rng: RandomSource | None = None, output_bound: float | None = None) -> "Linear":
        """A layer with weights uniform on ``[-init_scale, init_scale]``, encrypted with the public key.

        Args:
            scheme: scheme with public keys installed.
            in_features, out_features: layer sizes.
            rng: the generator of the initial weights: default the OS CSPRNG. Whoever
                can replay a seeded generator knows the initial model, so a model that
                must stay hidden from its trainer keeps the default (tests and
                reproducible experiments pass a seeded numpy ``Generator``).
            init_scale: half-width of the uniform initialisation.
            encrypted_input: see the class docstring.
            bias: initial value of every bias entry, or ``None`` for no bias.
            layout: the weight's layout (``EncTensor.encrypt``): ``"table"`` for a layer
                that reads an :class:`~henn.embedding.EmbeddingBag`'s gathered rows, so
                both sit in the scheme's table packing (a refresh cannot move a tensor
                between packings).
            encryption_rng: the encryption noise's randomness: default the OS CSPRNG (tests
                that compare two runs' noise-driven refresh counts pass a seeded source).
            output_bound: see the class docstring.
        """
        if not (init_scale >= 0 and np.isfinite(init_scale)):
            raise ValueError(f"cannot build Linear: init_scale must be finite and >= 0, got {init_scale!r}")
        w = init_scale * (2.0 * _uniform01(rng, (in_features, out_features)) - 1.0)
        if encrypted_input:
            w = w.T
        b = None if bias is None else EncTensor.encrypt(scheme, np.full((1, out_features), float(bias)),
                                                        rng=encryption_rng)
        return cls(EncTensor.encrypt(scheme, w, layout=layout, rng=encryption_rng), b, encrypted_input=encrypted_input,
                   output_bound=output_bound)

    @property
    def in_features(self) -> int:
        return self.weight.value.size if self.encrypted_input else self.weight.value.rows

    @property
    def out_features(self) -> int:
        return self.weight.value.rows if self.encrypted_input else self.weight.value.size

    @property
    def basis(self) -> Basis:
        """The public one-hot rows of the weight's scheme (made on first use)."""
        scheme = self.weight.value.scheme
        if self._basis is None or self._basis.scheme is not scheme:
            self._basis = Basis(scheme, EncTensor)
        return self._basis

    @property
    def forward_depth(self) -> int:  # type: ignore[override]
        return 2 if self.encrypted_input and self.out_features > 1 else 1

    @property
    def op_depth(self) -> int:  # type: ignore[override]
        return 2 if self.encrypted_input and self.out_features > 1 else 1

    def key_sizes(self) -> set[int]:
        return {1, self.in_features, self.out_features}

    def forward_train(self, x: Any) -> tuple[EncTensor, Any]:
        """``(x @ W + b, x)``; ``x`` is a plaintext ``(B, in)`` array or an encrypted one.

        Raises:
            TypeError: the input kind does not match ``encrypted_input``.
            ValueError: the input width is not ``in_features``.
        """
        if self.encrypted_input:
            if not isinstance(x, EncTensor):
                raise TypeError(f"cannot run Linear: expected an encrypted input, got {type(x).__name__}")
            if x.size != self.in_features:
                raise ValueError(f"cannot run Linear: input width {x.size}, layer takes {self.in_features}")
            z = columns.matmul(x, self.weight.value, self.basis)
        else:
            if isinstance(x, EncTensor):
                raise TypeError("cannot run Linear: this layer takes plaintext input; build it with "
                                "encrypted_input=True for encrypted input")
            x = np.atleast_2d(np.asarray(x, dtype=np.float64))
            if x.ndim != 2 or x.shape[1] != self.in_features:
                raise ValueError(f"cannot run Linear: input width {x.shape[-1]}, layer takes {self.in_features}")
            z = x @ self.weight.value
        z = z + self.bias.value if self.bias is not None else z
        return (z if self.output_bound is None else z.declare_bound(self.output_bound)), x

    def backward_train(self, x: Any, grad: EncTensor) -> EncTensor | None:
        """Store ``dW`` and ``db`` on the parameters; return ``dX`` (``None`` for plaintext input)."""
        if self.bias is not None:
            self.bias.grad = grad.row_sum()
        if not self.encrypted_input:
            self.weight.grad = x.T @ grad
            return None
        w = self.weight.value
        if w.rows == 1:
            # dz has shape (B, 1): a size-1 ciphertext per row scales the whole input row.
            self.weight.grad = (x * grad).row_sum()
            return grad * w
        cols = columns.columns(grad, self.basis)
        self.weight.grad = columns.concat_rows([(x * c).row_sum() for c in cols])
        dx = None
        for j, c in enumerate(cols):
            term = c * w.take_rows([j])
            dx = term if dx is None else dx + term
        return dx
