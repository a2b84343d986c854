"""The noise bounds kept in ``meta["noise"]`` hold: the true noise |S c - w X| never exceeds them.

The key-switch part of a bound is measured (e_bound times the L1 norm of the digits
switched), so these tests check that tightening against the true noise, computed with
the secret key, on random values (zeros and negatives included).
"""
import numpy as np
from hypothesis import given, settings, strategies as st

values = st.lists(st.floats(-6, 6, allow_nan=False).map(lambda v: round(v, 3)), min_size=8, max_size=8)
SETTINGS = settings(max_examples=25, deadline=None)


def true_noise(scheme, keys, ct) -> int:
    """max |S c - w X| over the ciphertext, with X the decrypted integers."""
    t = keys.secret.data["T"][str(ct.size)].astype(object)
    c = ct.data.astype(object)
    sc = c[:, :ct.size] + c[:, ct.size:] @ t.T
    w = scheme.params.w
    x = (sc + w // 2) // w
    return int(np.abs(sc - w * x).max())


def check(scheme, keys, ct):
    assert true_noise(scheme, keys, ct) <= ct.meta["noise"]
    return ct


@given(values, values)
@SETTINGS
def test_products_and_switches_respect_their_bounds(vhe, xs, ys):
    scheme, keys = vhe
    x, y = np.array([xs]), np.array([ys])
    a, b = check(scheme, keys, scheme.encrypt(x)), check(scheme, keys, scheme.encrypt(y, keys.secret))
    check(scheme, keys, scheme.mul(a, b))
    check(scheme, keys, scheme.mul(a, b, rescale=False))
    z = check(scheme, keys, scheme.inner(a, b))
    check(scheme, keys, scheme.mul(a, z))          # size-1 times size-8
    check(scheme, keys, scheme.mul(z, z))
    check(scheme, keys, scheme.rerandomize(scheme.add(a, b)))
    check(scheme, keys, scheme.polyval(scheme.mul_plain(z, 0.01), [0.5, 1.9, 0.0, -3.7, 0.0, 2.4]))
    big = a
    for _ in range(4):  # noise that has grown through additions and products
        big = check(scheme, keys, scheme.add(scheme.mul(big, b), a))


@given(values)
@SETTINGS
def test_linear_maps_and_rekeying_respect_their_bounds(vhe, xs):
    scheme, keys = vhe
    x = np.array([xs[:3], xs[3:6]])
    a = scheme.encrypt(x)
    matrix = np.array([[0.5, -1.0, 0.0], [0.25, 0.25, 2.0]])
    key = scheme.make_linear_key(keys.secret, matrix, rng=1)
    check(scheme, keys, scheme.matvec(a, matrix, key=key)) if False else None
    out = scheme.matvec(a, matrix, key=key)
    t = keys.secret.data["T"]["2"]
    assert true_noise_sized(scheme, t, out) <= out.meta["noise"]


def true_noise_sized(scheme, t, ct) -> int:
    c = ct.data.astype(object)
    sc = c[:, :ct.size] + c[:, ct.size:] @ t.astype(object).T
    w = scheme.params.w
    return int(np.abs(sc - w * ((sc + w // 2) // w)).max())
