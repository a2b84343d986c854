"""he_core.schemes.ckks.noise_records: the noise fields a ciphertext carries, written and read."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from he_core import KeyRequirements, SeededRandom
from he_core.schemes.ckks import CkksParams, CkksScheme


@pytest.fixture(scope="module")
def ctx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=1024, levels=3, allow_insecure=True))
    keys = scheme.keygen(KeyRequirements(sizes=(4,), multiply=True), rng=SeededRandom(3))
    ct = scheme.encrypt(np.full((2, 4), 0.5), keys.secret, rng=SeededRandom(4))
    return scheme, ct


def test_meta_caps_the_variances_and_drops_the_fresh_and_flood_marks(ctx):
    scheme, ct = ctx
    records = scheme.records
    meta = records.meta({**ct.meta, "fresh": True, "flood": 1.0}, 0, [1e300, 2.0, 1e300], 0.5)
    cap = scheme.evaluator.noise.cap(np.array([1e300] * 3), 0)[0]
    assert meta["nvar"] == meta["nspec"] == cap and meta["nslot"] == 2.0 and meta["vmax"] == 0.5
    assert "fresh" not in meta and "flood" not in meta
    nspec_below = records.meta(ct.meta, 3, [5.0, 7.0, 3.0], 1.0)
    assert nspec_below["nvar"] == nspec_below["nslot"] == 3.0  # nspec bounds the other two


def test_noisy_copies_and_keeps_a_flood_only_when_asked(ctx):
    scheme, ct = ctx
    flooded = ct.replace(meta={**ct.meta, "flood": 10.0})
    before = dict(flooded.meta)
    kept = scheme.records.noisy(flooded, 4.0, 0.25, keep_flood=True)
    dropped = scheme.records.noisy(flooded, 4.0, 0.25)
    assert flooded.meta == before  # never mutated
    assert kept.meta["flood"] == 4.0 and "flood" not in dropped.meta  # at most the new nvar
    var, vmax = scheme.records.nv(kept)
    assert list(var) == [4.0, 4.0, 4.0] and vmax == 0.25


def test_the_estimate_is_the_schemes_noise_estimate(ctx):
    scheme, ct = ctx
    prod = scheme.mul(ct, ct)
    assert scheme.records.estimate(prod) == scheme.noise_estimate(prod)
    assert scheme.records.estimate(prod)["level"] == scheme.level(prod)
    assert scheme.records.msg_norm2(ct) > 0


@settings(max_examples=200, deadline=None)
@given(var=st.tuples(*[st.one_of(st.floats(0.0, 2.0**1001), st.just(float("inf")))] * 3),
       level=st.integers(0, 2))
def test_a_record_written_from_floats_equals_one_written_from_an_array(ctx, var, level):
    records = ctx[0].records
    meta = {"stride": 4, "nvar": 1.0, "fresh": True, "flood": 0.5}
    assert records.meta(meta, level, var, 1.0) == records.meta(meta, level, np.array(var), 1.0)
