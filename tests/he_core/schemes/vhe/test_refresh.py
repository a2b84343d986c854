"""he_core.schemes.vhe.refresh: the vhe side of the masked refresh, step by step with explicit masks."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import he_core
from he_core import KeyRequirements, SeededRandom
from he_core.errors import EncodingError
from he_core.refresh import Mask


@pytest.fixture(scope="module")
def ctx():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        s = he_core.get_scheme("vhe")
        key = s.keygen(KeyRequirements(sizes=(3,)), rng=SeededRandom(4)).secret
    return s, key


def mask_for(plan, ints):
    ints = np.asarray(ints, dtype=np.int64)
    return Mask(plan=plan, width_bits=20, high=np.zeros_like(ints), low=ints, residues=None)


@given(data=st.data())
@settings(max_examples=25, deadline=None)
def test_a_refresh_with_any_mask_returns_the_values_on_the_grid(ctx, data):
    s, key = ctx
    rows = data.draw(st.integers(1, 3))
    x = np.array(data.draw(st.lists(st.integers(-2**20, 2**20), min_size=3 * rows, max_size=3 * rows)),
                 dtype=np.float64).reshape(rows, 3) / s.params.scale
    ct = s.encrypt(x)
    plan = s.refresh_plan(ct)
    assert plan.n_read == x.size and plan.moduli == () and (plan.n_cts, plan.n_entries) == (rows, 3)
    assert plan.bound_bits <= plan.room_bits
    ints = data.draw(st.lists(st.integers(0, 2**20), min_size=x.size, max_size=x.size))
    mask = mask_for(plan, ints)
    masked = s.apply_mask(ct, mask)
    np.testing.assert_array_equal(s.decrypt(masked, key), x + np.reshape(ints, x.shape) / s.params.scale)
    fresh = s.reencrypt_masked(masked, None, key)
    assert fresh.meta["noise"] == s.params.enc_noise  # a fresh encryption's noise
    out = s.remove_mask(fresh, mask, None, ct)
    np.testing.assert_array_equal(s.decrypt(out, key), x)


def test_a_caller_bound_only_shrinks_the_plan(ctx):
    s, _ = ctx
    ct = s.encrypt(np.full((1, 3), 100.0))
    loose = s.refresh_plan(ct)
    assert s.refresh_plan(ct, value_bound=1.0).bound_bits < loose.bound_bits
    assert s.refresh_plan(ct, value_bound=1e9).bound_bits == loose.bound_bits


def test_vhe_has_one_layout(ctx):
    s, _ = ctx
    ct = s.encrypt(np.ones((1, 3)))
    for call in (lambda: s.refresh_plan(ct, "slots"), lambda: s.refresh_target_signature(ct, {"coeff": 1})):
        with pytest.raises(EncodingError, match="one layout"):
            call()
    assert s.refresh_target_signature(ct) == {"layout": "same", "shape": [1, 3], "scale_out": float(s.params.scale)}


def test_sanitize_is_a_copy(ctx):
    s, key = ctx
    ct = s.encrypt(np.ones((1, 3)))
    out = s.sanitize(ct)
    assert out.data is not ct.data and np.array_equal(out.data, ct.data)
