"""Learning-rate schedules (henn.schedules) and fit's use of them."""
from __future__ import annotations

import numpy as np
import pytest

from henn.schedules import SCHEDULES, ConstantLR, LinearDecayLR, LRSchedule, as_schedule, named
from henn.training.batches import check_hyper


def test_linear_decay_falls_from_lr_towards_end_and_stays_positive():
    s = LinearDecayLR(0.004, end=0.1)
    rates = np.array([s.at(k, 50) for k in range(50)])
    assert rates[0] == 0.004 and np.all(np.diff(rates) < 0) and rates.min() > 0.1 * 0.004
    np.testing.assert_allclose(rates, 0.004 * (1 - 0.9 * np.arange(50) / 50), rtol=1e-15)
    assert s.peak == 0.004 and rates.max() <= s.peak


def test_constant_and_named_schedules():
    assert [ConstantLR(0.5).at(k, 3) for k in range(3)] == [0.5] * 3
    assert isinstance(named("linear", 0.1, 0.5), LinearDecayLR) and named("linear", 0.1, 0.5).end == 0.5
    assert isinstance(named("constant", 0.1), ConstantLR) and set(SCHEDULES) == {"constant", "linear"}
    assert isinstance(as_schedule(0.3), ConstantLR) and as_schedule(0.3).peak == 0.3
    s = LinearDecayLR(0.2)
    assert as_schedule(s) is s and isinstance(s, LRSchedule)
    assert LinearDecayLR(0.2, end=1.0).at(7, 9) == 0.2  # end = 1 is constant


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "0.1", None])
def test_bad_rates_are_refused_by_name(bad):
    with pytest.raises(ValueError, match="positive finite"):
        ConstantLR(bad)
    with pytest.raises(ValueError, match="positive finite"):
        LinearDecayLR(bad)
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        check_hyper(bad, 1, 1)


@pytest.mark.parametrize("end", [0, -0.1, 1.5, float("nan"), True])
def test_bad_ends_are_refused(end):
    with pytest.raises(ValueError, match="end must lie in"):
        LinearDecayLR(0.1, end=end)


def test_positions_outside_the_run_and_unknown_names_are_refused():
    with pytest.raises(ValueError, match="outside a run"):
        LinearDecayLR(0.1).at(5, 5)
    with pytest.raises(ValueError, match="outside a run"):
        ConstantLR(0.1).at(-1, 5)
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'cosine'"):
        named("cosine", 0.1)
