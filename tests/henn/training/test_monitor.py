"""henn.training.monitor.AggregateMonitor: only sums over at least k samples are released, per pass.

A recording stand-in for the key holder shows exactly which sums (of which samples) the
monitor asks to release; the plaintext twin computes the sums.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import he_core
from henn.training.monitor import AggregateMonitor


class Recorder:
    """A key holder that releases exact sums and records each request."""

    def __init__(self, answer=True):
        self.scheme = he_core.get_scheme("plain")
        self.scheme.keygen(rng=he_core.SeededRandom(1))
        self.requests, self.answer = [], answer

    def release_aggregate(self, ct, count, *, value_bound=None, scale=1.0):
        total = float(ct.data.sum())
        self.requests.append((total, count, value_bound, scale))
        return total if self.answer else None


@given(values=st.lists(st.floats(-10, 10), min_size=1, max_size=30), k=st.integers(1, 8))
@settings(max_examples=40, deadline=None)
def test_each_release_is_the_mean_of_k_or_more_consecutive_samples(values, k):
    kh = Recorder()
    mon = AggregateMonitor(kh, k, "loss", sample_bound=10.0)
    for v in values:
        mon.add(kh.scheme.encrypt([[v]]))
    mon.flush()
    blocks = [values[i: i + k] for i in range(0, len(values) - len(values) % k, k)]
    assert [r["count"] for r in mon.records] == [k] * len(blocks)
    for record, block, (total, count, bound, _) in zip(mon.records, blocks, kh.requests):
        assert count == k >= 1 and bound == 10.0 * k
        assert record["loss"] == pytest.approx(np.sum(block) / k, abs=1e-9)
    assert [r["samples"] for r in mon.records] == [k * (i + 1) for i in range(len(blocks))]


def test_a_tail_below_k_is_never_released_and_a_pass_drops_it():
    kh = Recorder()
    mon = AggregateMonitor(kh, 3)
    for v in (1.0, 2.0):
        assert mon.add(kh.scheme.encrypt([[v]])) is None
    assert mon.flush() is None and kh.requests == []
    mon.end_pass()
    for v in (10.0, 20.0, 30.0):
        record = mon.add(kh.scheme.encrypt([[v]]))
    assert record == {"samples": 5, "count": 3, "loss": 20.0}  # the dropped tail is not in the sum


def test_a_term_counting_several_samples_and_a_term_scale():
    kh = Recorder()
    mon = AggregateMonitor(kh, 4, "err", term_scale=0.5)
    record = mon.add(kh.scheme.encrypt([[2.0, 2.0]]), count=4)
    assert record["err"] == pytest.approx(4.0 / (0.5 * 4)) and kh.requests[0][3] == 0.5


def test_a_remote_key_holder_answers_nothing():
    mon = AggregateMonitor(Recorder(answer=False), 1)
    assert mon.add(mon.keyholder.scheme.encrypt([[1.0]]))["loss"] is None


@pytest.mark.parametrize("kw", [dict(k=0), dict(k=True), dict(k=2.0), dict(k=2, sample_bound=0.0),
                                dict(k=2, sample_bound=-1.0)])
def test_bad_settings_are_refused(kw):
    with pytest.raises(ValueError, match="cannot monitor"):
        AggregateMonitor(Recorder(), **kw)
