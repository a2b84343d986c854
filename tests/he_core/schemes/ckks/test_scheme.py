"""Every CKKS operation against numpy, within a stated precision.

Parameters: N = 2048 (explicitly insecure, for speed) with the production prime sizes
(q_0: 60 bits, scale primes: 40 bits, special prime: 60 bits) and scale 2^40; inputs in
[-1, 1]. Measured worst errors over many seeds were about 2^-25 for encryption and
element-wise ops (public-key encryption noise dominates), 2^-22 for inner products and
matvec (key-switching noise of the rotations), 2^-20 for row movements (mask
multiplication plus several rotations). The bounds below leave a 4x-8x margin.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import he_core
from he_core import KeyRequirements, SeededRandom
from he_core.errors import (EncodingError, KeyMissingError, LevelExhaustedError, MismatchError)
from he_core.schemes.ckks import CkksParams, CkksScheme

ELEMENTWISE = 2.0**-22  # encrypt, add, sub, neg, add_plain, mul_plain, mul, polyval
REDUCTIONS = 2.0**-19   # inner, matvec, rotate, conjugate, sum_slots
MOVES = 2.0**-17        # take_rows, concat_rows, row_sum, index_add_, lincomb, broadcasting


@pytest.fixture(scope="module")
def ctx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=2048, levels=4, allow_insecure=True))
    keys = scheme.keygen(KeyRequirements(rotations=(3, -5)), rng=SeededRandom(7))
    return scheme, keys


def close(got, want, bound):
    assert got.shape == want.shape
    err = float(np.max(np.abs(got - want), initial=0.0))
    assert err <= bound, f"error {err:.3e} (2^{math.log2(err):.1f}) above bound 2^{math.log2(bound):.0f}"


shapes = st.tuples(st.integers(1, 5), st.sampled_from([1, 2, 3, 7, 8, 33]))


def values(shape, seed):
    x = np.random.default_rng(seed).uniform(-1, 1, shape)
    x.flat[0] = 0.0
    return x


SET = settings(max_examples=8, deadline=None)


@given(shape=shapes, seed=st.integers(0, 2**31))
@SET
def test_elementwise_ops(ctx, shape, seed):
    s, k = ctx
    x, y = values(shape, seed), values(shape, seed + 1)
    a, b = s.encrypt(x), s.encrypt(y, k.secret)
    d = lambda c: s.decrypt_exact_local(c, k.secret)
    close(d(a), x, ELEMENTWISE)
    close(d(b), y, ELEMENTWISE)
    close(d(s.add(a, b)), x + y, ELEMENTWISE)
    close(d(s.sub(a, b)), x - y, ELEMENTWISE)
    close(d(s.neg(a)), -x, ELEMENTWISE)
    close(d(s.add_plain(a, y)), x + y, ELEMENTWISE)
    close(d(s.mul_plain(a, y)), x * y, ELEMENTWISE)
    close(d(s.mul_plain(a, -3.5)), -3.5 * x, 4 * ELEMENTWISE)
    close(d(s.mul(a, b)), x * y, ELEMENTWISE)
    close(d(s.rescale(s.mul(a, b, rescale=False))), x * y, ELEMENTWISE)
    close(d(s.mul(s.mul(a, b), s.mul(a, a))), x * y * x * x, ELEMENTWISE)


@given(shape=shapes, seed=st.integers(0, 2**31), out=st.integers(1, 9))
@SET
def test_reductions(ctx, shape, seed, out):
    s, k = ctx
    x, y = values(shape, seed), values(shape, seed + 1)
    a, b = s.encrypt(x), s.encrypt(y)
    d = lambda c: s.decrypt_exact_local(c, k.secret)
    close(d(s.inner(a, b)), (x * y).sum(axis=1, keepdims=True), REDUCTIONS)
    m = values((out, shape[1]), seed + 2)
    close(d(s.matvec(a, m)), x @ m.T, REDUCTIONS)
    close(d(s.sum_slots(a)), np.array([[x.sum()]]), REDUCTIONS)


@given(shape=shapes, seed=st.integers(0, 2**31), idx=st.lists(st.integers(0, 4), min_size=1, max_size=6))
@SET
def test_row_movements(ctx, shape, seed, idx):
    s, k = ctx
    x, y = values(shape, seed), values(shape, seed + 1)
    idx = [i % shape[0] for i in idx]
    a = s.encrypt(x)
    d = lambda c: s.decrypt_exact_local(c, k.secret)
    close(d(s.take_rows(a, idx)), x[idx], MOVES)
    close(d(s.concat_rows([a, s.encrypt(y)])), np.vstack([x, y]), MOVES)
    close(d(s.row_sum(a)), x.sum(axis=0, keepdims=True), MOVES)
    close(d(s.row_sum(a, idx)), x[idx].sum(axis=0, keepdims=True), MOVES)
    w = values((2, shape[0]), seed + 3)
    close(d(s.lincomb(w, a)), w @ x, MOVES)
    upd = values((len(idx), shape[1]), seed + 4)
    want = x.copy()
    np.add.at(want, idx, upd)
    s.index_add_(a, idx, s.encrypt(upd))
    close(d(a), want, MOVES)


def test_broadcasting(ctx):
    s, k = ctx
    x, col, row = values((4, 6), 1), values((4, 1), 2), values((1, 6), 3)
    a = s.encrypt(x)
    d = lambda c: s.decrypt_exact_local(c, k.secret)
    close(d(s.mul(s.encrypt(col), a)), col * x, MOVES)
    close(d(s.mul(a, s.encrypt(row))), x * row, MOVES)
    close(d(s.add(a, s.encrypt(row))), x + row, MOVES)
    close(d(s.add_plain(a, col)), x + col, ELEMENTWISE)
    close(d(s.mul_plain(a, row[0])), x * row, ELEMENTWISE)
    # an inner product (size 1, other stride) times a vector
    close(d(s.mul(s.inner(a, a), a)), (x * x).sum(1, keepdims=True) * x, MOVES)


def test_many_rows_span_several_ciphertexts(ctx):
    s, k = ctx
    x = values((70, 33), 5)  # 64 slots per row, 16 rows per ciphertext: 5 ciphertexts
    a = s.encrypt(x)
    assert a.data.shape[0] == 5
    d = lambda c: s.decrypt_exact_local(c, k.secret)
    close(d(s.mul(a, a)), x * x, ELEMENTWISE)
    close(d(s.row_sum(a)), x.sum(0, keepdims=True), MOVES * 8)
    close(d(s.take_rows(a, [69, 0, 17])), x[[69, 0, 17]], MOVES)


@pytest.mark.parametrize("steps", [1, 3, -5, 17, 1023, -1])
def test_rotation_is_a_permutation(ctx, steps):
    s, k = ctx
    slots = s.params.slots
    x = values((1, slots), abs(steps))
    got = s.decrypt_exact_local(s.rotate(s.encrypt(x), steps), k.secret)
    close(got, np.roll(x, -steps, axis=1), REDUCTIONS)


def test_conjugate_keeps_real_values(ctx):
    s, k = ctx
    x = values((2, 5), 9)
    close(s.decrypt_exact_local(s.conjugate(s.encrypt(x)), k.secret), x, REDUCTIONS)


def test_polyval_depth_and_value(ctx):
    s, k = ctx
    x = values((2, 8), 4) * 2
    coeffs = [0.5, 0.197, 0.0, -0.004]
    ct = s.encrypt(x)
    out = s.polyval(ct, coeffs)
    close(s.decrypt_exact_local(out, k.secret), np.polynomial.polynomial.polyval(x, coeffs), ELEMENTWISE * 4)
    assert s.budget(out)["level"] == s.budget(ct)["level"] - 2  # depth ceil(log2 3) = 2
    # the generic circuit (powers first, then coefficients) also works on CKKS
    gen = he_core.circuits.polyval(s, ct, coeffs)
    close(s.decrypt_exact_local(gen, k.secret), np.polynomial.polynomial.polyval(x, coeffs), ELEMENTWISE * 4)
    coeffs7 = [0.1, -0.3, 0.2, 0.05, -0.01, 0.02, 0.0, 0.003]
    close(s.decrypt_exact_local(s.polyval(ct, coeffs7), k.secret), np.polynomial.polynomial.polyval(x, coeffs7), ELEMENTWISE * 8)


def test_scale_is_tracked_exactly(ctx):
    s, k = ctx
    a = s.encrypt(values((1, 4), 1))
    level = s.budget(a)["level"]
    prod = s.mul(a, a, rescale=False)
    assert prod.scale == a.scale * a.scale
    r = s.rescale(prod)
    assert r.scale == prod.scale / s.ring.q[level]  # the prime actually dropped, not 2^40
    assert s.budget(r)["level"] == level - 1


def test_levels_run_out_with_a_clear_error(ctx):
    s, k = ctx
    a = s.encrypt([[0.5, 0.25]])
    for _ in range(s.params.levels):
        a = s.mul(a, a)
    assert s.budget(a)["remaining"] == 0
    with pytest.raises(LevelExhaustedError, match="level"):
        s.mul(a, a)
    with pytest.raises(LevelExhaustedError):
        s.mul_plain(a, [2.0, 3.0])
    with pytest.raises(LevelExhaustedError):
        s.mul_plain(a, 1e-6)  # outside the range a scalar can be absorbed into the scale
    with pytest.raises(LevelExhaustedError):
        s.rescale(a)
    close(s.decrypt_exact_local(s.mul_plain(a, 2.0), k.secret), 2 * s.decrypt_exact_local(a, k.secret), ELEMENTWISE)  # free
    assert abs(s.decrypt_exact_local(a, k.secret)[0, 0] - 0.5**16) < ELEMENTWISE


def test_mixed_levels_are_aligned(ctx):
    s, k = ctx
    x = values((2, 3), 6)
    a = s.encrypt(x)
    a3 = s.mul(s.mul(a, a), a)  # two levels down
    d = lambda c: s.decrypt_exact_local(c, k.secret)
    close(d(s.add(a, a3)), x + x**3, ELEMENTWISE)
    close(d(s.sub(a3, a)), x**3 - x, ELEMENTWISE)
    close(d(s.mul(a3, a)), x**4, ELEMENTWISE)
    low = s.level_drop(a, 1)
    close(d(low), x, ELEMENTWISE)
    assert s.budget(low)["level"] == 1


def test_scales_at_the_same_level_are_aligned_or_refused(ctx):
    s, k = ctx
    a = s.encrypt([[0.5, -0.25]])
    b = s.encrypt([[0.5, 1.0]], scale=2.0**35)
    both = s.add(a, b)  # same level, different scales: one level is spent to align them
    close(s.decrypt_exact_local(both, k.secret), np.array([[1.0, 0.75]]), ELEMENTWISE * 4)
    assert s.budget(both)["level"] == s.budget(a)["level"] - 1
    with pytest.raises(MismatchError, match="scales"):
        s.add(s.mul(a, a, rescale=False), a)  # an unrescaled product cannot be realigned precisely


def test_scalar_factors_cost_no_level(ctx):
    s, k = ctx
    x = values((3, 5), 12)
    a = s.encrypt(x)
    for c in (0.25, -3.0, 1.0 / 3):
        out = s.mul_plain(a, c)
        assert s.budget(out)["level"] == s.budget(a)["level"]
        close(s.decrypt_exact_local(out, k.secret), c * x, ELEMENTWISE * 4)
    tiny = s.mul_plain(a, 1e-6)  # outside the free range: a rescaled product
    assert s.budget(tiny)["level"] == s.budget(a)["level"] - 1
    close(s.decrypt_exact_local(tiny, k.secret), 1e-6 * x, ELEMENTWISE)
    close(s.decrypt_exact_local(s.add(s.mul_plain(a, 0.25), a), k.secret), 1.25 * x, ELEMENTWISE * 4)


def test_bad_inputs_are_refused(ctx):
    s, k = ctx
    with pytest.raises(EncodingError, match="out of range"):
        s.encrypt([[2.0**20]])  # q_0 / (4 * 2^40) = 2^18
    with pytest.raises(EncodingError):
        s.encrypt([[np.nan]])
    with pytest.raises(EncodingError, match="exceed"):
        s.encrypt(np.zeros((1, s.params.slots + 1)))
    a = s.encrypt([[1.0, 2.0]])
    with pytest.raises(EncodingError, match="out of range"):
        s.add_plain(a, 2.0**20)
    with pytest.raises(EncodingError):
        s.matvec(a, np.ones((3, 3)))
    with pytest.raises(TypeError):
        s.mul_plain(a, [[1 + 1j, 0]])


def test_other_parameter_sets_are_refused(ctx):
    s, k = ctx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = CkksScheme(CkksParams(poly_degree=2048, levels=3, allow_insecure=True))
    other.keygen(rng=SeededRandom(1))
    with pytest.raises(MismatchError):
        s.add(s.encrypt([[1.0]]), other.encrypt([[1.0]]))


def test_rekey_moves_to_the_new_key(ctx):
    s, k = ctx
    k2 = s.keygen(KeyRequirements(), rng=SeededRandom(99))
    try:
        x = values((2, 3), 8)
        a = s.encrypt(x, k.secret)
        switch = s.make_switch_key(k.secret, k2.secret, rng=SeededRandom(3))
        moved = s.rekey(a, switch)
        assert moved.key_id == k2.secret.key_id
        close(s.decrypt_exact_local(moved, k2.secret), x, REDUCTIONS)
    finally:
        s.set_public_keys(k.public)


def test_missing_keys_are_reported():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CkksScheme(CkksParams(poly_degree=1024, levels=1, first_bits=30, scale_bits=20,
                                  special_bits=30, allow_insecure=True))
    k = s.keygen(KeyRequirements(multiply=False), rng=SeededRandom(1))
    a = s.encrypt([[0.5]])
    with pytest.raises(KeyMissingError, match="relinearisation"):
        s.mul(a, a)
    no_rot = he_core.PublicKeys(k.public.scheme, k.public.params_id, k.public.key_id,
                                {**k.public.data, "galois": {}})
    s.set_public_keys(no_rot)
    with pytest.raises(KeyMissingError, match="rotate by 3"):
        s.rotate(a, 3)
    close(s.decrypt_exact_local(s.mul_plain(a, 0.5), k.secret), np.array([[0.25]]), 2.0**-8)


def test_secure_default_set_end_to_end():
    s = he_core.get_scheme("ckks")
    assert s.params.security_bits >= 128 and s.params.poly_degree == 8192
    k = s.keygen(KeyRequirements(sizes=(16,)), rng=SeededRandom(5))
    x = values((3, 16), 2)
    a = s.encrypt(x)
    got = s.decrypt_exact_local(s.inner(s.mul(a, a), a), k.secret)
    # Key-switching noise grows with N: at N = 8192 rotations measured about 2^-19.3 here.
    close(got, (x * x * x).sum(1, keepdims=True), 2.0**-16)


def test_hybrid_key_switching_with_fewer_digits():
    # dnum = 2 over 4 primes: two primes per digit and two special primes.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CkksScheme(CkksParams(poly_degree=2048, levels=3, dnum=2, allow_insecure=True))
    assert s.params.alpha == 2 and len(s.params.p_primes) == 2
    k = s.keygen(rng=SeededRandom(4))
    x = values((2, 9), 11)
    a = s.encrypt(x)
    close(s.decrypt_exact_local(s.mul(a, a), k.secret), x * x, ELEMENTWISE)
    close(s.decrypt_exact_local(s.inner(a, a), k.secret), (x * x).sum(1, keepdims=True), REDUCTIONS)
    close(s.decrypt_exact_local(s.rotate(s.encrypt(x[:1]), 2), k.secret)[:, :7], x[:1, 2:], REDUCTIONS)


def test_layout_flags_survive_mixed_operands(ctx):
    # Regression: a replicated row_sum plus a plain one-row batch must not be flagged clean,
    # or a later row broadcast sums the replicas into the result.
    s, k = ctx
    x, y = values((4, 4), 21), values((1, 4), 22)
    a = s.encrypt(x)
    mixed = s.add(s.row_sum(a), s.encrypt(y))
    want = x.sum(0, keepdims=True) + y
    close(s.decrypt_exact_local(s.add(a, mixed), k.secret), x + want, MOVES)
    close(s.decrypt_exact_local(s.mul(a, mixed), k.secret), x * want, MOVES)
    prod = s.mul(s.row_sum(a), s.inner(s.encrypt(y), s.encrypt(y)))  # replicated times dirty
    close(s.decrypt_exact_local(s.add(a, s.mul(prod, s.encrypt(y))), k.secret),
          x + x.sum(0, keepdims=True) * (y * y).sum() * y, MOVES)


def test_values_that_outgrow_the_modulus_are_not_decrypted_silently(ctx):
    s, k = ctx
    a = s.encrypt([[300.0, -2.0]])
    a = s.level_drop(a, 2)
    a2 = s.mul(a, a)  # 9e4 at level 1: Garner's CRT over two primes still holds it
    close(s.decrypt_exact_local(a2, k.secret), np.array([[9e4, 4.0]]), 1e-3)
    # 8.1e9 * 2^40 > q_0 / 2 at level 0: the polynomial would wrap. The rescale into level 0
    # refuses (the record knows); a decryption of anything that got through must say so.
    with pytest.raises(he_core.HEOverflowError, match="would wrap|outgrew"):
        a4 = s.mul(a2, a2)
        s.decrypt_exact_local(a4, k.secret)


@given(rows=st.integers(1, 5), out=st.integers(1, 4), seed=st.integers(0, 2**31))
@SET
def test_lincomb_of_whole_ciphertext_rows(ctx, rows, out, seed):
    """Rows of natural_size are whole ciphertexts: lincomb is integer multiples and sums, zeros and negatives too."""
    s, k = ctx
    x = values((rows, s.natural_size), seed)
    w = np.random.default_rng(seed + 1).uniform(-2, 2, (out, rows))
    w[0, :] = 0.0  # an all-zero output row
    if rows > 1:
        w[-1, 0] = 0.0
    ct = s.encrypt(x)
    got = s.lincomb(w, ct)
    close(s.decrypt_exact_local(got, k.secret), w @ x, MOVES)
    assert s.level(got) == s.level(ct) - 1
    assert not got.meta["dirty"]


def test_minimal_keys_hold_no_rotation_and_survive_a_file(ctx):
    from he_core import serialization
    s, _ = ctx
    _secret, public = s.keygen(KeyRequirements(sizes=(1, 8), rotations=(3,), minimal=True), rng=SeededRandom(8))
    assert sorted(public.data["galois"]) == [str(s._galois_element(3))]  # the asked rotation only
    back = serialization.loads(serialization.dumps(public), allow_insecure=True)
    assert back.requirements.minimal and back.requirements == public.requirements
