"""The ckks side of the Bootstrapping protocol (he_core/schemes/ckks/bootstrap/role.py): the plan, the key set,
the EvalMod range per secret, the scheme's delegation to its booter."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from he_core import (Capability, EncodingError, HEOverflowError, KeyRequirements, MismatchError, ParameterError,
                     SecurityWarning, SeededRandom, protocols)
from he_core.schemes.ckks import CkksParams, CkksScheme
from he_core.schemes.ckks.bootstrap.role import MAX_DELTA, BootstrapRole, spec_for

from .conftest import small_scheme


def test_the_scheme_declares_the_capability_and_its_protocol():
    assert Capability.BOOTSTRAP in CkksScheme.capabilities
    assert protocols.capability_of(protocols.Bootstrapping) is Capability.BOOTSTRAP


def test_the_key_set_holds_the_plans_keys_and_the_computations(sparse):
    s, _keys = sparse
    plan = s.bootstrap_plan(8)
    galois = s.public_keys.data["galois"]
    conj = str(2 * s.params.poly_degree - 1)
    assert conj in galois and plan["keys"] == len(plan["rotations"]) + 2
    assert set(s.public_keys.data["galois_seeds"]) == set(galois)  # the conjugation key's seed too
    fresh = small_scheme()
    fresh.bootstrap_keygen(8, rng=SeededRandom(3), requirements=KeyRequirements(sizes=(1, 4), rotations=(3,)))
    mine = fresh.public_keys.data["galois"]
    assert set(galois) <= set(mine) and len(mine) > len(galois)  # the computation's rotation came on top
@pytest.mark.parametrize("weight, k", [(32, 14), (192, 33)])
def test_the_evalmod_range_is_eight_sigma_of_the_raise_overflow(weight, k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        params = CkksParams(poly_degree=1024, levels=2, secret="hamming", hamming_weight=weight, allow_insecure=True)
    assert spec_for(params).K == k == int(np.ceil(8 * np.sqrt((weight + 1) / 12)))


def test_a_set_that_cannot_bootstrap_says_why_and_refuses():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        s = CkksScheme(CkksParams(poly_degree=1024, levels=2, allow_insecure=True))
    plan = s.bootstrap_plan(4)
    assert not plan["possible"] and plan["reason"] and plan["keys"] == 0
    keys = s.keygen(rng=SeededRandom(1))
    with pytest.raises(ParameterError, match="cannot bootstrap"):
        s.bootstrap(s.encrypt(np.ones((1, 4)), keys.secret))
    with pytest.raises(ParameterError, match="cannot make bootstrapping keys"):
        s.bootstrap_keygen(4)
    with pytest.raises(ParameterError, match="power of two"):
        s.bootstrap_plan(3)


# ---------------------------------------------------------------- inputs above level 0, clean outputs, records
def test_a_top_level_ciphertext_at_its_own_scale_comes_back_right(sparse, bits):
    """Dropped straight to level 0 at 2^58 its phase would be a quarter of q_0 and the sine wrong (2^-7)."""
    s, keys = sparse
    x = np.random.default_rng(4).uniform(-6, 6, (2, 4))
    ct = s.encrypt(x)  # the top level's scale, values well past 1
    out = s.bootstrap(ct, slots=8)
    assert bits(s.decrypt_exact_local(out, keys.secret), x) >= 18


def test_a_clean_bootstrap_zeroes_the_other_slots_and_can_be_repeated(sparse, bits):
    s, keys = sparse
    x = np.random.default_rng(5).uniform(-2, 2, (2, 3))
    out = s.bootstrap(s.encrypt(x), slots=8, clean=True)
    assert not out.meta["dirty"] and s.level(out) == s.bootstrap_plan(8, clean=True)["output_level"]
    assert s.bootstrap_plan(8, clean=True)["output_level"] == s.bootstrap_plan(8)["output_level"] - 1
    slots = s._decrypt_slots(out, s._s_full(keys.secret))[0].real
    outside = np.ones(s.params.slots, dtype=bool)
    for r in range(2):
        outside[r * out.meta["stride"]: r * out.meta["stride"] + 3] = False
    assert np.max(np.abs(slots[outside])) < 2.0**-18
    again = s.bootstrap(out, slots=8, clean=True)
    assert bits(s.decrypt_exact_local(again, keys.secret), x) >= 18


def test_a_dirty_input_above_level_0_is_cleaned_by_the_scale_setting_product(sparse, bits):
    s, keys = sparse
    x = np.random.default_rng(6).uniform(-1, 1, (2, 4))
    dirty = s.bootstrap(s.encrypt(x), slots=8)  # copies of the values in every other block
    assert dirty.meta["dirty"]
    with pytest.raises(EncodingError, match="garbage"):
        s.bootstrap(s.level_drop(dirty, 0), slots=8)  # no level left to clean it
    assert bits(s.decrypt_exact_local(s.bootstrap(dirty, slots=8), keys.secret), x) >= 18


def test_the_noise_record_restarts_instead_of_compounding(sparse):
    s, keys = sparse
    x = np.random.default_rng(7).uniform(-3, 3, (1, 8))
    once = s.bootstrap(s.encrypt(x), slots=8, clean=True, value_bound=4.0)
    twice = s.bootstrap(once, slots=8, clean=True, value_bound=4.0)
    b1, b2 = (s.noise_estimate(c)["slot_bound"] for c in (once, twice))
    assert b2 <= 1.01 * b1  # the first's error joined the value (value_bound vouches for it)
    assert twice.meta["vmax"] == 4.0
    assert np.max(np.abs(s.decrypt_exact_local(twice, keys.secret) - x)) <= b1 + b2


def test_values_too_large_for_the_sine_at_level_0_are_refused(sparse):
    s, _keys = sparse
    ct = s.level_drop(s.encrypt(np.full((1, 8), 0.5), scale=s._scale_at(0)), 0)
    big = ct.replace(scale=ct.scale * 2.0**10, meta={**ct.meta, "vmax": 0.5})  # 0.5 at 2^59: q_0 / 8
    with pytest.raises(ParameterError, match="phase"):
        s.bootstrap(big, slots=8)
    assert MAX_DELTA < 0.25
    with pytest.raises(ParameterError, match="value_bound"):
        s.bootstrap(s.encrypt(np.ones((1, 8))), slots=8, value_bound=float("nan"))


def test_a_drop_whose_values_would_wrap_the_smaller_modulus_is_refused():
    s = small_scheme()
    s.keygen(KeyRequirements(sizes=(8,)), rng=SeededRandom(2))
    ct = s.encrypt(np.full((1, 8), 6.0))  # 6 at 2^58: more than a quarter of q_0 = 2^61
    with pytest.raises(HEOverflowError, match="would not fit"):
        s.level_drop(ct, 0)
    assert s.level(s.level_drop(ct, 1)) == 1  # q_0 q_1 still holds it


def test_a_replicated_row_above_level_0_is_bootstrapped_as_its_one_row(sparse, bits):
    """A row sum leaves its row in every row position (rep); the value mask keeps the first."""
    s, keys = sparse
    x = np.random.default_rng(8).uniform(-1, 1, (4, 2))
    summed = s.row_sum(s.encrypt(x))
    assert summed.meta["rep"]
    out = s.bootstrap(summed, slots=8, clean=True)
    assert not out.meta["rep"] and not out.meta["dirty"]
    assert bits(s.decrypt_exact_local(out, keys.secret), x.sum(axis=0, keepdims=True)) >= 18


# ---------------------------------------------------------------- the scheme's booter and its delegation
def test_the_scheme_holds_a_booter_built_from_its_own_roles_and_no_bootstrap_mixin(sparse):
    s, _keys = sparse
    assert isinstance(s.booter, BootstrapRole) and s.booter.keyset is s.keyset
    roles = s.booter.roles
    for name in ("records", "encoder", "evaluator", "aligner", "rotator", "mover", "batch"):
        assert getattr(roles, name) is getattr(s, name), name  # shared, not copies
    assert roles.params is s.params and roles.ring is s.ring
    assert not any("Bootstrap" in klass.__name__ for klass in CkksScheme.__mro__)
    for op in protocols.operations(protocols.Bootstrapping):
        assert callable(vars(CkksScheme)[op]), op  # defined on the scheme itself
    assert s.booter.pipeline(8) is s.booter.pipeline(8)  # one pipeline per slot count


def test_the_protocol_methods_hand_their_arguments_to_the_booter(sparse, monkeypatch):
    s, _keys = sparse
    calls = []

    def spy(name):
        real = getattr(s.booter, name)
        monkeypatch.setattr(s.booter, name, lambda *a, **kw: calls.append((name, a, kw)) or real(*a, **kw))

    for name in ("bootstrap", "bootstrap_many", "packs", "plan"):
        spy(name)
    ct = s.encrypt(np.full((1, 4), 0.5))
    assert s.bootstrap_plan(8, clean=True) == s.booter.plan(8, clean=True)
    assert s.bootstrap_packs([ct], slots=8) == [[0]]
    s.bootstrap(ct, slots=8, value_bound=1.0)
    s.bootstrap_many([ct], slots=8, clean=True)
    assert calls == [("plan", (8,), {"clean": True}), ("plan", (8,), {"clean": True}), ("packs", ([ct], 8), {}),
                     ("bootstrap", (ct,), {"slots": 8, "clean": False, "value_bound": 1.0}),
                     ("plan", (8,), {"clean": False}),
                     ("bootstrap_many", ([ct],), {"slots": 8, "clean": True, "value_bound": None}),
                     ("plan", (8,), {"clean": True})]


def test_the_scheme_refuses_a_foreign_ciphertext_before_its_booter_sees_it(sparse, monkeypatch):
    s, _keys = sparse
    other = small_scheme()
    other.keygen(KeyRequirements(sizes=(8,)), rng=SeededRandom(4))
    foreign = other.encrypt(np.ones((1, 4))).replace(params_id="ckks-elsewhere")
    for name in ("bootstrap", "bootstrap_many", "packs"):
        monkeypatch.setattr(s.booter, name, lambda *a, **kw: pytest.fail("the booter was reached"))
    with pytest.raises(MismatchError, match="does not belong"):
        s.bootstrap(foreign, slots=8)
    with pytest.raises(MismatchError, match="does not belong"):
        s.bootstrap_many([s.encrypt(np.ones((1, 4))), foreign], slots=8)
    with pytest.raises(MismatchError, match="does not belong"):
        s.bootstrap_packs([foreign], slots=8)


def test_the_booters_keys_are_the_plans_plus_the_conjugation(sparse):
    s, _keys = sparse
    plan = s.bootstrap_plan(8)
    wanted = s.booter.key_requirements(8)
    assert wanted.multiply and wanted.minimal
    assert set(wanted.rotations) == set(plan["rotations"])
    packed = s.booter.key_requirements(8, packing=True)
    assert set(packed.rotations) == set(plan["rotations"]) | {1, 2, 4}  # the packing moves (powers of two < n)
