"""The timer: medians over rounds, adaptive loops, resets outside the timed region."""
import time

import pytest

from henn.bench.timing import Budget, calibrate, interleaved, measure

TINY = Budget(target_round_s=1e-4, max_time_s=0.01, min_rounds=3, max_rounds=20, warmup_s=0.0)


def test_measure_reports_consistent_statistics():
    t = measure(lambda: sum(range(50)), TINY)
    assert 3 <= t.rounds <= 20
    assert len(t.samples) == t.rounds
    assert t.min_s == min(t.samples)
    assert t.min_s <= t.median_s <= max(t.samples)
    assert t.ops_per_s == pytest.approx(1.0 / t.median_s)


def test_measure_sees_a_sleep():
    # A 2 ms sleep can only take longer than 2 ms, never shorter.
    t = measure(lambda: time.sleep(0.002), Budget(target_round_s=1e-3, max_time_s=0.01, min_rounds=3,
                                                   max_rounds=5, warmup_s=0.0))
    assert t.min_s >= 0.002
    assert t.loops == 1


def test_fast_ops_get_many_loops_per_round():
    assert calibrate(lambda: None, TINY) > 10


def test_loops_are_capped():
    assert calibrate(lambda: None, Budget(max_loops=3, warmup_s=0.0)) <= 3


def test_reset_runs_before_every_round_outside_the_timing():
    calls = {"reset": 0, "run": 0}

    def reset():
        calls["reset"] += 1
        time.sleep(0.003)  # would dominate the median if it were timed

    def run():
        calls["run"] += 1

    t = measure(run, TINY, reset=reset)
    assert calls["reset"] == t.rounds + 1
    assert t.median_s < 0.003


def test_interleaved_times_every_entry():
    out = interleaved({"a": lambda: None, "b": lambda: sum(range(100))}, TINY)
    assert set(out) == {"a", "b"}
    assert all(t.rounds >= 3 for t in out.values())
    assert out["a"].median_s < out["b"].median_s


@pytest.mark.parametrize("kwargs", [{"min_rounds": 0}, {"min_rounds": 5, "max_rounds": 4}, {"max_loops": 0},
                                    {"max_time_s": 0}])
def test_bad_budgets_are_refused(kwargs):
    with pytest.raises(ValueError, match="cannot time"):
        Budget(**kwargs)
