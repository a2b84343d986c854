"""Every vhe operation against the plaintext result on the encoded inputs.

Exact ops (add, sub, neg, add_plain, row ops) must decrypt to exactly the plaintext
result of the encoded values; rounding ops (mul_plain, mul, inner, lincomb, matvec,
rescale) to within one unit of 2^-f of the exact rational result of the encoded values.
"""
import importlib.util
import pathlib

import numpy as np

from he_core import SeededRandom
from hypothesis import HealthCheck, given, settings, strategies as st

_spec = importlib.util.spec_from_file_location("vhe_conftest", pathlib.Path(__file__).with_name("conftest.py"))
_conf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conf)
SIZES, encoded = _conf.SIZES, _conf.encoded

F = 2.0**16
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Values up to 64 (the henn range) with zeros, negatives and the extremes over-represented.
values = st.one_of(st.floats(-64, 64, allow_nan=False), st.sampled_from([0.0, -0.0, 64.0, -64.0, 2**-16, -(2**-16)]))


def matrix(rows, size, elements=values):
    return st.lists(elements, min_size=rows * size, max_size=rows * size).map(
        lambda v: np.array(v, dtype=np.float64).reshape(rows, size))


shapes = st.tuples(st.integers(1, 4), st.sampled_from(SIZES))
pairs = shapes.flatmap(lambda s: st.tuples(matrix(*s), matrix(*s)))


def exact(scheme, keys, ct, want):
    got = scheme.decrypt_exact_local(ct, keys.secret)
    np.testing.assert_array_equal(got, want)


def within_unit(scheme, keys, ct, want):
    got = scheme.decrypt_exact_local(ct, keys.secret)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want), initial=0.0) <= 1.0 / ct.scale, (got, want)


@given(pairs, st.booleans())
@SETTINGS
def test_encrypt_decrypt_is_exact_on_the_encoding(vhe, xy, public):
    scheme, keys = vhe
    x, _ = xy
    ct = scheme.encrypt(x) if public else scheme.encrypt(x, keys.secret)
    exact(scheme, keys, ct, encoded(x))
    assert ct.data.dtype == np.int64 and ct.data.flags.c_contiguous
    assert ct.data.shape == (x.shape[0], x.shape[1] + scheme.params.k)


@given(pairs)
@SETTINGS
def test_additive_ops_are_exact(vhe, xy):
    scheme, keys = vhe
    x, y = xy
    a, b = scheme.encrypt(x), scheme.encrypt(y, keys.secret)
    ex, ey = encoded(x), encoded(y)
    exact(scheme, keys, scheme.add(a, b), ex + ey)
    exact(scheme, keys, scheme.sub(a, b), ex - ey)
    exact(scheme, keys, scheme.neg(a), -ex)
    exact(scheme, keys, scheme.add_plain(a, y), ex + ey)
    exact(scheme, keys, scheme.add_plain(a, y[0]), ex + ey[0])
    exact(scheme, keys, scheme.sub_plain(a, 1.5), ex - 1.5)
    exact(scheme, keys, scheme.add(a, scheme.encrypt(y[:1])), ex + ey[:1])  # one row broadcasts


@given(pairs, st.floats(-8, 8, allow_nan=False))
@SETTINGS
def test_mul_plain_within_one_unit(vhe, xy, p):
    scheme, keys = vhe
    x, y = xy
    a = scheme.encrypt(x)
    ex = encoded(x)
    within_unit(scheme, keys, scheme.mul_plain(a, p), ex * encoded(p))
    col = y[:, :1] / 8
    within_unit(scheme, keys, scheme.mul_plain(a, col), ex * encoded(col))
    vec = y[0] / 8  # a per-slot factor goes through a public encryption and a ciphertext product
    within_unit(scheme, keys, scheme.mul_plain(a, vec), ex * encoded(vec))


@given(pairs)
@SETTINGS
def test_products_within_one_unit(vhe, xy):
    scheme, keys = vhe
    x, y = xy
    a, b = scheme.encrypt(x), scheme.encrypt(y, keys.secret)
    ex, ey = encoded(x), encoded(y)
    within_unit(scheme, keys, scheme.mul(a, b), ex * ey)
    within_unit(scheme, keys, scheme.square(a), ex * ex)
    within_unit(scheme, keys, scheme.mul(a, scheme.encrypt(y[:1])), ex * ey[:1])
    s = scheme.encrypt(x[:, :1])
    within_unit(scheme, keys, scheme.mul(s, b), ex[:, :1] * ey)
    within_unit(scheme, keys, scheme.mul(b, s), ex[:, :1] * ey)
    small = scheme.encrypt(x / 16)
    within_unit(scheme, keys, scheme.inner(small, b), (encoded(x / 16) * ey).sum(axis=1, keepdims=True))


@given(shapes.flatmap(lambda s: matrix(s[0], s[1], st.floats(-0.03, 0.03))), st.floats(-2, 2))
@SETTINGS
def test_unrescaled_products_then_rescale(vhe, x, p):
    scheme, keys = vhe
    a = scheme.encrypt(x)
    ex = encoded(x)
    raw = scheme.mul_plain(a, p, rescale=False)
    assert raw.scale == F * F
    exact(scheme, keys, raw, ex * encoded(p))  # nothing was rounded yet: exact at scale 2^32
    within_unit(scheme, keys, scheme.rescale(raw), ex * encoded(p))
    prod = scheme.mul(a, a, rescale=False)
    within_unit(scheme, keys, prod, ex * ex)
    within_unit(scheme, keys, scheme.rescale(prod), ex * ex)


@given(pairs, st.lists(st.integers(0, 3), max_size=10))
@SETTINGS
def test_row_operations_are_exact(vhe, xy, idx):
    scheme, keys = vhe
    x, y = xy
    idx = np.array([i % x.shape[0] for i in idx], dtype=np.int64)
    a = scheme.encrypt(x)
    ex, ey = encoded(x), encoded(y)
    exact(scheme, keys, scheme.row_sum(a), ex.sum(axis=0, keepdims=True))
    if idx.size:
        exact(scheme, keys, scheme.row_sum(a, idx), ex[idx].sum(axis=0, keepdims=True))
        exact(scheme, keys, scheme.take_rows(a, idx), ex[idx])
        exact(scheme, keys, scheme.take_rows(a, idx - x.shape[0]), ex[idx])  # negative indices
    exact(scheme, keys, scheme.concat_rows([a, scheme.encrypt(y)]), np.vstack([ex, ey]))
    for b_rows in (1, idx.size):
        if b_rows == 0:
            continue
        target = scheme.encrypt(x)
        upd = ey[:1] if b_rows == 1 else np.resize(ey, (b_rows, x.shape[1]))
        scheme.index_add_(target, idx, scheme.encrypt(upd))
        want = ex.copy()
        np.add.at(want, idx, upd if b_rows > 1 else upd[0])
        exact(scheme, keys, target, want)


@given(pairs, st.data())
@SETTINGS
def test_lincomb_within_one_unit(vhe, xy, data):
    scheme, keys = vhe
    x, _ = xy
    w = np.array(data.draw(st.lists(st.floats(-2, 2), min_size=2 * x.shape[0], max_size=2 * x.shape[0])))
    w = w.reshape(2, x.shape[0])
    within_unit(scheme, keys, scheme.lincomb(w, scheme.encrypt(x)), encoded(w) @ encoded(x))


@given(shapes.flatmap(lambda s: st.tuples(matrix(*s), st.sampled_from(SIZES).flatmap(
    lambda o: matrix(o, s[1], st.floats(-2, 2))))))
@SETTINGS
def test_matvec_within_one_unit(vhe, case):
    scheme, keys = vhe
    x, g = case
    key = scheme.make_linear_key(keys.secret, g, rng=SeededRandom(1))
    within_unit(scheme, keys, scheme.matvec(scheme.encrypt(x), g, key=key), encoded(x) @ encoded(g).T)


def test_rekey_and_rerandomize(vhe):
    scheme, keys = vhe
    other, other_keys = _conf.make(seed=9)
    x = np.array([[1.25, -64.0, 0.0], [3.5, 2**-16, -7.0]])
    ct = scheme.encrypt(x)
    moved = scheme.rekey(ct, scheme.make_switch_key(keys.secret, other_keys.secret, rng=SeededRandom(2)))
    assert moved.key_id == other_keys.secret.key_id
    exact(other, other_keys, moved, encoded(x))
    fresh = scheme.rerandomize(scheme.add(ct, ct))
    exact(scheme, keys, fresh, 2 * encoded(x))
    assert fresh.meta["tail"] <= scheme.params.switch_tail(x.shape[1] + scheme.params.k)


def test_polyval_degree_three(vhe):
    scheme, keys = vhe
    x = np.array([[-4.0, -0.5, 0.0, 0.75, 1.5, 2.0, -1.0, 4.0]])
    coeffs = [0.5, 0.197, 0.0, -0.004]
    got = scheme.decrypt_exact_local(scheme.polyval(scheme.encrypt(x), coeffs), keys.secret)
    # each rounding op adds at most one unit; the coefficients themselves are encoded too
    want = np.polynomial.polynomial.polyval(encoded(x), encoded(np.array(coeffs)))
    assert np.max(np.abs(got - want)) <= 4 / F


def test_many_additions_stay_exact(vhe):
    scheme, keys = vhe
    x = np.array([[0.5, -1.25, 3.0]])
    acc = scheme.encrypt(np.zeros((4, 3)))
    upd = scheme.encrypt(x)
    for _ in range(300):
        scheme.index_add_(acc, np.array([0, 2, 2], dtype=np.int64), upd)
    want = np.zeros((4, 3))
    want[0] = 300 * x[0]
    want[2] = 600 * x[0]
    exact(scheme, keys, acc, want)
    assert scheme.budget(acc).remaining > 8


def test_refresh_resets_noise(vhe):
    scheme, keys = vhe
    ct = scheme.polyval(scheme.encrypt([[1.5, -2.0]]), [0.0, 1.0, 0.5, 0.25])
    fresh = scheme.refresh(ct, keys.secret)
    assert fresh.meta["noise"] < ct.meta["noise"]
    np.testing.assert_array_equal(scheme.decrypt_exact_local(fresh, keys.secret), scheme.decrypt_exact_local(ct, keys.secret))


def test_keys_and_ciphertexts_survive_serialisation(vhe):
    from he_core import serialization

    scheme, keys = vhe
    x = np.array([[1.5, -3.25, 0.0]])
    ct = scheme.encrypt(x)
    back = serialization.loads(serialization.dumps(ct, params=scheme), allow_insecure=True)
    secret = serialization.loads(serialization.dumps(keys.secret, params=scheme), allow_insecure=True)
    public = serialization.loads(serialization.dumps(keys.public, params=scheme), allow_insecure=True)
    assert back.meta == ct.meta
    other = type(scheme)(scheme.params)
    other.set_public_keys(public)
    exact(other, keys, other.mul_plain(other.add(back, other.encrypt(x)), 0.5), encoded(x))
    exact(scheme, keys, back, scheme.decrypt_exact_local(ct, secret))


@given(st.integers(1, 3), st.sampled_from(SIZES), st.data())
@SETTINGS
def test_largest_values_the_parameters_allow(vhe, rows, size, data):
    scheme, keys = vhe
    top = scheme.params.max_value * 0.999  # the margin leaves room for the noise and key columns
    exact(scheme, keys, scheme.encrypt([[top, -top]]), encoded([[top, -top]]))
    edge = st.one_of(st.floats(-top / 2, top / 2), st.sampled_from([top / 2, -top / 2, 0.0]))
    x = np.array(data.draw(st.lists(edge, min_size=rows * size, max_size=rows * size))).reshape(rows, size)
    a = scheme.encrypt(x)
    exact(scheme, keys, a, encoded(x))
    exact(scheme, keys, scheme.add(a, a), 2 * encoded(x))  # reaches the top of the range
    exact(scheme, keys, scheme.sub(a, scheme.neg(a)), 2 * encoded(x))
    r = np.sqrt(top) * 0.99  # products right below the range limit
    b = scheme.encrypt(np.clip(x, -r, r))
    within_unit(scheme, keys, scheme.mul(b, b), encoded(np.clip(x, -r, r)) ** 2)
