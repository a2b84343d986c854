"""Wall-clock timing with warm-up, adaptive repetition and medians.

One *round* runs the operation ``loops`` times back to back and divides the elapsed
``time.perf_counter`` time by ``loops``; ``loops`` is chosen so that a round lasts
long enough for the clock's resolution not to matter. The reported figures are the
median and the minimum of the per-call times over all rounds: the median is what a
user should expect, the minimum is the least disturbed run.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
import time
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much time to spend measuring one operation.

    Attributes:
        target_round_s: aim for rounds at least this long (many calls per round for fast ops).
        max_time_s: stop adding rounds once this much time was spent timing.
        min_rounds: always time at least this many rounds, even past ``max_time_s``.
        max_rounds: never time more rounds than this.
        warmup_s: run the operation untimed for about this long first (caches, JIT, allocators).
        max_loops: cap on calls per round (in-place operations accumulate into their target).
    """

    target_round_s: float = 2e-3
    max_time_s: float = 0.5
    min_rounds: int = 5
    max_rounds: int = 200
    warmup_s: float = 0.02
    max_loops: int = 10_000

    def __post_init__(self) -> None:
        if self.min_rounds < 1 or self.max_rounds < self.min_rounds:
            raise ValueError(f"cannot time: need 1 <= min_rounds <= max_rounds, got {self.min_rounds}, "
                             f"{self.max_rounds}")
        if self.max_loops < 1 or self.target_round_s <= 0 or self.max_time_s <= 0 or self.warmup_s < 0:
            raise ValueError("cannot time: loops and times must be positive")


QUICK = Budget(target_round_s=1e-3, max_time_s=0.12, min_rounds=3, max_rounds=50, warmup_s=0.005)
FULL = Budget()


@dataclasses.dataclass(frozen=True)
class Timing:
    """Per-call times of one operation.

    Attributes:
        median_s: median over rounds of the per-call time.
        min_s: fastest round's per-call time.
        rounds: number of timed rounds.
        loops: calls per round.
        samples: per-call time of every round, in order.
    """

    median_s: float
    min_s: float
    rounds: int
    loops: int
    samples: tuple[float, ...]

    @property
    def ops_per_s(self) -> float:
        return 1.0 / self.median_s if self.median_s > 0 else math.inf


def _run_round(fn: Callable[[], object], loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops


def calibrate(fn: Callable[[], object], budget: Budget) -> int:
    """Warm ``fn`` up and return how many calls make a round of about ``budget.target_round_s``."""
    start = time.perf_counter()
    calls = 0
    one = math.inf
    # At least two warm-up calls: the first often pays for imports, JIT or allocation.
    while calls < 2 or time.perf_counter() - start < budget.warmup_s:
        one = min(one, _run_round(fn, 1))
        calls += 1
        if one > budget.target_round_s and calls >= 2:
            break
    if one <= 0:
        return budget.max_loops
    return int(min(budget.max_loops, max(1, math.ceil(budget.target_round_s / one))))


def measure(fn: Callable[[], object], budget: Budget = FULL, *,
            reset: Callable[[], object] | None = None) -> Timing:
    """Time ``fn()`` (no arguments; all set-up done by the caller beforehand).

    Args:
        fn: the operation to time.
        budget: how long to warm up and how many rounds to run.
        reset: called before every round, outside the timed region (restores the
            target of an in-place operation).

    Returns:
        A :class:`Timing` with the median and minimum per-call time.
    """
    if reset is not None:
        reset()
    loops = calibrate(fn, budget)
    samples: list[float] = []
    spent = 0.0
    while len(samples) < budget.max_rounds and (len(samples) < budget.min_rounds or spent < budget.max_time_s):
        if reset is not None:
            reset()
        per_call = _run_round(fn, loops)
        samples.append(per_call)
        spent += per_call * loops
    return Timing(statistics.median(samples), min(samples), len(samples), loops, tuple(samples))


def interleaved(fns: dict[str, Callable[[], object]], budget: Budget = FULL) -> dict[str, Timing]:
    """Time several operations round-robin so that drift in machine load hits all alike.

    Args:
        fns: name -> operation. Each gets its own calibrated loop count.
        budget: ``max_time_s`` applies to each operation separately.

    Returns:
        name -> :class:`Timing`.
    """
    loops = {name: calibrate(fn, budget) for name, fn in fns.items()}
    samples: dict[str, list[float]] = {name: [] for name in fns}
    spent = dict.fromkeys(fns, 0.0)

    def wanted(name: str) -> bool:
        n = len(samples[name])
        return n < budget.max_rounds and (n < budget.min_rounds or spent[name] < budget.max_time_s)

    while any(wanted(name) for name in fns):
        for name, fn in fns.items():
            if wanted(name):
                per_call = _run_round(fn, loops[name])
                samples[name].append(per_call)
                spent[name] += per_call * loops[name]
    return {name: Timing(statistics.median(s), min(s), len(s), loops[name], tuple(s))
            for name, s in samples.items()}
