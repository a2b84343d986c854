"""The BSGS plan the SEAL side of the matvec op runs, simulated with NumPy rotations: it must
compute every block of T slots times M, for any library that follows it."""
import numpy as np
import pytest

from .matvec import bsgs_plan, expected, galois_element


def run_plan(plan, x: np.ndarray) -> np.ndarray:
    rot = lambda v, k: np.roll(v, -k)  # noqa: E731  (a left rotation by k slots)
    x0 = rot(x, plan.start)
    babies = {i: rot(x0, i) for i in plan.babies}
    out = np.zeros_like(x)
    for r, pairs in plan.terms:
        out += rot(sum(babies[i] * vec for i, vec in pairs), r)
    return out


@pytest.mark.parametrize("size,slots", [(2, 8), (4, 64), (16, 256), (64, 4096)])
def test_the_plan_computes_the_block_diagonal_product(size, slots):
    rng = np.random.default_rng(size)
    matrix, x = rng.uniform(-1, 1, (size, size)), rng.uniform(-1, 1, slots)
    plan = bsgs_plan(matrix, slots)
    assert np.allclose(run_plan(plan, x), expected(x, matrix), atol=1e-12)
    # Every rotation it takes is one Galois key, and the giant steps are multiples of g.
    assert all(r % plan.giant == 0 for r, _ in plan.terms)
    assert len(plan.steps) <= 1 + (plan.giant - 1) + len(plan.terms)


def test_a_bad_matrix_is_refused():
    with pytest.raises(ValueError):
        bsgs_plan(np.zeros((3, 3)), 64)
    with pytest.raises(ValueError):
        bsgs_plan(np.zeros((4, 8)), 64)


def test_galois_elements_of_left_and_right_rotations():
    n = 16  # 8 slots
    assert galois_element(1, n) == 3
    assert galois_element(-1, n) == pow(3, 7, 32)
    assert galois_element(0, n) == 1
