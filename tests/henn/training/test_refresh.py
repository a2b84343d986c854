"""The budget-driven refresh policy: refreshes exactly when an operation would exhaust the budget.

A fake *leveled* scheme (the plaintext twin plus a level counter: every product uses
one level, a product at level 0 raises ``LevelExhaustedError``) is registered through
``he_core.register_scheme`` so the tests are fast and the counts are exact.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import he_core
from he_core.scheme import Budget
from henn.keyholder import KeyHolder
from henn.tasks.xor import XorConfig
from henn.tensor import EncTensor
from henn.training.refresh import GuardedScheme, RefreshPolicy, polyval_depth
from henn.tasks.xor import setup, train_xor

from ..conftest import vhe_available

LEVELS = 3


class LeveledPlain(he_core.scheme_class("plain")):
    """The plaintext twin with CKKS-like level accounting (fresh ciphertexts have ``LEVELS``)."""

    name = "leveled_plain"

    def _wrap(self, like, data, level=None):
        ct = super()._wrap(like, data)
        if level is None:
            level = LEVELS if isinstance(like, str) else like.meta["level"]
        ct.meta["level"] = level
        return ct

    @staticmethod
    def _use(*cts):
        level = min(c.meta["level"] for c in cts)
        if level == 0:
            raise he_core.LevelExhaustedError("cannot multiply: level 0, no level left to rescale")
        return level - 1

    def _add(self, a, b):
        return self._wrap(a, a.data + b.data, min(a.meta["level"], b.meta["level"]))

    def _sub(self, a, b):
        return self._wrap(a, a.data - b.data, min(a.meta["level"], b.meta["level"]))

    def _mul_plain(self, a, values, rescale):
        return self._wrap(a, a.data * values, self._use(a))

    def _mul(self, a, b, rescale):
        return self._wrap(a, a.data * b.data, self._use(a, b))

    def _inner(self, a, b, rescale):
        return self._wrap(a, np.sum(a.data * b.data, axis=1, keepdims=True), self._use(a, b))

    def _lincomb(self, weights, a, rescale):
        return self._wrap(a, weights @ a.data, self._use(a))

    def _budget(self, a):
        return Budget(kind="levels", remaining=a.meta["level"], level=a.meta["level"])

    def _reencrypt_masked(self, masked, target, key, rng):
        return self._wrap(masked, masked.data.copy(), LEVELS)  # a refresh restores every level


@pytest.fixture(scope="module")
def leveled():
    he_core.register_scheme(LeveledPlain.name, LeveledPlain, replace=True)
    yield LeveledPlain.name
    he_core.unregister_scheme(LeveledPlain.name)


def _env(name):
    scheme, kh = setup(name)
    policy = RefreshPolicy(kh)
    return scheme, kh, policy, GuardedScheme(scheme, policy)


# ---------------------------------------------------------------------------- the decision
@pytest.mark.parametrize("remaining, depth, masks, expect", [
    (0, 1, 0, True), (1, 1, 0, False), (1, 2, 0, True), (2, 2, 0, False), (0, 0, 0, False),
    (1, 1, 1, True), (2, 1, 1, False), (5, 3, 0, False),
])
def test_levels_decision(remaining, depth, masks, expect):
    policy = RefreshPolicy(KeyHolder(*_plain_pair()))
    assert policy.needs_refresh({"kind": "levels", "remaining": remaining}, depth, masks=masks) is expect


@pytest.mark.parametrize("remaining, depth, extra, expect", [
    (9.9, 1, 0.0, True), (10.0, 1, 0.0, False), (1.9, 0, 0.0, True), (2.0, 0, 0.0, False),
    (3.5, 0, 2.0, True), (4.0, 0, 2.0, False), (17.9, 2, 0.0, True),
])
def test_noise_decision(remaining, depth, extra, expect):
    policy = RefreshPolicy(KeyHolder(*_plain_pair()), noise_bits_per_level=8.0, noise_floor_bits=2.0)
    assert policy.needs_refresh({"kind": "noise", "remaining": remaining}, depth, extra) is expect


def test_unbounded_never_and_unknown_kind_refused():
    policy = RefreshPolicy(KeyHolder(*_plain_pair()))
    assert not policy.needs_refresh({"kind": "unbounded", "remaining": math.inf}, 50)
    with pytest.raises(ValueError, match="unknown budget kind 'bits'"):
        policy.needs_refresh({"kind": "bits", "remaining": 3}, 1)
    with pytest.raises(ValueError, match="noise_floor_bits"):
        RefreshPolicy(policy.keyholder, noise_floor_bits=-1)


def test_polyval_depth_follows_the_interface_bound():
    assert [polyval_depth(c) for c in ([1.0], [0, 1], [0, 0, 1], [1, 2, 0, 3], [0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 1])] \
        == [1, 1, 2, 3, 3, 4]


def _plain_pair():
    scheme, kh = setup("plain")
    return scheme, kh.export_secret_key()


# ---------------------------------------------------------------------------- guarded operations
@pytest.mark.parametrize("products", [1, 3, 4, 7, 10])
def test_a_chain_of_products_refreshes_exactly_when_levels_run_out(leveled, products):
    scheme, kh, policy, guarded = _env(leveled)
    x = EncTensor.encrypt(guarded, np.array([[0.5, -1.25, 2.0]]))
    for _ in range(products):
        x = x * 1.0625
    # LEVELS products per fresh ciphertext: refreshes before product LEVELS + 1, 2 LEVELS + 1, ...
    assert policy.op_refreshes == kh.refresh_rounds == (products - 1) // LEVELS
    assert policy.retry_refreshes == 0
    np.testing.assert_allclose(kh.release(x), np.array([[0.5, -1.25, 2.0]]) * 1.0625 ** products, rtol=1e-12)


def test_without_the_guard_the_same_chain_fails(leveled):
    scheme, _kh, _policy, _guarded = _env(leveled)
    x = EncTensor.encrypt(scheme, np.array([[0.5]]))
    with pytest.raises(he_core.LevelExhaustedError):
        for _ in range(LEVELS + 1):
            x = x * 2.0


def test_polyval_refreshes_only_a_worn_operand(leveled):
    scheme, kh, policy, guarded = _env(leveled)
    coeffs = [0.5, 0.25, 0.0, -0.01]  # degree 3: depth 3 = LEVELS
    fresh = EncTensor.encrypt(guarded, np.array([[1.5, -2.0]]))
    fresh.polyval(coeffs)
    assert policy.op_refreshes == 0
    worn = fresh * 1.0  # one level used
    out = worn.polyval(coeffs)
    assert policy.op_refreshes == 1
    np.testing.assert_allclose(kh.release(out), np.polynomial.polynomial.polyval(np.array([[1.5, -2.0]]), coeffs))


def test_a_reused_operand_is_refreshed_once(leveled):
    scheme, kh, policy, guarded = _env(leveled)
    worn = EncTensor.encrypt(guarded, np.array([[1.0, 2.0]])) * 1.0 * 1.0 * 1.0  # level 0
    a = worn * 2.0
    b = worn * 3.0
    assert policy.op_refreshes == 1 and np.allclose(kh.release(b), 3 * kh.release(a) / 2)
    policy.new_step()
    worn * 4.0
    assert policy.op_refreshes == 2


def test_broadcasting_operands_are_charged_one_level(leveled):
    scheme, kh, policy, guarded = _env(leveled)
    rows = EncTensor.encrypt(guarded, np.ones((3, 2))) * 1.0 * 1.0  # level 1
    bias = EncTensor.encrypt(guarded, np.ones((1, 2))) * 1.0 * 1.0  # level 1
    rows + bias
    assert policy.op_refreshes == 0
    (rows * 1.0) + (bias * 1.0)  # both at level 0 and they broadcast: both refreshed
    assert policy.op_refreshes == 2


def test_the_plain_twin_is_never_refreshed():
    scheme, kh, policy, guarded = _env("plain")
    x = EncTensor.encrypt(guarded, np.array([[0.5]]))
    for _ in range(20):
        x = (x * x).polyval([0.1, 0.9])
    assert policy.op_refreshes == 0 and kh.refresh_rounds == 0 and policy.checks > 0


# ---------------------------------------------------------------------------- training
def test_xor_on_the_leveled_twin_matches_plain_and_never_exhausts(leveled):
    config = XorConfig(seed=1, epochs=60)
    s, kh = setup(leveled)
    result = train_xor(s, kh, config)
    ps, pk = setup("plain")
    reference = train_xor(ps, pk, config)
    assert result.policy["retry_refreshes"] == 0
    assert result.policy["op_refreshes"] == kh.refresh_rounds > 60  # several per step: the net is deeper than 3
    np.testing.assert_allclose([r["loss"] for r in result.history], [r["loss"] for r in reference.history],
                               rtol=0, atol=1e-9)
    from henn.tasks.xor import X, build_xor
    with pytest.raises(he_core.LevelExhaustedError):  # the same network without the policy: no forward pass
        build_xor(s, XorConfig(seed=1))(X)


@pytest.mark.skipif(not vhe_available(), reason="vhe not installed")
def test_vhe_refreshes_less_than_every_step_and_never_exhausts():
    s, kh = setup("vhe")
    result = train_xor(s, kh, XorConfig(seed=0, epochs=100))
    assert result.correct == 4 and result.policy["retry_refreshes"] == 0
    # the fixed schedule refreshed 4 parameters after every step: 400 rounds
    assert 0 < kh.refresh_rounds < 4 * 100
    assert kh.bytes_exchanged > 0


def test_row_operations_are_charged_one_mask_level(leveled):
    scheme, kh, policy, guarded = _env(leveled)
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
        scheme, kh, policy, guarded = _env(OptimisticLeveled.name)
        x = EncTensor.encrypt(guarded, np.array([[2.0]])) * 1.0 * 1.0 * 1.0  # level 0, reported as 1
        y = x * 3.0
    finally:
        he_core.unregister_scheme(OptimisticLeveled.name)
    assert policy.op_refreshes == 0 and policy.retry_refreshes == 1 == kh.refresh_rounds
    np.testing.assert_allclose(kh.release(y), [[6.0]])


# ---------------------------------------------------------------------------- bounds and state
def test_a_bounded_block_sizes_masks_for_its_own_values_then_restores():
    policy = RefreshPolicy(KeyHolder(*_plain_pair()), value_bound=16.0)
    with policy.bounded(0.25):
        assert policy.value_bound == 0.25
    assert policy.value_bound == 16.0
    with pytest.raises(RuntimeError):
        with policy.bounded(1.0):
            raise RuntimeError("inside")
    assert policy.value_bound == 16.0  # restored on the way out of an error too
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="value_bound"):
            with policy.bounded(bad):
                pass


def test_the_learnt_fresh_budget_survives_a_checkpoint_and_bad_states_are_refused(leveled):
    scheme, kh, policy, guarded = _env(leveled)
    x = scheme.encrypt(np.ones((1, 2)))
    for _ in range(LEVELS + 1):
        x = guarded.mul(x, x)
    state = policy.state()
    assert state == {"fresh": {"levels": float(LEVELS)}}
    resumed = RefreshPolicy(kh)
    resumed.load_state(json.loads(json.dumps(state)))
    assert resumed.state() == state
    for bad in ({"fresh": {"bits": 1.0}}, {"fresh": {"levels": math.inf}}, {"fresh": {"levels": "3"}},
                {"fresh": []}):
        with pytest.raises(ValueError, match="cannot restore the refresh policy"):
            RefreshPolicy(kh).load_state(bad)
