"""Bad input on every scheme: each is refused with the named exception, before anything is computed.

Wrong shapes, plaintexts that are not finite reals, operands from another key, scheme or
parameter set, values past the edge of the range (and the edge itself, accepted), row
indices out of range, operations a scheme does not have. The CKKS level limits are
named errors too; the campaign's findings are fixed and kept here as tests.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import he_core
from he_core import Capability, KeyRequirements, SeededRandom
from he_core.errors import (CapabilityError, EncodingError, HEOverflowError, KeyMissingError, LevelExhaustedError,
                            MismatchError)

from .campaign import CAMPAIGN, CONTEXTS, SIZES, arrays, shapes


def broadcasts(a: tuple[int, int], b: tuple[int, int], *, sizes: bool) -> bool:
    rows = a[0] == b[0] or 1 in (a[0], b[0])
    cols = a[1] == b[1] or (sizes and 1 in (a[1], b[1]))
    return rows and cols


@given(data=st.data())
@CAMPAIGN
def test_shapes_that_do_not_broadcast_are_refused(ctx, data):
    sa, sb = data.draw(shapes()), data.draw(shapes())
    a, b = ctx.enc(np.zeros(sa)), ctx.enc(np.zeros(sb))
    for op in (ctx.scheme.add, ctx.scheme.sub):
        if broadcasts(sa, sb, sizes=False):
            op(a, b)
        else:
            with pytest.raises(MismatchError, match="do not broadcast"):
                op(a, b)
    if ctx.scheme.supports(Capability.INNER_PRODUCT) and not broadcasts(sa, sb, sizes=False):
        with pytest.raises(MismatchError):
            ctx.scheme.inner(a, b)
    if ctx.scheme.supports(Capability.CIPHER_MULTIPLY) and not broadcasts(sa, sb, sizes=True):
        with pytest.raises(MismatchError):
            ctx.scheme.mul(a, b)
    if sa[1] != sb[1]:
        with pytest.raises(MismatchError):
            ctx.scheme.concat_rows([a, b])


@pytest.mark.filterwarnings("ignore:Casting complex values")  # numpy warns on the way to the TypeError
@given(data=st.data())
@CAMPAIGN
def test_plaintext_operands_that_do_not_fit_are_refused(ctx, data):
    rows, size = data.draw(shapes())
    a = ctx.enc(np.ones((rows, size)))
    bad_shape = data.draw(st.sampled_from([(size + 1,), (rows + 1, size), (rows, size, 1), (2 * rows + 1, 1)]))
    for op in (ctx.scheme.add_plain, ctx.scheme.sub_plain, ctx.scheme.mul_plain):
        with pytest.raises(EncodingError):
            op(a, np.ones(bad_shape))
        bad = np.ones((rows, size))
        bad[data.draw(st.integers(0, rows - 1)), data.draw(st.integers(0, size - 1))] = \
            data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        with pytest.raises(EncodingError, match="NaN or infinity"):
            op(a, bad)
        with pytest.raises(TypeError):
            op(a, np.ones((rows, size)) * 1j)
        with pytest.raises(TypeError):
            op(a, a)
    with pytest.raises(EncodingError):
        ctx.scheme.lincomb(np.ones((2, rows + 1)), a)


@pytest.mark.filterwarnings("ignore:Casting complex values")
def test_values_to_encrypt_that_are_not_finite_reals_are_refused(ctx):
    for bad in ([[np.nan, 1.0]], [[np.inf]], [], [[[1.0]]], np.zeros((0, 3))):
        with pytest.raises(EncodingError):
            ctx.scheme.encrypt(bad)
    for bad in ([["a", "b"]], [[1 + 2j]], object()):
        with pytest.raises(TypeError):
            ctx.scheme.encrypt(bad)


def test_operands_under_another_key_are_refused(ctx):
    x = np.ones((2, 3))
    mine, theirs = ctx.enc(x), ctx.other.encrypt(x)
    with pytest.raises(MismatchError, match="different keys"):
        ctx.scheme.add(mine, theirs)
    with pytest.raises(MismatchError, match="cannot decrypt"):
        ctx.scheme.decrypt_exact_local(mine, ctx.other_keys.secret)
    with pytest.raises(MismatchError, match="cannot decrypt"):
        ctx.scheme.decrypt(mine, ctx.other_keys.secret)
    with pytest.raises(MismatchError):
        ctx.scheme.index_add_(mine, [0], theirs)
    if ctx.scheme.supports(Capability.CIPHER_MULTIPLY):
        with pytest.raises(MismatchError, match="different keys"):
            ctx.scheme.mul(mine, theirs)
    if ctx.scheme.supports(Capability.REKEY):
        switch = ctx.scheme.make_switch_key(ctx.keys.secret, ctx.other_keys.secret, rng=SeededRandom(1))
        with pytest.raises(MismatchError, match="switch key starts from"):
            ctx.scheme.rekey(theirs, switch)


@pytest.mark.parametrize("foreign", ["plain", "vhe", "ckks", "ckks-other-params"])
def test_ciphertexts_of_another_scheme_or_parameter_set_are_refused(ctx, foreign):
    if foreign == ctx.label:
        pytest.skip("same scheme and parameters")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        if foreign == "ckks-other-params":
            other = he_core.get_scheme("ckks", poly_degree=2048, levels=1, allow_insecure=True)
        else:
            other = he_core.get_scheme(CONTEXTS[foreign][0], **CONTEXTS[foreign][1])
        keys = other.keygen(KeyRequirements(sizes=(3,)), rng=SeededRandom(9))
    ct = other.encrypt(np.ones((1, 3)))
    mine = ctx.enc(np.ones((1, 3)))
    for call in (lambda: ctx.scheme.add(mine, ct), lambda: ctx.scheme.neg(ct), lambda: ctx.scheme.row_sum(ct),
                 lambda: ctx.scheme.decrypt_exact_local(ct, ctx.keys.secret),
                 lambda: ctx.scheme.decrypt_exact_local(mine, keys.secret)):
        with pytest.raises(MismatchError):
            call()


def test_row_indices_out_of_range_or_not_integers_are_refused(ctx):
    a = ctx.enc(np.ones((3, 2)))
    for op in (ctx.scheme.take_rows, ctx.scheme.row_sum):
        with pytest.raises(IndexError):
            op(a, [3])
        with pytest.raises(IndexError):
            op(a, [-4])
        with pytest.raises(TypeError):
            op(a, [0.5])
        with pytest.raises(ValueError):
            op(a, np.array([True, False]))
    with pytest.raises(MismatchError, match="2 rows given for 3 indices"):
        ctx.scheme.index_add_(a, [0, 1, 2], ctx.enc(np.ones((2, 2))))


# ------------------------------------------------------------------ the edge of the range
def largest_value(ctx) -> float:
    """The largest |value| a fresh encryption takes (on the grid for vhe)."""
    if ctx.kind == "fixed":
        return np.floor(ctx.scheme.params.max_value / ctx.unit) * ctx.unit
    if ctx.kind == "approx":
        return np.nextafter(ctx.scheme.budget(ctx.enc(np.zeros((1, 1))))["max_value"], 0)
    return float(np.finfo(np.float64).max)


@given(data=st.data())
@CAMPAIGN
def test_the_edge_of_the_range_is_accepted_and_past_it_refused(ctx, data):
    top = largest_value(ctx)
    shape = data.draw(shapes())
    x = data.draw(arrays(ctx, shape, top))
    x.flat[data.draw(st.integers(0, x.size - 1))] = data.draw(st.sampled_from([top, -top]))
    ct = ctx.enc(x)
    ctx.check("encrypt at the edge", ct, ctx.dec(ct), x)
    if ctx.kind == "float":
        return
    past = x.copy()
    past.flat[0] = np.sign(data.draw(st.sampled_from([1.0, -1.0]))) * data.draw(
        st.floats(top * (1 + 2**-20), top * 2**20))
    with pytest.raises(EncodingError, match="cannot encrypt"):
        ctx.enc(past)


@pytest.mark.filterwarnings("ignore:overflow encountered")  # the twin computes in float64 and overflows
def test_products_past_the_range_are_refused(ctx):
    if ctx.kind == "float":  # float64 overflow surfaces at decryption, as a wrap would
        big = ctx.enc(np.array([[1e200]]))
        with pytest.raises(HEOverflowError):
            ctx.dec(ctx.scheme.mul(big, big))
        return
    top = largest_value(ctx)
    big = ctx.enc(np.array([[top, -top]]))
    if ctx.kind == "fixed":  # vhe refuses before computing
        with pytest.raises((EncodingError, HEOverflowError)):
            ctx.scheme.mul_plain(big, [top, top])
        with pytest.raises((EncodingError, HEOverflowError)):
            ctx.scheme.mul(big, big)
        return
    # CKKS holds larger values above level 0: squared down towards level 0, |values| ~
    # top^(2^levels) would wrap; the rescale that would wrap them refuses (its record knows),
    # and a decryption of anything that got through must say so.
    with pytest.raises(HEOverflowError, match="would wrap|outgrew the modulus"):
        while ctx.scheme.level(big) > 0:
            big = ctx.scheme.mul(big, big)
        ctx.dec(big)


# ------------------------------------------------------------------ capabilities and levels
def test_missing_operations_raise_capability_error(ctx):
    a = ctx.enc(np.ones((1, 2)))
    for capability, op, args in ((Capability.ROTATE, "rotate", (a, 1)), (Capability.LEVELS, "level_drop", (a, 0)),
                                 (Capability.EXACT, "rerandomize", (a,))):
        if not ctx.scheme.supports(capability):
            with pytest.raises(CapabilityError, match=op):
                getattr(ctx.scheme, op)(*args)


def test_matvec_needs_the_key_for_its_matrix(ctx):
    if not ctx.scheme.supports(Capability.LINEAR_TRANSFORM):
        pytest.skip("no linear maps")
    a = ctx.enc(np.ones((1, 3)))
    m = np.arange(6.0).reshape(2, 3) / 8
    with pytest.raises(EncodingError, match="does not take vectors of size 3"):
        ctx.scheme.matvec(a, m.T, key=ctx.scheme.make_linear_key(ctx.keys.secret, m.T))
    if ctx.name == "vhe":
        with pytest.raises(KeyMissingError):
            ctx.scheme.matvec(a, m)
        with pytest.raises(MismatchError, match="different matrix"):
            ctx.scheme.matvec(a, m, key=ctx.scheme.make_linear_key(ctx.keys.secret, m + 1))


def leveled(ctx):
    if not ctx.scheme.supports(Capability.LEVELS):
        pytest.skip("no levels")
    return ctx.scheme


def test_operations_that_need_a_level_refuse_level_0(ctx):
    s = leveled(ctx)
    a = s.level_drop(ctx.enc(np.ones((3, 2))), 0)
    b = s.level_drop(ctx.enc(np.ones((1, 2))), 0)
    for call in (lambda: s.mul(a, a), lambda: s.mul_plain(a, [1.0, 2.0]), lambda: s.mul_plain(a, 1e6),
                 lambda: s.take_rows(a, [2, 0]), lambda: s.sum_slots(a), lambda: s.index_add_(a, [0, 0], b)):
        with pytest.raises(LevelExhaustedError):
            call()
    with pytest.raises((ValueError, he_core.HEError)):
        s.level_drop(a, 1)  # levels only go down


def test_lincomb_with_zero_weights_spends_one_level(ctx):
    s = leveled(ctx)
    a = ctx.enc(np.array([[1.0], [2.0]]))
    top = s.level(a)
    assert s.level(s.lincomb(np.ones((2, 2)), a)) == top - 1
    out = s.lincomb(np.zeros((2, 2)), s.level_drop(a, 1))
    np.testing.assert_array_equal(ctx.dec(out), np.zeros((2, 1)))


def test_noise_estimate_of_a_vanishing_scalar_product_bounds_its_error(ctx):
    """Found by the campaign: a factor rounding to 0 added its miss squared, which underflowed to 0 below ~1e-154."""
    s = leveled(ctx)
    x = np.array([[16.0]])
    out = s.mul_plain(ctx.enc(x), 1e-269, rescale=False)
    err = float(np.abs(ctx.dec(out) - x * 1e-269).max())
    assert err <= s.noise_estimate(out)["slot_bound"]


def test_sizes_without_keys_are_refused(ctx):
    if ctx.name != "vhe":
        pytest.skip("only vhe makes keys per vector size")
    missing = max(SIZES) + 1
    with pytest.raises(KeyMissingError, match=f"size {missing}"):
        ctx.scheme.encrypt(np.ones((1, missing)))


def test_a_mask_that_is_not_a_mask_is_refused_by_name(ctx):
    if not ctx.scheme.supports(Capability.REFRESH):
        pytest.skip("no masked refresh")
    with pytest.raises(he_core.ParameterError, match="cannot use the mask"):
        ctx.scheme.apply_mask(ctx.enc(np.ones((1, 2))), None)


def test_an_unrescaled_vhe_product_past_its_range_names_its_value(ctx):
    """Found by the campaign: the message reported every result at the working scale (0.25 at 2^2f read as 1.6e4)."""
    if ctx.name != "vhe":
        pytest.skip("vhe's fixed-point range")
    with pytest.raises(HEOverflowError, match=r"values up to ~0\.25 \(at scale 2\^32\).*\|v\| < 0\.125 at that"):
        ctx.scheme.mul_plain(ctx.enc(np.array([[0.5]])), 0.5, rescale=False)
    with pytest.raises(HEOverflowError, match=r"values up to ~0\.25 \(at scale 2\^32\)"):
        ctx.scheme.mul(ctx.enc(np.array([[0.5]])), ctx.enc(np.array([[0.5]])), rescale=False)
