"""Stochastic gradient descent over encrypted parameters."""
from __future__ import annotations

from typing import Callable, Iterable

from .module import Parameter
from .tensor import EncTensor


class SGD:
    """``W <- W - lr * grad`` with one ``mul_plain`` and one ``sub`` per parameter.

    Args:
        params: the parameters to update.
        lr: learning rate (a plaintext number known to the trainer).
        refresh: optional callable (e.g. :meth:`henn.keyholder.KeyHolder.refresh`)
            applied to every updated parameter every ``refresh_every`` steps, to reset
            its noise before it accumulates.
        refresh_every: steps between refreshes (``0`` never refreshes).

    Raises:
        ValueError: non-positive learning rate or negative ``refresh_every``.
    """

    def __init__(self, params: Iterable[Parameter], lr: float, *,
                 refresh: Callable[[EncTensor], EncTensor] | None = None, refresh_every: int = 1):
        self.params = list(params)
        if not lr > 0:
            raise ValueError(f"cannot build SGD: learning rate must be positive, got {lr}")
        if refresh_every < 0:
            raise ValueError(f"cannot build SGD: refresh_every must be >= 0, got {refresh_every}")
        self.lr = float(lr)
        self.refresh = refresh
        self.refresh_every = int(refresh_every)
        self.steps = 0

    def step(self) -> None:
        """Apply the stored gradients.

        Raises:
            RuntimeError: a parameter has no gradient (backward was not run).
        """
        for p in self.params:
            if p.grad is None:
                raise RuntimeError(f"cannot step: parameter {p.name!r} has no gradient; run backward first")
        self.steps += 1
        due = self.refresh is not None and self.refresh_every and self.steps % self.refresh_every == 0
        for p in self.params:
            p.value = p.value - p.grad * self.lr
            if due:
                p.value = self.refresh(p.value)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None
