"""The small module system of henn: parameters, modules and a sequential container.

In the spirit of micrograd: a :class:`Module` computes ``forward`` on (encrypted or
plaintext) inputs, caches what its ``backward`` needs, and ``backward`` turns the
gradient of the loss with respect to its output into gradients of its parameters
(stored on each :class:`Parameter`) and returns the gradient with respect to its
input. Gradients are computed on ciphertexts with exactly the arithmetic the
plaintext network would use, so the ``plain`` scheme is a faithful twin.
"""
from __future__ import annotations

from typing import Any, Iterator

from .tensor import EncTensor


class Parameter:
    """A trainable encrypted tensor and its latest gradient.

    Attributes:
        name: dotted name inside the model (``"0.weight"``).
        value: the encrypted value.
        grad: the encrypted gradient of the last ``backward``, or ``None``.
    """

    __slots__ = ("name", "value", "grad")

    def __init__(self, value: EncTensor, name: str = ""):
        if not isinstance(value, EncTensor):
            raise TypeError(f"cannot make a Parameter: expected an EncTensor, got {type(value).__name__}")
        self.name = name
        self.value = value
        self.grad: EncTensor | None = None

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={self.value.shape})"


class Module:
    """Base class: ``__call__`` runs :meth:`forward`; subclasses implement ``backward``."""

    def forward(self, x: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad: EncTensor) -> EncTensor | None:  # pragma: no cover - abstract
        """Gradient w.r.t. the input, given the gradient w.r.t. the output.

        Returns ``None`` when the input was plaintext data (no gradient needed).
        """
        raise NotImplementedError

    def __call__(self, x: Any) -> Any:
        return self.forward(x)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``(dotted_name, parameter)`` pairs, in a stable order."""
        for name, value in vars(self).items():
            full = f"{prefix}{name}"
            if isinstance(value, Parameter):
                yield full, value
            elif isinstance(value, Module):
                yield from value.named_parameters(full + ".")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None


class Sequential(Module):
    """Modules applied in order; ``backward`` runs them in reverse."""

    def __init__(self, *layers: Module):
        if not layers:
            raise ValueError("cannot build Sequential: no layers given")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"cannot build Sequential: layer {i} is a {type(layer).__name__}, not a Module")
        self.layers = list(layers)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for i, layer in enumerate(self.layers):
            yield from layer.named_parameters(f"{prefix}{i}.")

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, grad: EncTensor) -> EncTensor | None:
        for layer in reversed(self.layers):
            if grad is None:
                raise RuntimeError("cannot backpropagate: a layer before the last plaintext-input layer "
                                   "received no gradient")
            grad = layer.backward(grad)
        return grad

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)
