"""Plain twin: the same model and seed trained on ``plain`` (fixed point) and on ``vhe`` agree.

The tolerance is *derived*: :mod:`tests.henn.errbound` runs the identical op sequence
exactly and propagates a worst-case bound ``E`` on how far any fixed-point scheme
with unit ``u`` (each encoding and each rescaled result off by at most ``u``) can drift
from the exact run. Both twins must lie within ``E`` of the exact weights, hence
within ``2E`` of each other; ``E`` itself is asserted to be small so the check is not
vacuous.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import he_core
from henn.keyholder import KeyHolder
from henn.tasks.xor import XorConfig
from henn.tasks.xor import setup, terms_for, train_xor

from ..errbound import ErrBoundScheme

STEPS = 3  # the worst-case bound grows ~5x per step: 4e-4, 3e-3, 1.2e-2 after 1, 2, 3 steps at u = 2^-16


class _BoundKeyHolder(KeyHolder):
    """Key holder of the bound scheme (its budget is unbounded: it only releases the aggregates)."""


def _exact_run(unit_bits: int, config: XorConfig):
    scheme = ErrBoundScheme.create(unit_bits=unit_bits)
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, config.hidden)))
    result = train_xor(scheme, _BoundKeyHolder(scheme, secret, terms=terms_for(config, 1)), config)
    values = {n: p.value.ct.data[0].copy() for n, p in result.model.named_parameters()}
    bounds = {n: scheme.error_bound(p.value.ct) for n, p in result.model.named_parameters()}
    return values, bounds


def _weights(result, keyholder):
    secret = keyholder.export_secret_key()
    return {n: p.value.scheme.decrypt_exact_local(p.value.ct, secret) for n, p in result.model.named_parameters()}


def _unit_bits_of(scheme_name: str) -> int:
    s = he_core.get_scheme(scheme_name)
    s.keygen(he_core.KeyRequirements(sizes=(1,)))
    return int(round(math.log2(s.encrypt([0.0]).scale)))


@pytest.mark.parametrize("twin", ["plain16", "vhe"])
def test_twin_weights_within_derived_bound(twin):
    bits = 16 if twin == "plain16" else _unit_bits_of("vhe")
    config = XorConfig(seed=4, epochs=STEPS)
    exact, bound = _exact_run(bits, config)
    worst = max(float(b.max()) for b in bound.values())
    assert worst < 2e-2, f"the derived bound {worst} is too loose to mean anything"
    if twin == "plain16":
        scheme, kh = setup("plain", precision_bits=bits)
    else:
        scheme, kh = setup("vhe")
    fixed = _weights(train_xor(scheme, kh, config), kh)
    for name in exact:
        diff = np.abs(fixed[name] - exact[name])
        assert np.all(diff <= bound[name]), f"{name}: drift {diff.max()} beyond the derived bound {bound[name].max()}"


def test_plain_and_vhe_agree_within_twice_the_bound():
    bits = _unit_bits_of("vhe")
    config = XorConfig(seed=4, epochs=STEPS)
    _, bound = _exact_run(bits, config)
    ps, pk = setup("plain", precision_bits=bits)
    vs, vk = setup("vhe")
    plain = _weights(train_xor(ps, pk, config), pk)
    vhe = _weights(train_xor(vs, vk, config), vk)
    for name in plain:
        assert np.all(np.abs(plain[name] - vhe[name]) <= 2 * bound[name]), name
