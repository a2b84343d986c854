"""The guarded view of a scheme: each operation is charged its depth, and worn operands are refreshed first."""
from __future__ import annotations

import numpy as np
import pytest

import he_core
from he_core.scheme import Budget
from henn.tensor import EncTensor

from .conftest import LEVELS, LeveledPlain, guarded_env


@pytest.mark.parametrize("products", [1, 3, 4, 7, 10])
def test_a_chain_of_products_refreshes_exactly_when_levels_run_out(leveled, products):
    scheme, kh, policy, guarded = guarded_env(leveled)
    x = EncTensor.encrypt(guarded, np.array([[0.5, -1.25, 2.0]]))
    for _ in range(products):
        x = x * 1.0625
    # LEVELS products per fresh ciphertext: refreshes before product LEVELS + 1, 2 LEVELS + 1, ...
    assert policy.op_refreshes == kh.refresh_rounds == (products - 1) // LEVELS
    assert policy.retry_refreshes == 0
    np.testing.assert_allclose(kh.release(x), np.array([[0.5, -1.25, 2.0]]) * 1.0625 ** products, rtol=1e-12)


def test_without_the_guard_the_same_chain_fails(leveled):
    scheme, _kh, _policy, _guarded = guarded_env(leveled)
    x = EncTensor.encrypt(scheme, np.array([[0.5]]))
    with pytest.raises(he_core.LevelExhaustedError):
        for _ in range(LEVELS + 1):
            x = x * 2.0


def test_polyval_refreshes_only_a_worn_operand(leveled):
    scheme, kh, policy, guarded = guarded_env(leveled)
    coeffs = [0.5, 0.25, 0.0, -0.01]  # degree 3: depth 3 = LEVELS
    fresh = EncTensor.encrypt(guarded, np.array([[1.5, -2.0]]))
    fresh.polyval(coeffs)
    assert policy.op_refreshes == 0
    worn = fresh * 1.0  # one level used
    out = worn.polyval(coeffs)
    assert policy.op_refreshes == 1
    np.testing.assert_allclose(kh.release(out), np.polynomial.polynomial.polyval(np.array([[1.5, -2.0]]), coeffs))


def test_a_reused_operand_is_refreshed_once(leveled):
    scheme, kh, policy, guarded = guarded_env(leveled)
    worn = EncTensor.encrypt(guarded, np.array([[1.0, 2.0]])) * 1.0 * 1.0 * 1.0  # level 0
    a = worn * 2.0
    b = worn * 3.0
    assert policy.op_refreshes == 1 and np.allclose(kh.release(b), 3 * kh.release(a) / 2)
    policy.new_step()
    worn * 4.0
    assert policy.op_refreshes == 2


def test_broadcasting_operands_are_charged_one_level(leveled):
    scheme, kh, policy, guarded = guarded_env(leveled)
    rows = EncTensor.encrypt(guarded, np.ones((3, 2))) * 1.0 * 1.0  # level 1
    bias = EncTensor.encrypt(guarded, np.ones((1, 2))) * 1.0 * 1.0  # level 1
    rows + bias
    assert policy.op_refreshes == 0
    (rows * 1.0) + (bias * 1.0)  # both at level 0 and they broadcast: both refreshed
    assert policy.op_refreshes == 2


def test_the_plain_twin_is_never_refreshed():
    scheme, kh, policy, guarded = guarded_env("plain")
    x = EncTensor.encrypt(guarded, np.array([[0.5]]))
    for _ in range(20):
        x = (x * x).polyval([0.1, 0.9])
    assert policy.op_refreshes == 0 and kh.refresh_rounds == 0 and policy.checks > 0


def test_row_operations_are_charged_one_mask_level(leveled):
    scheme, kh, policy, guarded = guarded_env(leveled)
    x = EncTensor.encrypt(guarded, np.arange(6.0).reshape(3, 2)) * 1.0 * 1.0  # level 1
    x.row_sum()
    x.take_rows([2, 0])
    assert policy.op_refreshes == 0
    worn = x * 1.0  # level 0
    total = worn.row_sum()
    picked = worn.take_rows([2, 0])
    assert policy.op_refreshes == 1  # the second use takes the cached refresh
    np.testing.assert_allclose(kh.release(total), [[6.0, 9.0]])
    np.testing.assert_allclose(kh.release(picked), [[4.0, 5.0], [0.0, 1.0]])


class OptimisticLeveled(LeveledPlain):
    """Reports one level more than it has, so the policy's estimate is wrong."""

    name = "optimistic_leveled"

    def _budget(self, a):
        return Budget(kind="levels", remaining=a.meta["level"] + 1)


def test_a_wrong_estimate_is_caught_by_one_counted_retry():
    he_core.register_scheme(OptimisticLeveled.name, OptimisticLeveled, replace=True)
    try:
        scheme, kh, policy, guarded = guarded_env(OptimisticLeveled.name)
        x = EncTensor.encrypt(guarded, np.array([[2.0]])) * 1.0 * 1.0 * 1.0  # level 0, reported as 1
        y = x * 3.0
    finally:
        he_core.unregister_scheme(OptimisticLeveled.name)
    assert policy.op_refreshes == 0 and policy.retry_refreshes == 1 == kh.refresh_rounds
    np.testing.assert_allclose(kh.release(y), [[6.0]])


@pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")
def test_a_forecast_is_used_for_rescaled_products_only():
    """vhe forecasts a rescaled product's noise; without the rescale the scale's factor stays in the noise,
    so the guard drops the forecast and the policy charges its own rate per level."""
    scheme, kh, policy, guarded = guarded_env("vhe")
    seen = []
    real = policy.ensure

    def spy(s, ct, depth, extra_bits=0.0, masks=0, noise_bits=None):
        seen.append(noise_bits)
        return real(s, ct, depth, extra_bits, masks, noise_bits)

    policy.ensure = spy
    a = scheme.encrypt(np.full((1, 1), 0.01))  # small: an unrescaled product keeps the scale's 16 bits
    for op in (lambda r: guarded.mul(a, a, rescale=r), lambda r: guarded.square(a, rescale=r),
               lambda r: guarded.mul_plain(a, 0.5, rescale=r)):
        seen.clear()
        op(True)
        assert seen and all(b is not None and b >= 0 for b in seen)
        seen.clear()
        op(False)
        assert seen and all(b is None for b in seen)
