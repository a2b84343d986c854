"""he_core.schemes.ckks.row_moves: masks, cleaning, replication and row gathers of slot-packed batches.

(test_rotation.py checks the gathers slot by slot; these are the role's own contract.)
"""
import warnings

import numpy as np
import pytest

from he_core import KeyRequirements, SeededRandom
from he_core.schemes.ckks import CkksParams, CkksScheme, layout

BOUND = 2.0**-20  # one mask level at scale 2^40 (N = 1024): errors ~2^-30


@pytest.fixture(scope="module")
def ctx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=1024, levels=3, allow_insecure=True))
    keys = scheme.keygen(KeyRequirements(sizes=(1, 4, 8)), rng=SeededRandom(17))
    x = np.random.default_rng(2).uniform(-1, 1, (5, 4))
    return scheme, keys.secret, x, scheme.encrypt(x, keys.secret, rng=SeededRandom(3))


def test_the_valid_mask_is_one_exactly_on_the_values(ctx):
    scheme, *_ = ctx
    mask = scheme.mover.valid_mask(3, 2, 4)
    want = layout.pack(np.ones((3, 2)), scheme.params.slots, 4)
    assert np.array_equal(mask, want) and mask.sum() == 6


def test_a_gather_sends_weighted_rows_where_the_plan_says(ctx):
    scheme, secret, x, ct = ctx
    plan = [(0, 4, 1.0), (1, 0, 2.0), (1, 2, -1.0)]  # (destination, source, weight)
    out = scheme.mover.gather(ct, plan, 2, 8)
    assert out.shape == (2, 4) and out.meta["stride"] == 8 and layout.is_clean(out)
    want = np.stack([x[4], 2 * x[0] - x[2]])
    assert np.max(np.abs(scheme.decrypt_exact_local(out, secret) - want)) <= BOUND


def test_replication_copies_one_row_and_cleaning_zeroes_the_rest(ctx):
    scheme, secret, x, ct = ctx
    row = scheme.take_rows(ct, [3])
    rep = scheme.mover.replicate_rows(row, 3)
    assert rep.shape == (3, 4)
    assert np.max(np.abs(scheme.decrypt_exact_local(rep, secret) - np.repeat(x[3:4], 3, axis=0))) <= BOUND
    dirty = scheme.rotate(ct, 1)
    clean = scheme.mover.clean(dirty)
    assert layout.is_clean(clean) and scheme.level(clean) == scheme.level(dirty) - 1
    slots = scheme._decrypt_slots(clean, scheme._s_full(secret)).real
    assert np.max(np.abs(slots * (1 - scheme.mover.valid_mask(5, 4, 4)))) <= BOUND
