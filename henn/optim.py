"""Stochastic gradient descent over encrypted parameters."""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from .module import Parameter, RowGrad
from .tensor import EncTensor


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
            Dense parameters only: a table with a sparse gradient
            (:class:`~henn.module.RowGrad`) updates only the rows a step named.

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

    def step(self, *, prescaled: bool = False) -> None:
        """Apply the stored gradients.

        Every update is computed before any lands, so an operation refused while
        computing them (say, a budget running out) leaves every weight as it was.

        Args:
            prescaled: the gradients already carry the factor ``lr`` (the trainer folded
                it into the loss gradient, where it costs no extra product): subtract
                them as they are.

        Raises:
            RuntimeError: a parameter has no gradient (backward was not run).
            ValueError: weight decay on a weight kept in a table packing.
        """
        self.land(self.prepare(prescaled=prescaled))

    def prepare(self, *, prescaled: bool = False) -> list[Callable[[], None]]:
        """Compute every update (:meth:`step`'s first half); returns what makes each land.

        A trainer may run the landing under its own terms (the refreshes an in-place
        update needs are of the update, ``lr`` times a gradient, not of a weight).
        """
        for p in self.params:
            if p.grad is None:
                raise RuntimeError(f"cannot step: parameter {p.name!r} has no gradient; run backward first")
        keep = 1.0 - self.lr * self.weight_decay
        factor = None if prescaled else -self.lr
        return [self._update(p, keep, factor) for p in self.params]

    def land(self, landing: list[Callable[[], None]]) -> None:
        """Apply updates made by :meth:`prepare`."""
        for land in landing:
            land()
        self.steps += 1

    def _update(self, p: Parameter, keep: float, factor: float | None) -> Callable[[], None]:
        """Compute ``p``'s update; return what makes it land."""
        if isinstance(p.grad, RowGrad):
            # A table's sparse gradient: each sample's row scattered into the rows it named.
            # Weight decay would touch every row at every step, which a sparse update avoids.
            return _scatter_bags(p.value, p.grad.bags, self._scaled(p.grad.values, factor))
        if not p.value.scheme.in_default_layout(p.value.ct):
            # A weight in a table packing is updated in place, row by row: ``W - dW`` as a new
            # ciphertext would follow the gradient's lower level and packing.
            if keep != 1.0:
                raise ValueError(f"cannot step: weight decay is not supported for {p.name!r}, a weight in a "
                                 "table packing (it is updated in place, row by row)")
            step = self._scaled(p.grad, factor)
            return _scatter(p.value, [([j], step if p.value.rows == 1 else step.take_rows([j]))
                                      for j in range(p.value.rows)])
        value = p.value if keep == 1.0 else p.value * keep
        new = value - p.grad if factor is None else value + p.grad * factor

        def land() -> None:
            p.value = new
        return land

    @staticmethod
    def _scaled(g: EncTensor, factor: float | None) -> EncTensor:
        """``-g`` for a prescaled gradient, else ``factor * g`` (``factor = -lr``)."""
        return -g if factor is None else g * factor

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


def _scatter(table: EncTensor, updates: list) -> Callable[[], None]:
    """What lands ``(rows, update)`` pairs in ``table``, in place."""
    def land() -> None:
        for rows, update in updates:
            table.index_add_(rows, update)
    return land


def _scatter_bags(table: EncTensor, bags: list, update: EncTensor) -> Callable[[], None]:
    """What lands row ``b`` of ``update`` on the rows of bag ``b``, in place."""
    if table.scheme.in_default_layout(table.ct):
        # One scatter for the batch (and, for a trainer that refreshes, one landing refresh).
        return lambda: table.bag_add_(bags, update)
    # A table in its own packing takes each row moved into that packing, one bag at a time.
    # An empty bag lands a zero row on row 0: every sample asks the key holder for the same
    # moves, so the requests do not show which samples named no row.
    pairs = []
    for b, bag in enumerate(bags):
        row = update if update.rows == 1 else update.take_rows([b])
        pairs.append((bag, row) if len(bag) else (np.zeros(1, dtype=np.int64), row - row))
    return _scatter(table, pairs)
