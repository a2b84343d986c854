"""The small module system of henn: parameters, modules and a sequential container.

In the spirit of micrograd: a :class:`Module` computes its output on (encrypted or
plaintext) inputs together with a context of what its backward needs, and backward
turns the gradient of the loss with respect to its output into gradients of its
parameters (stored on each :class:`Parameter`) and returns the gradient with respect
to its input. Gradients are computed on ciphertexts with exactly the arithmetic the
plaintext network would use, so the ``plain`` scheme is a faithful twin.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator

from .tensor import EncTensor


@dataclasses.dataclass
class RowGrad:
    """A sparse gradient of a table: row ``i`` of ``values`` (encrypted) adds to every row ``bags[i]`` names.

    What :class:`henn.embedding.EmbeddingBag` stores: each sample's gradient lands on
    the table rows its bag named, so an update touches those rows only.
    """

    bags: list
    values: EncTensor

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
        self.grad: EncTensor | RowGrad | None = None

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={self.value.shape})"


class Module:
    """Base class of layers, activations and containers.

    Subclasses implement :meth:`forward_train` (the output and a *context*: whatever
    backward will need) and :meth:`backward_train` (the gradient with respect to the
    input, given that context). The context is returned, not stored, so a module
    without parameters (an activation) holds no per-call state and may appear
    several times in one :class:`Sequential`.

    For use on its own, calling a module (``m(x)``) keeps the context of that last
    call so that :meth:`backward` can follow; :class:`Sequential` keeps one context
    per position instead.
    """

    _ctx: Any = None

    def forward_train(self, x: Any) -> tuple[Any, Any]:  # pragma: no cover - abstract
        """``(output, context)`` for a training step."""
        raise NotImplementedError

    def backward_train(self, ctx: Any, grad: EncTensor) -> EncTensor | None:  # pragma: no cover - abstract
        """Gradient w.r.t. the input, given the context of the forward and the gradient w.r.t. the output.

        Stores parameter gradients on their :class:`Parameter`. Returns ``None`` when
        the input was plaintext data (no gradient needed).
        """
        raise NotImplementedError

    def forward(self, x: Any) -> Any:
        """The output only (inference: no context is kept)."""
        return self.forward_train(x)[0]

    def __call__(self, x: Any) -> Any:
        out, ctx = self.forward_train(x)
        self._ctx = (ctx,)
        return out

    def backward(self, grad: EncTensor) -> EncTensor | None:
        """:meth:`backward_train` with the context of the last call of this module.

        Raises:
            RuntimeError: the module has not been called yet.
        """
        if self._ctx is None:
            raise RuntimeError(f"cannot run backward of {type(self).__name__}: forward has not been called")
        return self.backward_train(self._ctx[0], grad)

    #: Multiplicative depth of :meth:`forward` on a leveled scheme (products on the longest path).
    forward_depth: int = 0
    #: Depth of the deepest single operation (forward or backward), which must fit between refreshes.
    op_depth: int = 0

    def key_sizes(self) -> set[int]:
        """Vector sizes the module's ciphertexts take (what key generation must cover)."""
        return set()

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
    """Modules applied in order; ``backward`` runs them in reverse.

    A module without parameters may appear several times (each position keeps its
    own context); a module with parameters may appear once.

    Raises:
        ValueError: no layers, or one parameterised module at two positions.
        TypeError: a layer that is not a :class:`Module`.
    """

    def __init__(self, *layers: Module):
        if not layers:
            raise ValueError("cannot build Sequential: no layers given")
        seen: dict[int, int] = {}
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"cannot build Sequential: layer {i} is a {type(layer).__name__}, not a Module")
            if layer.parameters() and id(layer) in seen:
                raise ValueError(f"cannot build Sequential: layer {i} is the same object as layer {seen[id(layer)]} "
                                 "and has parameters; build a separate layer (shared weights are not supported)")
            seen.setdefault(id(layer), i)
        self.layers = list(layers)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for i, layer in enumerate(self.layers):
            yield from layer.named_parameters(f"{prefix}{i}.")

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def forward_train(self, x: Any) -> tuple[Any, list]:
        ctxs = []
        for layer in self.layers:
            x, ctx = layer.forward_train(x)
            ctxs.append(ctx)
        return x, ctxs

    def backward_train(self, ctxs: list, grad: EncTensor) -> EncTensor | None:
        for layer, ctx in zip(reversed(self.layers), reversed(ctxs)):
            if grad is None:
                raise RuntimeError("cannot backpropagate: a layer before the last plaintext-input layer "
                                   "received no gradient")
            grad = layer.backward_train(ctx, grad)
        return grad

    @property
    def forward_depth(self) -> int:  # type: ignore[override]
        return sum(layer.forward_depth for layer in self.layers)

    @property
    def op_depth(self) -> int:  # type: ignore[override]
        return max(layer.op_depth for layer in self.layers)

    def key_sizes(self) -> set[int]:
        return set().union(*(layer.key_sizes() for layer in self.layers))

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)
