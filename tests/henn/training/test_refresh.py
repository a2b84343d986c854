"""The budget-driven refresh policy: refreshes exactly when an operation would exhaust the budget.

The fake leveled scheme of ``conftest.py`` makes the counts exact and the tests fast.
"""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

import he_core
from henn.keyholder import KeyHolder
from henn.tasks.xor import XorConfig, setup, train_xor
from henn.training.refresh import RefreshPolicy

from .conftest import LEVELS, guarded_env, plain_pair


@pytest.mark.parametrize("remaining, depth, masks, expect", [
    (0, 1, 0, True), (1, 1, 0, False), (1, 2, 0, True), (2, 2, 0, False), (0, 0, 0, False),
    (1, 1, 1, True), (2, 1, 1, False), (5, 3, 0, False),
])
def test_levels_decision(remaining, depth, masks, expect):
    policy = RefreshPolicy(KeyHolder(*plain_pair()))
    assert policy.needs_refresh({"kind": "levels", "remaining": remaining}, depth, masks=masks) is expect


@pytest.mark.parametrize("remaining, depth, extra, expect", [
    (9.9, 1, 0.0, True), (10.0, 1, 0.0, False), (1.9, 0, 0.0, True), (2.0, 0, 0.0, False),
    (3.5, 0, 2.0, True), (4.0, 0, 2.0, False), (17.9, 2, 0.0, True),
])
def test_noise_decision(remaining, depth, extra, expect):
    policy = RefreshPolicy(KeyHolder(*plain_pair()), noise_bits_per_level=8.0, noise_floor_bits=2.0)
    assert policy.needs_refresh({"kind": "noise", "remaining": remaining}, depth, extra) is expect


@pytest.mark.parametrize("remaining, noise_bits, expect", [(4.9, 3.0, True), (5.0, 3.0, False), (2.0, 0.0, False)])
def test_a_schemes_noise_forecast_replaces_the_per_level_charge(remaining, noise_bits, expect):
    """A forecast of 3 bits needs 3 + the floor, whatever the depth (8 bits a level would ask 26 for depth 3)."""
    policy = RefreshPolicy(KeyHolder(*plain_pair()), noise_bits_per_level=8.0, noise_floor_bits=2.0)
    budget = {"kind": "noise", "remaining": remaining}
    assert policy.needs_refresh(budget, 3, noise_bits=noise_bits) is expect
    assert policy.needs_refresh(budget, 3) is True  # without it: 3 levels at 8 bits


def test_an_update_landing_in_a_tables_rows_is_refreshed_unless_near_fresh(leveled):
    """settle_landing: a sparse landing on a noise budget is refreshed when its noise is well above a fresh
    ciphertext's; a near-fresh one, a one-row weight's update and a levels budget's land as they are."""
    scheme = he_core.get_scheme("vhe")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)  # vhe is insecure by design; tested elsewhere
        secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, 4)), rng=he_core.SeededRandom(2))
    policy = RefreshPolicy(KeyHolder(scheme, secret))
    table, row = scheme.encrypt(np.zeros((6, 4))), scheme.encrypt(np.full((1, 4), 3.0))
    noisy = scheme.mul(scheme.mul(row, row), row)  # 27: each product grew the noise by about the values
    settled = policy.settle_landing(scheme, table, noisy)
    assert settled is not noisy and policy.landing_refreshes == 1
    assert scheme.budget(settled)["remaining"] > scheme.budget(noisy)["remaining"] + policy_slack()
    np.testing.assert_array_equal(scheme.decrypt_exact_local(settled, secret),
                                  scheme.decrypt_exact_local(noisy, secret))
    assert policy.settle_landing(scheme, table, settled) is settled  # near fresh now
    assert policy.settle_landing(scheme, row, noisy) is noisy  # a one-row weight is refreshed whole instead
    levels, lholder = setup(leveled)
    lpolicy = RefreshPolicy(lholder)
    lrow = levels.encrypt(np.ones((1, 4)))
    lnoisy = levels.mul(lrow, lrow)
    assert lpolicy.settle_landing(levels, levels.encrypt(np.zeros((6, 4))), lnoisy) is lnoisy
    assert policy.landing_refreshes == 1 and lpolicy.landing_refreshes == 0


def policy_slack() -> float:
    from henn.training.refresh import LANDING_SLACK_BITS
    return LANDING_SLACK_BITS


def test_unbounded_never_and_unknown_kind_refused():
    policy = RefreshPolicy(KeyHolder(*plain_pair()))
    assert not policy.needs_refresh({"kind": "unbounded", "remaining": math.inf}, 50)
    with pytest.raises(ValueError, match="unknown budget kind 'bits'"):
        policy.needs_refresh({"kind": "bits", "remaining": 3}, 1)
    with pytest.raises(ValueError, match="noise_floor_bits"):
        RefreshPolicy(policy.keyholder, noise_floor_bits=-1)


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


def test_vhe_refreshes_less_than_every_step_and_never_exhausts():
    s, kh = setup("vhe")
    result = train_xor(s, kh, XorConfig(seed=0, epochs=100))
    assert result.correct == 4 and result.policy["retry_refreshes"] == 0
    # the fixed schedule refreshed 4 parameters after every step: 400 rounds
    assert 0 < kh.refresh_rounds < 4 * 100
    assert kh.bytes_exchanged > 0


def test_a_bounded_block_sizes_masks_for_its_own_values_then_restores():
    policy = RefreshPolicy(KeyHolder(*plain_pair()), value_bound=16.0)
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
    scheme, kh, policy, guarded = guarded_env(leveled)
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
