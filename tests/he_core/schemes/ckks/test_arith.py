"""he_core.schemes.ckks.arith: levels and scales, alignment, rescaling and the scalar product's two paths.

The module's contract (its docstring): the working scale of level l is fixed by the
level (Delta_{l-1} = Delta_l^2 / q_l), rescaling divides the recorded scale by the
dropped prime, operands at different levels or scales are aligned (or refused with a
named error), scalars of moderate size only change the recorded scale, and the recorded
scale is always the exact one (decryptions agree with the values within ``slot_bound``).
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from he_core import KeyRequirements, SeededRandom
from he_core.errors import LevelExhaustedError, MismatchError
from he_core.schemes.ckks import CkksParams, CkksScheme
from he_core.schemes.ckks.scales import FREE_SCALAR_MIN, scales_match

SETTINGS = settings(max_examples=20, deadline=None)


@pytest.fixture(scope="module")
def ctx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=1024, levels=4, allow_insecure=True))
    return scheme, scheme.keygen(KeyRequirements(sizes=(3,)), rng=SeededRandom(23)).secret


def close(scheme, ct, secret, want):
    got = scheme.decrypt_exact_local(ct, secret)
    assert np.abs(got - want).max() <= scheme.noise_estimate(ct)["slot_bound"]


values = st.integers(0, 2**32 - 1).map(lambda seed: np.random.default_rng(seed).uniform(-8, 8, (2, 3)))


def test_the_working_scales_follow_the_chain(ctx):
    scheme, _ = ctx
    top = scheme.params.levels
    assert scheme._scale_at(top) == scheme.params.default_scale
    for level in range(top, 0, -1):
        assert scheme._scale_at(level - 1) == pytest.approx(scheme._scale_at(level) ** 2 / scheme.ring.q[level],
                                                            rel=1e-15)


@given(x=values, y=values)
@SETTINGS
def test_a_product_at_working_scales_lands_on_the_next_working_scale(ctx, x, y):
    scheme, secret = ctx
    a, b = scheme.encrypt(x), scheme.encrypt(y)
    raw = scheme.mul(a, b, rescale=False)
    assert raw.scale == a.scale * b.scale and scheme.level(raw) == scheme.level(a)
    out = scheme.rescale(raw)
    assert scheme.level(out) == scheme.level(a) - 1
    assert out.scale == raw.scale / scheme.ring.q[scheme.level(a)]
    assert scales_match(out.scale, scheme._scale_at(scheme.level(out)))
    close(scheme, out, secret, x * y)


@given(x=values, level=st.integers(0, 3))
@SETTINGS
def test_dropping_levels_keeps_scale_values_and_noise(ctx, x, level):
    scheme, secret = ctx
    a = scheme.encrypt(x)
    out = scheme.level_drop(a, level)
    assert scheme.level(out) == level and out.scale == a.scale and out.meta["nvar"] == a.meta["nvar"]
    close(scheme, out, secret, x)
    with pytest.raises(LevelExhaustedError):
        scheme.level_drop(out, level + 1)
    with pytest.raises(LevelExhaustedError):
        scheme.level_drop(out, -1)


@given(x=values, y=values, la=st.integers(1, 4), lb=st.integers(1, 4))
@SETTINGS
def test_additions_across_levels_align_to_the_lower_one(ctx, x, y, la, lb):
    scheme, secret = ctx
    # a product brings b to its level's working scale, which differs from the fresh scale kept by level_drop
    a = scheme.level_drop(scheme.encrypt(x), la)
    b = scheme.mul_plain(scheme.level_drop(scheme.encrypt(y), lb), [1.0, -1.0, 0.5])
    out = scheme.add(a, b)
    assert scheme.level(out) <= min(la, scheme.level(b))
    close(scheme, out, secret, x + y * [1.0, -1.0, 0.5])


def test_same_level_different_scales_spend_a_level_or_are_refused(ctx):
    scheme, secret = ctx
    x = np.ones((1, 3))
    a = scheme.encrypt(x)
    b = scheme.mul_plain(a, 3.0)  # a free scalar: same level, scale / 3
    assert scheme.level(b) == scheme.level(a) and not scales_match(a.scale, b.scale)
    out = scheme.add(a, b)
    assert scheme.level(out) == scheme.level(a) - 1
    close(scheme, out, secret, 4 * x)
    a0, b0 = scheme.level_drop(a, 0), scheme.level_drop(b, 0)
    with pytest.raises(MismatchError, match="cannot be aligned"):
        scheme.add(a0, b0)


@given(x=values, log_factor=st.floats(-10, 10), negative=st.booleans())
@SETTINGS
def test_a_moderate_scalar_only_changes_the_recorded_scale(ctx, x, log_factor, negative):
    scheme, secret = ctx
    factor = (-1 if negative else 1) * 2.0**log_factor
    a = scheme.encrypt(x)
    out = scheme.mul_plain(a, factor)
    assert scheme.level(out) == scheme.level(a)
    assert out.scale == pytest.approx(a.scale / abs(factor), rel=1e-15)
    assert out.meta["nvar"] == a.meta["nvar"]  # same polynomial (up to sign): same integer error
    close(scheme, out, secret, x * factor)


@given(x=values, factor=st.one_of(st.floats(1e-6, FREE_SCALAR_MIN * 0.99), st.floats(1.01 / FREE_SCALAR_MIN, 1e5)))
@SETTINGS
def test_other_scalars_cost_one_level_and_land_on_the_working_scale(ctx, x, factor):
    scheme, secret = ctx
    a = scheme.encrypt(x)
    out = scheme.mul_plain(a, factor)
    assert scheme.level(out) == scheme.level(a) - 1
    assert scales_match(out.scale, scheme._scale_at(scheme.level(out)))
    close(scheme, out, secret, x * factor)


def test_noise_metadata_grows_through_products_and_is_capped_by_the_modulus(ctx):
    scheme, _ = ctx
    a = scheme.encrypt(np.ones((1, 3)))
    prod = scheme.mul(a, a, rescale=False)
    assert prod.meta["nvar"] > a.meta["nvar"]
    q_level = math.prod(float(q) for q in scheme.ring.q[: scheme.level(prod) + 1])
    assert prod.meta["nvar"] <= (q_level / 2) ** 2
    assert prod.meta["vmax"] >= 1.0


def test_rescaling_at_level_0_is_refused(ctx):
    scheme, _ = ctx
    a = scheme.level_drop(scheme.encrypt(np.ones((1, 3))), 0)
    with pytest.raises(LevelExhaustedError, match="no level left"):
        scheme.rescale(scheme.mul_plain(a, 2.0))  # a free scalar leaves level 0 as it is
    with pytest.raises(LevelExhaustedError):
        scheme.mul(a, a)
