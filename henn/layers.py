"""Linear layers with encrypted weights.

Two input kinds are supported, matching what the models need:

* **plaintext input** ``X`` of shape ``(B, in)`` (the data owner's rows): the weight
  ``W`` (``in x out``) is an encrypted matrix of ``in`` rows of length ``out``, and
  ``X @ W`` is one ``lincomb`` call. ``dW = X^T @ dZ`` is again a ``lincomb``.
* **encrypted input** ``H`` of shape ``(B, in)`` with a single output unit: the
  weight is stored as one encrypted row vector ``w`` of length ``in`` (the weight
  column, transposed) and ``H @ w^T`` is a row-wise ``inner``. ``dw = sum_b dz_b H_b``
  and ``dH = dz w`` are products of a size-1 ciphertext with a vector ciphertext.

Bias ``b`` is an encrypted ``(1, out)`` row added to every input row.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from he_core import Scheme

from .module import Module, Parameter
from .tensor import EncTensor


class Linear(Module):
    """``y = x @ W + b`` with encrypted ``W`` and ``b``.

    Args:
        weight: encrypted ``(in, out)`` for plaintext input, ``(1, in)`` for
            encrypted input (see the module docstring).
        bias: encrypted ``(1, out)``.
        encrypted_input: whether the layer's input is an :class:`EncTensor`.

    Raises:
        ValueError: shapes do not fit together.
    """

    def __init__(self, weight: EncTensor, bias: EncTensor, *, encrypted_input: bool = False):
        out = 1 if encrypted_input else weight.size
        if encrypted_input and weight.rows != 1:
            raise ValueError(f"cannot build Linear: an encrypted-input layer has one output and stores its "
                             f"weight as a (1, in) row, got shape {weight.shape}")
        if bias.shape != (1, out):
            raise ValueError(f"cannot build Linear: bias shape {bias.shape} does not match {out} outputs")
        self.weight = Parameter(weight, "weight")
        self.bias = Parameter(bias, "bias")
        self.encrypted_input = encrypted_input
        self._x: Any = None

    @classmethod
    def init(cls, scheme: Scheme, in_features: int, out_features: int, *, rng: np.random.Generator,
             init_scale: float, encrypted_input: bool = False, bias: float = 0.0) -> "Linear":
        """A layer with weights uniform on ``[-init_scale, init_scale]``, encrypted with the public key.

        The initial values are model hyper-parameters, not key material, so they come
        from the caller's seeded numpy ``Generator`` (reproducible runs); encryption
        noise comes from the scheme's default CSPRNG.

        Args:
            scheme: scheme with public keys installed.
            in_features, out_features: layer sizes.
            rng: seeded numpy generator for the initial weights.
            init_scale: half-width of the uniform initialisation.
            encrypted_input: see the class docstring (requires ``out_features == 1``).
            bias: initial value of every bias entry.
        """
        if encrypted_input and out_features != 1:
            raise ValueError(f"cannot build Linear: encrypted input needs out_features == 1, got {out_features}")
        w = rng.uniform(-init_scale, init_scale, size=(in_features, out_features))
        if encrypted_input:
            w = w.T
        b = np.full((1, out_features), float(bias))
        return cls(EncTensor.encrypt(scheme, w), EncTensor.encrypt(scheme, b), encrypted_input=encrypted_input)

    @property
    def in_features(self) -> int:
        return self.weight.value.size if self.encrypted_input else self.weight.value.rows

    @property
    def out_features(self) -> int:
        return 1 if self.encrypted_input else self.weight.value.size

    def forward(self, x: Any) -> EncTensor:
        """Compute ``x @ W + b``; ``x`` is a plaintext ``(B, in)`` array or an encrypted one.

        Raises:
            TypeError: the input kind does not match ``encrypted_input``.
            ValueError: the input width is not ``in_features``.
        """
        if self.encrypted_input:
            if not isinstance(x, EncTensor):
                raise TypeError(f"cannot run Linear: expected an encrypted input, got {type(x).__name__}")
            if x.size != self.in_features:
                raise ValueError(f"cannot run Linear: input width {x.size}, layer takes {self.in_features}")
            z = x.inner(self.weight.value)
        else:
            if isinstance(x, EncTensor):
                raise TypeError("cannot run Linear: this layer takes plaintext input; build it with "
                                "encrypted_input=True for encrypted input")
            x = np.atleast_2d(np.asarray(x, dtype=np.float64))
            if x.shape[1] != self.in_features:
                raise ValueError(f"cannot run Linear: input width {x.shape[1]}, layer takes {self.in_features}")
            z = x @ self.weight.value
        self._x = x
        return z + self.bias.value

    def backward(self, grad: EncTensor) -> EncTensor | None:
        """Store ``dW`` and ``db`` on the parameters; return ``dX`` (``None`` for plaintext input)."""
        if self._x is None:
            raise RuntimeError("cannot run backward: forward has not been called")
        x = self._x
        self.bias.grad = grad.row_sum()
        if not self.encrypted_input:
            self.weight.grad = x.T @ grad
            return None
        # dz has shape (B, 1): a size-1 ciphertext per row scales the whole input row.
        self.weight.grad = (x * grad).row_sum()
        return grad * self.weight.value
