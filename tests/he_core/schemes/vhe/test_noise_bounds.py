"""The noise bounds kept in ``meta["noise"]`` hold against the true noise.

The invariant is ``S c = w M + e`` with ``|e| <= meta["noise"]``, where ``M`` is the
exact (rational) result of the operations on the encoded inputs -- a rescaled product
``M_a M_b / 2^f`` need not be an integer; decryption rounds it. The key-switch part of a
bound is measured (e_bound times the L1 norm of the digits switched), so these tests
check that tighter bound against ``e`` computed with the secret key and exact
fractions, on random values (zeros and negatives included).
"""
from fractions import Fraction

import numpy as np
from hypothesis import given, settings, strategies as st

values = st.lists(st.floats(-6, 6, allow_nan=False).map(lambda v: round(v, 3)), min_size=8, max_size=8)
SETTINGS = settings(max_examples=25, deadline=None)
F = 2**16


def sc(keys, ct):
    t = keys.secret.data["T"][str(ct.size)].astype(object)
    c = ct.data.astype(object)
    return c[:, :ct.size] + c[:, ct.size:] @ t.T


def fresh_message(scheme, keys, ct):
    """The integers a fresh (small-noise) ciphertext holds, as exact fractions."""
    w = scheme.params.w
    return np.vectorize(Fraction, otypes=[object])((sc(keys, ct) + w // 2) // w)


def check(scheme, keys, ct, message):
    e = sc(keys, ct) - scheme.params.w * message
    assert max(abs(v) for v in e.flat) <= ct.meta["noise"], (ct.meta, e)
    return ct, message


@given(values, values, st.floats(-2, 2).map(lambda v: round(v, 3)))
@SETTINGS
def test_products_and_switches_respect_their_bounds(vhe, xs, ys, s):
    scheme, keys = vhe
    a = scheme.encrypt(np.array([xs]))                    # public key: one key switch
    b = scheme.encrypt(np.array([ys]), keys.secret)
    one = scheme.encrypt([[s]])
    ma, mb, m1 = (fresh_message(scheme, keys, c) for c in (a, b, one))
    check(scheme, keys, a, ma)
    check(scheme, keys, scheme.mul(a, b), ma * mb / F)
    small_a, small_b = scheme.mul_plain(a, 0.01), scheme.mul_plain(b, 0.01)
    p = round(0.01 * F)  # the encoded factor
    check(scheme, keys, small_a, ma * p / F)
    check(scheme, keys, small_b, mb * p / F)
    # rescale=False keeps scale 2^32, where only tiny values fit
    check(scheme, keys, scheme.mul(small_a, small_b, rescale=False), ma * p / F * (mb * p / F))
    z, mz = check(scheme, keys, scheme.inner(a, b), (ma * mb).sum(axis=1, keepdims=True) / F)
    check(scheme, keys, scheme.mul(a, one), ma * m1 / F)   # size-1 times size-8
    check(scheme, keys, scheme.mul(one, one), m1 * m1 / F)
    check(scheme, keys, scheme.rerandomize(scheme.add(a, b)), ma + mb)
    acc, macc = b, mb
    for _ in range(3):  # noise that has grown through products and additions
        acc, macc = check(scheme, keys, scheme.add(scheme.mul(acc, one), a), macc * m1 / F + ma)
    check(scheme, keys, scheme.mul(z, z), mz * mz / F) if abs(float(mz[0, 0])) < 80 * F else None
