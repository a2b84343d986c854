"""Learning-rate schedules: the rate each SGD step of a run uses.

A schedule is a plaintext function of the step's position in the run, known to the
trainer, so it costs nothing under encryption: :func:`henn.training.fit.fit` folds each
step's rate into the loss gradient's one plaintext product, as it does a constant rate.

Masks that move updates into a table are sized for the largest update a run can make,
so a schedule declares its ``peak`` rate and never exceeds it.

    >>> s = LinearDecayLR(0.004, end=0.1)
    >>> s.at(0, 10), round(s.at(9, 10), 5)
    (0.004, 0.00076)
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

#: The names :func:`named` knows (``henn train sentiment --schedule``).
SCHEDULES = ("constant", "linear")


@runtime_checkable
class LRSchedule(Protocol):
    """The rate of step ``step`` (from 0) of a run of ``total`` steps, never above ``peak``."""

    peak: float

    def at(self, step: int, total: int) -> float: ...


class ConstantLR:
    """The same rate at every step."""

    def __init__(self, lr: float):
        self.peak = _positive_rate(lr, "lr")

    def at(self, step: int, total: int) -> float:
        _check_position(step, total)
        return self.peak

    def __repr__(self) -> str:
        return f"ConstantLR({self.peak!r})"


class LinearDecayLR:
    """``lr`` at the first step, falling linearly towards ``end * lr`` over the run.

    Step ``k`` of ``total`` uses ``lr (1 - (1 - end) k / total)``, so the last step's rate
    is just above ``end * lr`` and every rate stays positive.

    Args:
        lr: the first (and largest) rate.
        end: the fraction of ``lr`` the run decays towards, in (0, 1] (1 is constant).

    Raises:
        ValueError: a rate that is not positive and finite, or ``end`` outside (0, 1].
    """

    def __init__(self, lr: float, end: float = 0.1):
        self.peak = _positive_rate(lr, "lr")
        if isinstance(end, bool) or not (isinstance(end, (int, float, np.floating)) and 0.0 < end <= 1.0):
            raise ValueError(f"cannot build LinearDecayLR: end must lie in (0, 1], got {end!r}")
        self.end = float(end)

    def at(self, step: int, total: int) -> float:
        _check_position(step, total)
        return self.peak * (1.0 - (1.0 - self.end) * step / total)

    def __repr__(self) -> str:
        return f"LinearDecayLR({self.peak!r}, end={self.end!r})"


def as_schedule(lr: float | LRSchedule) -> LRSchedule:
    """``lr`` itself if it is a schedule, else a :class:`ConstantLR` of it (``ValueError`` if not a positive number)."""
    if isinstance(lr, LRSchedule) and not isinstance(lr, (int, float)):
        _positive_rate(lr.peak, "the schedule's peak")
        return lr
    return ConstantLR(lr)


def named(name: str, lr: float, end: float = 0.1) -> LRSchedule:
    """The schedule called ``name`` (one of :data:`SCHEDULES`) starting at ``lr``."""
    if name == "constant":
        return ConstantLR(lr)
    if name == "linear":
        return LinearDecayLR(lr, end)
    raise ValueError(f"unknown learning-rate schedule {name!r}; choose one of {', '.join(SCHEDULES)}")


def _positive_rate(lr: float, what: str) -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)) \
            or not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"cannot build a learning-rate schedule: {what} must be a positive finite number, got {lr!r}")
    return float(lr)


def _check_position(step: int, total: int) -> None:
    if not 0 <= step < total:
        raise ValueError(f"step {step} is outside a run of {total} steps")
