"""Training with ``refresh="bootstrap"``: no key-holder round trip, the same weights as the plaintext twin.

A small insecure ring (N = 1024, h = 32) keeps the default run short; the 128-bit set
(N = 2^16) runs through the CLI under ``-m slow`` (tests/henn/cli/test_xor_bootstrap.py).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import he_core
from he_core import CapabilityError, KeyRequirements, ParameterError, SeededRandom
from henn.keyholder import KeyHolder, RefreshTerms
from henn.losses import MSELoss
from henn.tasks import xor
from henn.training.bootstrap import BootstrapRefresh, bootstrap_keys, bootstrap_slots, parameter_slots, slots_for
from henn.training.fit import fit

RING = 1024
#: XOR's four parameters side by side (20 slots of blocks) take 32.
SLOTS = 32


@pytest.fixture(scope="module")
def booted():
    """(scheme, secret) of a small bootstrappable ckks set with XOR's keys and bootstrapping's for 32 slots."""
    cls = he_core.scheme_class("ckks")
    scheme = he_core.get_scheme("ckks", cls.params_for_bootstrapping(xor.STEP_DEPTH, slots=SLOTS, ring=RING))
    pair = bootstrap_keys(scheme, KeyRequirements(sizes=(1, 4)), SLOTS, rng=SeededRandom(1))
    return scheme, pair.secret


def _plain_twin(config: xor.XorConfig, epochs: int) -> list[np.ndarray]:
    plain = he_core.get_scheme("plain")
    secret, _ = plain.keygen(KeyRequirements(sizes=(1, config.hidden)))
    model = xor.build_xor(plain, config)
    fit(model, xor.X, xor.Y, keyholder=None, lr=config.lr, epochs=epochs, batch_size=4, shuffle=False,
        value_bound=config.value_bound)
    return [p.value.decrypt(secret) for p in model.parameters()]


def test_the_slots_cover_the_widest_batch():
    assert slots_for((2, 4, 1), 4) == 16
    assert slots_for((3,), 5) == 32  # 5 rows of width 3 padded to 4
    assert slots_for((1,), 1) == 2
    with pytest.raises(ValueError, match="batch_size"):
        slots_for((4,), 0)


def test_bootstrapped_training_matches_the_plaintext_twin_with_no_key_holder(booted):
    """Three epochs (a dozen bootstraps): every weight equals the float64 twin's within 1e-4."""
    scheme, secret = booted
    config = xor.XorConfig(seed=3, lr=4.0)
    model = xor.build_xor(scheme, config)
    assert bootstrap_slots(model, 4) == SLOTS == xor.bootstrap_slots_for(config)
    history = fit(model, xor.X, xor.Y, keyholder=None, lr=config.lr, epochs=3, batch_size=4, loss=MSELoss(),
                  shuffle=False, value_bound=config.value_bound, refresh="bootstrap")
    assert history.policy["bootstraps"] > 0 and history.policy["retry_refreshes"] == 0
    assert [r["refreshes"] for r in history.records] == [0, 0, 0]
    assert all(r["loss"] is None for r in history.records)  # nothing was released
    for p, want in zip(model.parameters(), _plain_twin(config, 3)):
        got = scheme.decrypt_exact_local(p.value.ct, secret)
        assert np.max(np.abs(got - want)) < 1e-4


def test_a_key_holder_given_sees_no_refresh_and_no_release(booted):
    scheme, secret = booted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keyholder = KeyHolder(scheme, secret, terms=RefreshTerms(min_aggregate=4))
    model = xor.build_xor(scheme, xor.XorConfig(seed=4))
    fit(model, xor.X, xor.Y, keyholder=keyholder, lr=4.0, epochs=1, batch_size=4, shuffle=False,
        value_bound=16.0, refresh="bootstrap")
    assert keyholder.refresh_rounds == 0 and keyholder.releases == 0


def test_bootstrapping_refuses_what_it_cannot_do(booted):
    scheme, _secret = booted
    refresher = BootstrapRefresh(scheme, SLOTS)
    assert refresher.levels_reserved(None) == 1 and refresher.refresh_rounds == 0
    ct = scheme.encrypt(np.ones((4, 4)))
    with pytest.raises(CapabilityError, match="layout"):
        refresher.refresh(ct, layout="coeff")
    with pytest.raises(ParameterError, match="power of two"):
        BootstrapRefresh(scheme, 12)
    vhe = he_core.get_scheme("vhe")
    with pytest.raises(CapabilityError, match="bootstrap"):
        BootstrapRefresh(vhe, 16)
    assert he_core.scheme_class("vhe").params_for_bootstrapping(4) is None
    with pytest.raises(ValueError, match="refresh must be one of"):
        fit(xor.build_xor(scheme, xor.XorConfig(seed=1)), xor.X, xor.Y, keyholder=None, lr=1.0, refresh="magic")


def test_xor_trains_to_four_of_four_with_bootstrapping():
    """Seed 2 at lr 8: the twin reaches 4/4 at epoch 4 (outputs 0.41, 0.55, 0.58, 0.37 after 5); the key holder only releases."""
    config = xor.XorConfig(seed=2, lr=8.0, epochs=5, refresh="bootstrap")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme, keyholder = xor.setup("ckks", 4, config, ring=RING)
    result = xor.train_xor(scheme, keyholder, config)
    assert result.correct == 4 and result.train_refreshes == 0
    assert result.policy["bootstraps"] > 0
    assert keyholder.refresh_rounds == 0 and keyholder.releases == 1  # the final release only: no refresh at all


def test_operands_whose_scales_cannot_meet_are_bootstrapped_and_the_operation_retried(booted):
    """At level 1 a value dropped at the top scale (2^58) cannot take the integer factor that would bring it to
    level 0 beside one at level 1's working scale when its tracked noise is large (as after a computation on
    bootstrapped values): AlignmentError; the guarded view bootstraps both and subtracts them."""
    from henn.training.guarded import GuardedScheme
    from henn.training.refresh import RefreshPolicy

    scheme, secret = booted
    x, y = np.full((4, 4), 0.1), np.full((4, 4), -0.3)
    a = scheme.level_drop(scheme.encrypt(x), 1)
    loose = 2.0**180  # a tracked variance far above the true one, as the generic rules leave it
    a = a.replace(meta={**a.meta, "nvar": loose, "nslot": loose, "nspec": loose})
    b = scheme.level_drop(scheme.encrypt(y, scale=scheme._scale_at(1)), 1)
    with pytest.raises(he_core.AlignmentError):
        scheme.sub(a, b)
    policy = RefreshPolicy(BootstrapRefresh(scheme, SLOTS), value_bound=1.0)
    out = GuardedScheme(scheme, policy).sub(a, b)
    assert policy.retry_refreshes == 2 and policy.keyholder.bootstraps == 2
    assert np.max(np.abs(scheme.decrypt_exact_local(out, secret) - (x - y))) < 1e-5


def test_the_parameters_are_bootstrapped_together_at_most_once_per_step(booted):
    """Eight steps: the four parameters go through one packed bootstrap per step once a step has shown how deep
    it is; the step's own values (12 levels of work against the 4 a bootstrap leaves) take two more. One bootstrap
    per parameter and per activation wherever each ran low took 5 per step."""
    scheme, secret = booted
    config = xor.XorConfig(seed=2, lr=4.0)
    model = xor.build_xor(scheme, config)
    epochs = 8
    history = fit(model, xor.X, xor.Y, keyholder=None, lr=config.lr, epochs=epochs, batch_size=4, loss=MSELoss(),
                  shuffle=False, value_bound=config.value_bound, refresh="bootstrap")
    packed = history.policy["parameter_bootstraps"]
    assert 0 < packed <= epochs - 1  # none before the first step's depth is known
    assert history.policy["bootstraps"] <= 3 * epochs
    per_step = np.diff([r["parameter_bootstraps"] for r in history.records])
    assert set(per_step) <= {0, 1}
    for p, want in zip(model.parameters(), _plain_twin(config, epochs)):
        assert np.max(np.abs(scheme.decrypt_exact_local(p.value.ct, secret) - want)) < 1e-4


def test_parameter_slots_hold_every_parameter_side_by_side():
    plain = he_core.get_scheme("plain")
    plain.keygen(KeyRequirements(sizes=(1, 4)))
    model = xor.build_xor(plain, xor.XorConfig(seed=0))
    assert parameter_slots(model) == 32  # (2, 4) -> 8, (1, 4) -> 4, (1, 4) -> 4, (1, 1) at its layer's width 4
    from henn.layers import Linear
    from henn.module import Sequential
    one = Sequential(Linear.init(plain, 3, 1, rng=np.random.default_rng(0), init_scale=0.5, bias=None))
    assert parameter_slots(one) == 2  # nothing to pack
