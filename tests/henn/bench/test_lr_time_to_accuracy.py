"""The logistic-regression time-to-accuracy comparison's plumbing: the target, Concrete-ML's arithmetic, henn's twin.

Concrete-ML itself runs only in its own venv (benchmarks/peers/concrete_training.py); its
JSON is made up here.
"""
import pytest

pytest.importorskip("sklearn")
from benchmarks.peers import lr_time_to_accuracy as tta  # noqa: E402


def cml(accuracies, first_s=900.0, iterations=(600.0, 650.0, 320.0)) -> dict:
    curve = [{"iteration": i + 1, "accuracy": a, "differ_from_clear": 0} for i, a in enumerate(accuracies)]
    return {"curve": curve, "execute": {"first_s": first_s, "iteration_s": list(iterations),
                                        "median_iteration_s": sorted(iterations)[len(iterations) // 2]}}


def test_concrete_ml_time_is_the_first_fit_plus_the_median_iteration_for_each_later_one():
    got = tta.concrete_time_to(cml([0.90, 0.95, 0.98, 0.96, 0.98]), 0.97)
    assert got["iteration"] == 3 and got["seconds"] == 900.0 + 2 * 600.0
    assert got["share_of_later_iterations_at_goal"] == pytest.approx(2 / 3) and got["final_accuracy"] == 0.98


def test_a_curve_that_never_reaches_the_goal_has_no_time_and_a_missing_half_gives_none():
    assert tta.concrete_time_to(cml([0.90, 0.95]), 0.97) == {"iteration": None, "seconds": None,
                                                               "simulated_iterations": 2}
    assert tta.concrete_time_to({}, 0.97) is None
    assert tta.concrete_time_to({"curve": []}, 0.97) is None  # no encrypted timing: no time


def test_the_twin_reaches_one_sample_from_the_clear_model_within_the_steps_it_tries():
    Xtr, Xte, ytr, yte, clear = tta.split()
    goal = tta.target(clear, yte)
    assert goal == pytest.approx((clear == yte).mean() - 1 / 114)
    curve = tta.henn_curve(Xtr, Xte, ytr, yte, clear)
    assert [p["steps"] for p in curve] == list(range(1, tta.MAX_STEPS + 1))
    assert any(p["accuracy"] >= goal - 1e-12 for p in curve)
