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
        weight_decay: L2 penalty ``wd``: ``W <- (1 - lr * wd) W - lr * grad`` (one more
            plaintext product). It keeps weights, and so pre-activations, bounded where
            a polynomial activation fitted on an interval would otherwise be left.

    Raises:
        ValueError: non-positive learning rate, or a weight decay outside [0, 1 / lr).
    """

    def __init__(self, params: Iterable[Parameter], lr: float, weight_decay: float = 0.0):
        self.params = list(params)
        if not lr > 0:
            raise ValueError(f"cannot build SGD: learning rate must be positive, got {lr}")
        if not 0.0 <= weight_decay < 1.0 / lr:
            raise ValueError(f"cannot build SGD: weight_decay must lie in [0, 1 / lr), got {weight_decay}")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
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
        keep = 1.0 - self.lr * self.weight_decay
        for p in self.params:
            value = p.value if keep == 1.0 else p.value * keep
            p.value = value - p.grad * self.lr

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None
