"""The budget-driven refresh policy: refreshes exactly when an operation would exhaust the budget.

The fake leveled scheme of ``conftest.py`` makes the counts exact and the tests fast.
"""
from __future__ import annotations

import json
import math

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
