"""Stochastic gradient descent over encrypted parameters."""
from __future__ import annotations

from typing import Iterable

from .module import Parameter


class SGD:
    """``W <- W - lr * grad`` with one ``mul_plain`` and one ``sub`` per parameter.

    Refreshing is not the optimiser's business: a trainer refreshes through its one
    refresh policy (:mod:`henn.training.refresh`), whatever the step does.

    Args:
        params: the parameters to update.
        lr: learning rate (a plaintext number known to the trainer).

    Raises:
        ValueError: non-positive learning rate.
    """

    def __init__(self, params: Iterable[Parameter], lr: float):
        self.params = list(params)
        if not lr > 0:
            raise ValueError(f"cannot build SGD: learning rate must be positive, got {lr}")
        self.lr = float(lr)
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
        for p in self.params:
            p.value = p.value - p.grad * self.lr

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None
