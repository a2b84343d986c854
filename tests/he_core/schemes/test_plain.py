"""he_core.schemes.plain: the plaintext twin, float64 or rounded to a fixed-point grid."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import he_core
from he_core.errors import HEOverflowError, MismatchError, ParameterError
from he_core.refresh import Mask
from he_core.schemes.plain import PlainParams, PlainScheme

values = hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 4)),
                    elements=st.floats(-1e3, 1e3, allow_subnormal=False))


def scheme(bits=None):
    s = PlainScheme(PlainParams(precision_bits=bits))
    return s, s.keygen(rng=he_core.SeededRandom(1)).secret


@given(x=values, bits=st.integers(0, 30))
@settings(max_examples=40, deadline=None)
def test_precision_bits_round_encodings_and_products_to_the_grid(x, bits):
    s, key = scheme(bits)
    unit = 2.0**-bits
    grid = lambda v: np.rint(v / unit) * unit  # noqa: E731
    ct = s.encrypt(x)
    np.testing.assert_array_equal(s.decrypt(ct, key), grid(x))
    np.testing.assert_array_equal(s.decrypt(s.mul_plain(ct, 0.3), key), grid(grid(x) * grid(0.3)))
    np.testing.assert_array_equal(s.decrypt(s.mul(ct, ct), key), grid(grid(x) ** 2))
    np.testing.assert_array_equal(s.decrypt(s.add_plain(ct, 0.3), key), grid(x) + grid(0.3))


@given(x=values)
@settings(max_examples=20, deadline=None)
def test_without_precision_bits_it_is_float64(x):
    s, key = scheme()
    ct = s.encrypt(x, key)
    np.testing.assert_array_equal(s.decrypt(s.mul(ct, ct), key), x * x)
    np.testing.assert_array_equal(s.decrypt(s.matvec(ct, np.eye(x.shape[1])), key), x @ np.eye(x.shape[1]))
    assert s.rescale(ct) is ct  # nothing to rescale


@pytest.mark.parametrize("bits", [-1, 53, 100])
def test_bad_precision_is_refused(bits):
    with pytest.raises(ParameterError):
        PlainParams(precision_bits=bits)


def test_the_twin_has_no_privacy_and_says_so_by_its_capabilities():
    s, _ = scheme()
    assert not s.supports(he_core.Capability.APPROXIMATE) and not s.supports(he_core.Capability.ROTATE)
    assert s.budget(s.encrypt([1.0]))["kind"] == "unbounded"


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_diverged_values_are_refused_at_decryption():
    s, key = scheme()
    big = s.encrypt([1e300])
    with pytest.raises(HEOverflowError, match="diverged"):
        s.decrypt(s.mul(big, big), key)


def test_malformed_payloads_are_refused():
    s, key = scheme()
    ct = s.encrypt(np.ones((2, 2)))
    for bad in (ct.replace(data=ct.data.astype(np.float32)), ct.replace(data=np.ones((2, 3))),
                ct.replace(data=[[1.0, 1.0], [1.0, 1.0]])):
        with pytest.raises(MismatchError, match="malformed"):
            s.add(bad, ct)


def test_key_pairs_are_distinct_and_rekeying_only_moves_the_key_id():
    s, key = scheme()
    other = s.keygen()
    assert other.secret.key_id != key.key_id
    ct = s.encrypt(np.arange(3.0), key)
    moved = s.rekey(ct, s.make_switch_key(key, other.secret))
    assert moved.key_id == other.secret.key_id and moved.data is not ct.data
    np.testing.assert_array_equal(s.decrypt(moved, other.secret), ct.data)


def test_the_masked_refresh_steps_are_copies():
    s, key = scheme()
    ct = s.encrypt(np.arange(4.0).reshape(2, 2))
    plan = s.refresh_plan(ct)
    assert plan.n_cts == 2 and plan.n_entries == 2 and plan.moduli == () and plan.n_read == 0
    empty = np.zeros(0, dtype=np.int64)
    mask = Mask(plan=plan, width_bits=0, high=empty, low=empty, residues=None)  # nothing is read: nothing to mask
    masked = s.apply_mask(ct, mask)
    fresh = s.reencrypt_masked(masked, None, key)
    out = s.remove_mask(fresh, mask, None, ct)
    np.testing.assert_array_equal(s.decrypt(out, key), ct.data)
    assert masked.data is not ct.data
    np.testing.assert_array_equal(s.sanitize(ct).data, ct.data)
