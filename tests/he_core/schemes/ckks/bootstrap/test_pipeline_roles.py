"""he_core.schemes.ckks.bootstrap.pipeline_roles: the roles a bootstrap computes with, the scheme's own."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from he_core import SeededRandom
from he_core.schemes.ckks.bootstrap.modraise import mod_raise, subring_trace
from he_core.schemes.ckks.bootstrap.pipeline_roles import PipelineRoles

from .conftest import small_scheme


@pytest.fixture(scope="module")
def scheme():
    s = small_scheme()
    s.bootstrap_keygen(8, rng=SeededRandom(5))
    return s


def roles_of(s) -> PipelineRoles:
    return PipelineRoles(s.booter.roles.ctx, s.records, s.encoder, s.evaluator, s.aligner, s.rotator, s.mover, s.batch)


def test_the_parameter_set_ring_and_scales_are_the_contexts(scheme):
    roles = roles_of(scheme)
    assert roles.params is scheme.params and roles.ring is scheme.ring and roles.scales is scheme.scales
    with pytest.raises(dataclasses.FrozenInstanceError):
        roles.evaluator = None


def test_a_pipeline_step_computes_with_the_roles_it_is_given(scheme, monkeypatch):
    """The steps reach no scheme: a spy on the given rotator and evaluator sees every rotation and relinearisation."""
    roles = roles_of(scheme)
    seen = []
    for role, name in ((roles.rotator, "rotate"), (roles.evaluator, "relin")):
        real = getattr(role, name)
        monkeypatch.setattr(role, name, lambda *a, _real=real, _name=name, **kw: seen.append(_name) or _real(*a, **kw))
    ct = scheme.level_drop(scheme.encrypt(np.full((1, 8), 0.25), scale=scheme._scale_at(0)), 0)
    traced = subring_trace(roles, ct, 8)
    assert seen.count("rotate") == int(np.log2(scheme.params.slots // 8))  # rotations by 8, 16, .. N/4
    raised = mod_raise(roles, traced)
    assert seen[-1] == "relin" and roles.params.levels == raised.meta["level"]
