"""he_core.schemes.ckks.batch: element-wise and row operations in whichever layout the operands are packed."""
import warnings

import numpy as np
import pytest

from he_core import KeyRequirements, SeededRandom
from he_core.errors import RefreshRequired
from he_core.schemes.ckks import CkksParams, CkksScheme

BOUND = 2.0**-20  # one or two levels at scale 2^40 (N = 1024), values <= 4: errors ~2^-28


@pytest.fixture(scope="module")
def ctx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=1024, levels=3, allow_insecure=True))
    keys = scheme.keygen(KeyRequirements(sizes=(1, 4, 8), multiply=True), rng=SeededRandom(5))
    return scheme, keys.secret


def close(scheme, secret, ct, want):
    assert ct.shape == want.shape
    assert np.max(np.abs(scheme.decrypt_exact_local(ct, secret) - want)) <= BOUND


def test_match_broadcasts_a_row_and_restrides_to_the_wider_stride(ctx):
    scheme, secret = ctx
    gen = np.random.default_rng(1)
    x, y = gen.uniform(-1, 1, (3, 4)), gen.uniform(-1, 1, (1, 4))
    a = scheme.encrypt(x, secret, rng=SeededRandom(2))
    b = scheme.encrypt(y, secret, rng=SeededRandom(3))
    wide = scheme.batch.mover.gather(a, [(i, i, 1.0) for i in range(3)], 3, 8)
    m1, m2 = scheme.batch.match(wide, b)
    assert m1.meta["stride"] == m2.meta["stride"] == 8 and m1.rows == m2.rows == 3
    close(scheme, secret, m2, np.repeat(y, 3, axis=0))


def test_the_operations_agree_with_numpy(ctx):
    scheme, secret = ctx
    gen = np.random.default_rng(4)
    x, y = gen.uniform(-1, 1, (3, 4)), gen.uniform(-1, 1, (3, 4))
    a, b = (scheme.encrypt(v, secret, rng=SeededRandom(s)) for v, s in ((x, 6), (y, 7)))
    close(scheme, secret, scheme.batch.add(a, b), x + y)
    close(scheme, secret, scheme.batch.sub(a, b), x - y)
    close(scheme, secret, scheme.batch.mul(a, b, True), x * y)
    close(scheme, secret, scheme.batch.inner(a, b, True), np.sum(x * y, axis=1, keepdims=True))
    close(scheme, secret, scheme.batch.row_sum(a, None), x.sum(axis=0, keepdims=True))
    close(scheme, secret, scheme.batch.take_rows(a, np.array([2, 0])), x[[2, 0]])
    weights = np.array([[1.0, 0.0, -2.0], [0.5, 0.5, 0.5]])
    close(scheme, secret, scheme.batch.lincomb(weights, a, True), weights @ x)


def test_a_table_goes_to_the_tables_role_and_refuses_slot_operations(ctx):
    scheme, secret = ctx
    x = np.random.default_rng(8).uniform(-1, 1, (3, 4))
    table = scheme.encrypt(x, secret, rng=SeededRandom(9), layout="table")
    close(scheme, secret, scheme.batch.row_sum(table, np.array([0, 2, 2])), (x[0] + 2 * x[2])[None, :])
    with pytest.raises(RefreshRequired, match="cannot take_rows"):
        scheme.batch.take_rows(table, np.array([0]))
