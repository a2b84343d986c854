"""he_core.schemes.ckks.alignment: operands brought to one level and scale before they meet."""
import math
import warnings

import numpy as np
import pytest

from he_core import KeyRequirements, SeededRandom
from he_core.errors import AlignmentError, LevelExhaustedError
from he_core.schemes.ckks import CkksParams, CkksScheme
from he_core.schemes.ckks.scales import scales_match

BOUND = 2.0**-20  # values of magnitude <= 1 after one or two levels at scale 2^40 (N = 1024): errors ~2^-30


@pytest.fixture(scope="module")
def ctx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=1024, levels=3, allow_insecure=True))
    keys = scheme.keygen(KeyRequirements(sizes=(4,), multiply=True), rng=SeededRandom(3))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 4))
    return scheme, keys.secret, x, scheme.encrypt(x, keys.secret, rng=SeededRandom(4))


def test_an_addition_brings_the_higher_operand_down_to_the_others_scale(ctx):
    scheme, secret, x, ct = ctx
    low = scheme.mul_plain(ct, 0.5 * np.ones((2, 4)))  # level 2, at its working scale
    a, b = scheme.aligner.align_add(ct, low, "add")
    assert scheme.level(a) == scheme.level(b) == scheme.level(low) and scales_match(a.scale, b.scale)
    assert np.max(np.abs(scheme.decrypt_exact_local(a, secret) - x)) <= BOUND


def test_same_level_different_scales_spend_one_level_or_are_refused(ctx):
    scheme, secret, x, ct = ctx
    off = scheme.mul_plain(ct, 0.5)  # a free scalar: same level, scale doubled
    a, b = scheme.aligner.align_add(ct, off, "add")
    assert scheme.level(a) == scheme.level(ct) - 1 == scheme.level(b)
    assert math.isclose(a.scale, scheme.scales.at(scheme.level(a)), rel_tol=2.0**-20)
    bottom, bottom_off = scheme.level_drop(ct, 0), scheme.level_drop(off, 0)
    with pytest.raises(AlignmentError, match="cannot add"):
        scheme.aligner.align_add(bottom, bottom_off, "add")


def test_a_product_brings_both_to_the_lower_level_at_its_working_scale(ctx):
    scheme, secret, x, ct = ctx
    low = scheme.level_drop(ct, 1)
    a, b = scheme.aligner.align_mul(ct, low)
    assert scheme.level(a) == scheme.level(b) == 1
    assert scales_match(a.scale, scheme.scales.at(1))


def test_a_drop_only_goes_down(ctx):
    scheme, secret, x, ct = ctx
    low = scheme.aligner.drop(ct, 1)
    assert low.data.shape[2] == 2 and np.array_equal(low.data, ct.data[:, :, :2])
    with pytest.raises(LevelExhaustedError):
        scheme.aligner.drop(low, 2)
