"""The runner over the plain scheme: every op checked and timed, skips and failures reported."""
import numpy as np
import pytest

import he_core
from he_core.schemes.plain import PlainScheme
from henn.bench import ops as bench_ops
from henn.bench import runner
from henn.bench.timing import Budget

TINY = Budget(target_round_s=1e-4, max_time_s=0.005, min_rounds=3, max_rounds=5, warmup_s=0.0)


class WrongAdd(PlainScheme):
    """A plain twin whose add is off by one: the runner must refuse to time it."""

    name = "wrongadd"

    def _add(self, a, b):
        return self._wrap(a, a.data + b.data + 1.0)


class BrokenMul(PlainScheme):
    name = "brokenmul"

    def _mul(self, a, b, rescale):
        raise RuntimeError("kernel exploded")


@pytest.fixture
def registered():
    he_core.register_scheme("wrongadd", WrongAdd, replace=True)
    he_core.register_scheme("brokenmul", BrokenMul, replace=True)
    yield
    he_core.unregister_scheme("wrongadd")
    he_core.unregister_scheme("brokenmul")


def test_plain_every_supported_op_is_timed_and_checked():
    records = runner.run(["plain"], [4], budget=TINY, rows=4)
    by_op = {r.op: r for r in records}
    assert set(by_op) == set(bench_ops.OP_NAMES)
    for name, rec in by_op.items():
        if name == "rotate":
            assert rec.status == "skipped" and "rotation" in rec.reason
            continue
        assert rec.status == "ok", rec.reason
        assert rec.size == 4
        assert 0 < rec.min_s <= rec.median_s
        assert rec.rounds >= 3
        assert rec.max_abs_err == pytest.approx(0.0, abs=1e-12)
    assert by_op["row_sum"].rows == 4 and by_op["add"].rows == 1


def test_records_follow_scheme_size_op_order():
    records = runner.run(["plain"], [2, 3], budget=TINY, rows=2, ops=["add", "mul"])
    assert [(r.size, r.op) for r in records] == [(2, "add"), (2, "mul"), (3, "add"), (3, "mul")]


def test_wrong_results_are_errors_not_timings(registered):
    records = runner.run(["wrongadd"], [3], budget=TINY, rows=2, ops=["add", "mul"])
    add, mul = records
    assert add.status == "error" and "exceeds" in add.reason and add.median_s is None
    assert mul.status == "ok"


def test_exceptions_become_error_records(registered):
    (rec,) = runner.run(["brokenmul"], [3], budget=TINY, ops=["mul"])
    assert rec.status == "error"
    assert "kernel exploded" in rec.reason


def test_setup_failure_marks_every_op(monkeypatch):
    def boom(*args, **kwargs):
        raise he_core.ParameterError("no parameters fit")

    monkeypatch.setattr(runner, "make_context", boom)
    records = runner.run(["plain"], [3], budget=TINY, ops=["add", "decrypt"])
    assert [r.status for r in records] == ["error", "error"]
    assert all("cannot set up plain" in r.reason for r in records)


def test_quick_selects_the_small_set(monkeypatch):
    seen = []
    monkeypatch.setattr(runner, "_bench_scheme_size",
                        lambda name, size, rows, ops, budget: seen.append((size, rows, budget)) or [])
    runner.run(["plain"], quick=True)
    assert [s for s, _, _ in seen] == list(runner.QUICK_SIZES)
    assert all(rows == runner.QUICK_ROWS and budget == runner.QUICK for _, rows, budget in seen)
    seen.clear()
    runner.run(["plain"])
    assert [s for s, _, _ in seen] == list(runner.FULL_SIZES)
    assert max(runner.QUICK_SIZES) < max(runner.FULL_SIZES)


def test_default_schemes_are_the_available_ones(monkeypatch):
    seen = []
    monkeypatch.setattr(runner, "_bench_scheme_size", lambda name, *a: seen.append(name) or [])
    runner.run(sizes=[2])
    assert seen == he_core.available_schemes()
    assert "plain" in seen


def test_check_rejects_a_wrong_shape():
    prepared = bench_ops.Prepared(run=lambda: None, output=lambda: np.zeros((1, 3)), expected=np.zeros((1, 2)))
    with pytest.raises(runner.WrongResultError, match="shape"):
        runner.check(he_core.get_scheme("plain"), prepared)


def test_check_rejects_nan():
    prepared = bench_ops.Prepared(run=lambda: None, output=lambda: np.array([[np.nan]]),
                                  expected=np.zeros((1, 1)))
    with pytest.raises(runner.WrongResultError):
        runner.check(he_core.get_scheme("plain"), prepared)


def test_check_accepts_any_listed_convention():
    got = np.array([[2.0, 3.0, 0.0]])
    roll, shift = np.array([[2.0, 3.0, 1.0]]), np.array([[2.0, 3.0, 0.0]])
    ok = bench_ops.Prepared(run=lambda: None, output=lambda: got, expected=(roll, shift))
    assert runner.check(he_core.get_scheme("plain"), ok) == 0.0
    bad = bench_ops.Prepared(run=lambda: None, output=lambda: got + 0.5, expected=(roll, shift))
    with pytest.raises(runner.WrongResultError, match="exceeds"):
        runner.check(he_core.get_scheme("plain"), bad)
