"""Coefficient-packed CKKS tables (he_core.schemes.ckks.coeff) against numpy.

Parameters: N = 2048 (explicitly insecure, for speed), 4 levels, scale 2^32 with 44-bit
first and special primes — the shape of the 128-bit set ``params_for_depth(4)`` picks
for the sentiment network. In the coefficient packing an error is the noise of one
coefficient, not of a slot (a sum over all coefficients), so it is small: measured
worst about 2^-22 per value for public-key encryptions (2^-27 with the secret key),
growing with the number of rows gathered or scattered (integer plaintexts, no rescale),
and about 2^-21 after one product and rescale. The bounds leave a margin of 8x.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import he_core
from he_core import KeyRequirements, RefreshRequired, SeededRandom
from he_core.errors import EncodingError
from he_core.schemes.ckks import CkksParams, CkksScheme
from he_core.schemes.ckks.coeff import TABLE_LEVEL

TABLE = 2.0**-19   # encrypt / decrypt, row_sum, index_add_ (no rescale), per row involved
PRODUCT = 2.0**-18  # inner, products with a constant (one rescale)


@pytest.fixture(scope="module")
def ctx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=2048, levels=4, scale_bits=32, first_bits=44, special_bits=44,
                                       allow_insecure=True))
    keys = scheme.keygen(KeyRequirements(sizes=(1, 8)), rng=SeededRandom(5))
    return scheme, keys.secret


def close(got, want, bound):
    assert got.shape == want.shape
    err = float(np.max(np.abs(got - want), initial=0.0))
    assert err <= bound, f"error {err:.3e} (2^{math.log2(err):.1f}) above bound 2^{math.log2(bound):.0f}"


def table_values(rows, size, seed):
    x = np.random.default_rng(seed).uniform(-2, 2, (rows, size))
    x.flat[0] = 0.0
    return x


def refreshed(scheme, secret, exc):
    """What the key holder's refresh returns: the operand re-encrypted in the layout asked for."""
    return scheme.encrypt(scheme.decrypt_exact_local(exc.ciphertext, secret), secret, layout=exc.target)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 700), size=st.sampled_from([1, 3, 8]), seed=st.integers(0, 2**16))
def test_table_round_trip(ctx, rows, size, seed):
    scheme, secret = ctx
    x = table_values(rows, size, seed)
    ct = scheme.encrypt(x, layout="table")
    assert ct.meta["coeff"] and scheme.level(ct) == TABLE_LEVEL and ct.shape == x.shape
    assert ct.data.shape[0] == -(-rows // (2048 // ct.meta["stride"]))  # rows packed into coefficients
    close(scheme.decrypt_exact_local(ct, secret), x, TABLE)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(2, 700), picks=st.integers(1, 60), seed=st.integers(0, 2**16))
def test_row_sum_and_index_add_match_numpy(ctx, rows, picks, seed):
    scheme, secret = ctx
    rng = np.random.default_rng(seed)
    x = table_values(rows, 8, seed)
    ids = rng.integers(0, rows, picks)  # repeats included: they count twice, as numpy.add.at does
    table = scheme.encrypt(x, layout="table")
    h = scheme.row_sum(table, ids)
    assert h.shape == (1, 8) and scheme.level(h) == scheme.level(table)  # no level spent
    close(scheme.decrypt_exact_local(h, secret), x[ids].sum(axis=0, keepdims=True), TABLE * picks)

    g = rng.uniform(-1, 1, (1, 8))
    update = scheme.encrypt(g, secret, layout=scheme.layout_of(table))
    scheme.index_add_(table, ids, update)
    want = x.copy()
    np.add.at(want, ids, g[0])
    assert scheme.level(table) == TABLE_LEVEL
    close(scheme.decrypt_exact_local(table, secret), want, 2 * TABLE * picks)


def test_sentiment_step_shape(ctx):
    """gather -> inner with a reversed row -> refresh to a constant -> polynomial -> scatter back."""
    scheme, secret = ctx
    rng = np.random.default_rng(3)
    W = table_values(300, 8, 3)
    # level 0 of this small set holds |values| < 2: w * s(z)'s recorded bound must fit it, or the
    # rescale into level 0 refuses (a wrap there would decode to a plausible wrong value)
    w = rng.normal(0, 0.5, (1, 8))
    ids = np.sort(rng.choice(300, 40, replace=False))
    table = scheme.encrypt(W, layout="table")
    h = scheme.row_sum(table, ids)
    assert h.meta["dirty"]  # other rows landed in the other coefficients
    w_ct = scheme.encrypt(w)  # slot-packed: inner asks for it reversed and coefficient-packed
    with pytest.raises(RefreshRequired) as info:
        scheme.inner(h, w_ct)
    assert info.value.ciphertext is w_ct and info.value.target["rev"] is True
    w_ct = refreshed(scheme, secret, info.value)
    z = scheme.inner(h, w_ct)
    want_z = W[ids].sum(0) @ w[0]
    close(scheme.decrypt_exact_local(z, secret), np.array([[want_z]]), PRODUCT * 16)
    u = scheme.mul_plain(z, 1 / 20)  # a scalar: any packing
    with pytest.raises(RefreshRequired) as info:
        scheme.polyval(u, [0.5, 0.25, 0, -0.01, 0, 0.001])
    assert info.value.target["layout"] == "constant"
    u = refreshed(scheme, secret, info.value)
    p = scheme.polyval(u, [0.5, 0.25, 0, -0.01, 0, 0.001])
    t = want_z / 20
    close(scheme.decrypt_exact_local(p, secret), np.array([[0.5 + 0.25 * t - 0.01 * t**3 + 0.001 * t**5]]), PRODUCT)
    g1 = scheme.mul(w_ct, p)  # packed row times a constant: element-wise
    close(scheme.decrypt_exact_local(g1, secret), w * scheme.decrypt_exact_local(p, secret)[0, 0], PRODUCT)
    with pytest.raises(RefreshRequired) as info:  # below the table's level and reversed: refused, never lowered
        scheme.index_add_(table, ids, g1)
    assert info.value.ciphertext is g1 and info.value.target["rev"] is False
    scheme.index_add_(table, ids, refreshed(scheme, secret, info.value))
    want = W.copy()
    want[ids] += (w * scheme.decrypt_exact_local(p, secret)[0, 0])[0]
    close(scheme.decrypt_exact_local(table, secret), want, PRODUCT)


@pytest.mark.parametrize("op", ["polyval", "rotate", "take_rows", "concat_rows", "mul_plain", "sum_slots", "mul",
                                "conjugate", "lincomb", "matvec"])
def test_slotwise_ops_on_a_table_ask_for_a_refresh(ctx, op):
    scheme, _ = ctx
    table = scheme.encrypt(table_values(20, 8, 1), layout="table")
    calls = {"polyval": lambda: scheme.polyval(table, [0, 1, 1]), "rotate": lambda: scheme.rotate(table, 1),
             "take_rows": lambda: scheme.take_rows(table, [1, 2]),
             "concat_rows": lambda: scheme.concat_rows([table, table]),
             "mul_plain": lambda: scheme.mul_plain(table, np.arange(8.0)), "sum_slots": lambda: scheme.sum_slots(table),
             "mul": lambda: scheme.mul(table, table), "conjugate": lambda: scheme.conjugate(table),
             "lincomb": lambda: scheme.lincomb(np.ones((1, 20)), table),
             "matvec": lambda: scheme.matvec(table, np.eye(8))}
    with pytest.raises(RefreshRequired, match="coefficient-packed") as info:
        calls[op]()
    assert info.value.ciphertext is table and info.value.target["layout"] == "slots"


def test_add_of_mismatched_packings_asks_for_a_refresh(ctx):
    scheme, secret = ctx
    a = scheme.encrypt(table_values(1, 8, 2), layout="table")
    b = scheme.encrypt(table_values(1, 8, 3))
    with pytest.raises(RefreshRequired) as info:
        scheme.add(a, b)
    assert info.value.ciphertext is b
    close(scheme.decrypt_exact_local(scheme.add(a, refreshed(scheme, secret, info.value)), secret),
          table_values(1, 8, 2) + table_values(1, 8, 3), TABLE)


def test_apply_mask_hides_every_coefficient_of_a_gathered_row(ctx):
    """The key holder decrypting a masked gathered row sees no coefficient as it was: the row's values
    carry the bounded mask, every garbage coefficient a mask uniform modulo Q."""
    from henn.keyholder import KeyHolder, RefreshTerms
    scheme, secret = ctx
    table = scheme.encrypt(table_values(200, 8, 4), layout="table")
    h = scheme.row_sum(table, np.arange(0, 200, 3))
    target = scheme.coeff_target(h, rev=True)
    plan = scheme.refresh_plan(h, target)
    assert plan.n_read == 8 and plan.moduli == tuple(scheme.ring.q[: scheme.level(h) + 1])
    mask = KeyHolder(scheme, secret, terms=RefreshTerms(entries_per_refresh=8)).draw_mask(plan)
    masked = scheme.apply_mask(h, mask)
    r = scheme.ring

    def phase(ct):
        return scheme._phase_limbs(ct, scheme._s_full(secret))[0]
    before, after = phase(h), phase(masked)
    assert np.mean(np.all(before != after, axis=0)) > 0.999
    fresh = scheme.remove_mask(scheme.reencrypt_masked(masked, target, secret), mask, target, h)
    want = scheme.decrypt_exact_local(h, secret)
    close(scheme.decrypt_exact_local(fresh, secret), want, TABLE * 70)
    assert fresh.meta["rev"] and not fresh.meta["dirty"] and r.n == scheme.ring.n


@pytest.mark.parametrize("layout, message", [
    ({"layout": "nope"}, "unknown CKKS layout"),
    ({"layout": "coeff", "level": 9, "scale": 2.0**32, "stride": 8, "rev": False}, "level"),
    ({"layout": "coeff", "level": 1, "scale": float("nan"), "stride": 8, "rev": False}, "scale"),
    ({"layout": "coeff", "level": 1, "scale": 2.0**32, "stride": 6, "rev": False}, "needs stride 8"),
    ({"layout": "coeff", "level": 1, "scale": 2.0**32, "stride": 2048, "rev": False}, "needs stride 8"),
    ({"layout": "coeff", "level": 1, "scale": 2.0**32, "stride": 8, "rev": 1}, "bool rev"),
    ({"layout": "constant", "level": 1, "scale": 2.0**32}, "one value"),
    ("rows", "unknown CKKS layout"),
])
def test_bad_layouts_are_refused(ctx, layout, message):
    scheme, secret = ctx
    with pytest.raises(EncodingError, match=message):
        scheme.encrypt(np.ones((2, 8)), secret, layout=layout)


def test_other_schemes_ignore_the_table_hint_and_refuse_targets():
    scheme = he_core.get_scheme("plain")
    secret = scheme.keygen(KeyRequirements(sizes=(3,))).secret
    ct = scheme.encrypt(np.ones((2, 3)), layout="table")
    np.testing.assert_array_equal(scheme.decrypt_exact_local(ct, secret), np.ones((2, 3)))
    assert scheme.layout_of(ct) is None
    with pytest.raises(EncodingError, match="no layout"):
        scheme.encrypt(np.ones((2, 3)), layout={"layout": "coeff"})


def test_params_for_depth_is_secure_deep_enough_and_leaves_the_refresh_floor():
    from he_core.schemes.ckks.params import PROTOCOL_SCALE_BITS, REFRESH_FLOOR_LEVELS
    for depth in (1, 3, 4, 6):
        params = CkksScheme.params_for_depth(depth)
        assert params.levels == depth + REFRESH_FLOOR_LEVELS and params.security_bits >= 128
        assert params.scale_bits == PROTOCOL_SCALE_BITS
    assert CkksScheme.params_for_depth(4).poly_degree == 16384  # the sentiment network's set: 370 of 438 bits


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_odd_polynomial_takes_three_products(ctx, seed):
    scheme, secret = ctx
    x = np.random.default_rng(seed).uniform(-1, 1, (1, 8))
    coeffs = [0.5, 0.2, 0.0, -0.03, 0.0, 0.004]
    out = scheme.polyval(scheme.encrypt(x), coeffs)
    assert scheme.level(out) == scheme.params.levels - 3
    close(scheme.decrypt_exact_local(out, secret), np.polyval(coeffs[::-1], x), 2.0**-18)


def test_deferred_products_are_finished_before_gathering(ctx):
    """A table multiplied by a constant holds three components until relinearised; a gather must not drop one."""
    scheme, secret = ctx
    x = table_values(40, 8, 6)
    table = scheme.encrypt(x, layout="table")
    half = scheme.encrypt(np.array([[0.5]]), layout={"layout": "constant", "level": 1, "scale": 2.0**32})
    scaled = scheme.mul(table, half)
    assert scaled.data.shape[1] == 3  # relinearisation deferred
    close(scheme.decrypt_exact_local(scheme.row_sum(scaled, [1, 3]), secret), 0.5 * x[[1, 3]].sum(0, keepdims=True), PRODUCT)


def test_an_update_follows_a_table_whose_scale_left_the_working_one(ctx):
    scheme, secret = ctx
    x = table_values(30, 8, 7)
    table = scheme.mul_plain(scheme.encrypt(x, layout="table"), 0.5)  # a free scalar: only the scale changes
    update = scheme.encrypt(np.ones((1, 8)))
    with pytest.raises(RefreshRequired) as info:
        scheme.index_add_(table, [2, 5], update)
    assert info.value.ciphertext is update and info.value.target["scale"] == table.scale
    scheme.index_add_(table, [2, 5], refreshed(scheme, secret, info.value))
    want = 0.5 * x
    want[[2, 5]] += 1.0
    close(scheme.decrypt_exact_local(table, secret), want, TABLE * 4)


def test_the_refused_update_is_named_as_given(ctx):
    scheme, secret = ctx
    table = scheme.encrypt(table_values(30, 8, 8), layout="table")
    above = scheme.encrypt(np.ones((1, 8)), secret, layout={"layout": "coeff", "level": 3, "scale": 2.0**20,
                                                             "stride": 8, "rev": False})
    with pytest.raises(RefreshRequired) as info:
        scheme.index_add_(table, [0], above)
    assert info.value.ciphertext is above  # the caller's object, so it can be swapped for its refresh
    with pytest.raises(RefreshRequired):
        scheme.check_index_add(table, [0], above)  # the same answer, without touching the table


def test_oversized_vectors_are_an_encoding_error(ctx):
    scheme, secret = ctx
    for layout in ("table", {"layout": "slots", "level": 4, "scale": 2.0**32}):
        with pytest.raises(EncodingError, match="exceed"):
            scheme.encrypt(np.ones((1, 4096)), secret, layout=layout)


def test_malformed_ciphertexts_are_refused_before_any_kernel(ctx):
    scheme, secret = ctx
    good = scheme.encrypt(np.ones((2, 8)), layout="table")
    for bad in (good.replace(meta={"level": 1}), good.replace(meta={**good.meta, "stride": 3}),
                good.replace(shape=(10**5, 8)), good.replace(data=good.data[:, :, :, :100].copy()),
                good.replace(data=good.data.astype(np.int64))):
        with pytest.raises(he_core.MismatchError, match="malformed|its shape needs"):
            scheme.decrypt_exact_local(bad, secret)
