"""Random sequences of operations against numpy: layouts, levels and scales must compose.

Single operations are checked in ``test_scheme.py``; here hypothesis chains them
(broadcasts, row movements, inner products, free scalars, mixed levels), which is how
the henn layers use the scheme. Values stay in [-1, 1]-ish so errors stay comparable;
an operation that would need a level the operands no longer have must raise
``LevelExhaustedError`` (and is then skipped), never return a wrong result. So must one
whose result could not be held once rescaled to level 0: a free scalar folded into the
scale (``x 1e-3`` raises it 2^10) shrinks that range, and a later ``add_plain`` of a value
near 1 is refused with ``EncodingError`` (found by hypothesis: add x3, x1e-3, inner,
add_plain; ``test_a_folded_scalar_that_leaves_no_room_refuses_an_add_plain`` pins it).
"""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from he_core import KeyRequirements, SeededRandom
from he_core.errors import EncodingError, LevelExhaustedError, MismatchError
from he_core.schemes.ckks import CkksParams, CkksScheme

BOUND = 2.0**-14  # after up to 10 chained operations (single ops: 2^-17 .. 2^-22)


@pytest.fixture(scope="module")
def ctx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=2048, levels=6, allow_insecure=True))
    return scheme, scheme.keygen(KeyRequirements(), rng=SeededRandom(3))


OPS = ["add", "sub", "mul", "mul_plain", "scalar", "add_plain", "row_sum", "take_rows", "inner",
       "concat", "lincomb", "bcast_rows", "bcast_size", "neg"]


def apply(s, op, pool, draw):
    """One random operation on members of the pool: returns (ciphertext, plaintext) or None."""
    ca, xa = pool[draw(st.integers(0, len(pool) - 1))]
    rows, size = xa.shape
    same = [(c, x) for c, x in pool if x.shape == xa.shape]
    cb, xb = same[draw(st.integers(0, len(same) - 1))]
    r = np.random.default_rng(draw(st.integers(0, 2**31)))
    if op in ("add", "sub"):
        return (s.add(ca, cb), xa + xb) if op == "add" else (s.sub(ca, cb), xa - xb)
    if op == "mul":
        return s.mul(ca, cb), xa * xb
    if op == "mul_plain":
        v = r.uniform(-1, 1, xa.shape)
        return s.mul_plain(ca, v), xa * v
    if op == "scalar":
        c = float(draw(st.sampled_from([0.25, -0.5, 1.0 / 3, 2.0, 1e-3])))
        return s.mul_plain(ca, c), xa * c
    if op == "add_plain":
        v = r.uniform(-1, 1, (1, size))
        return s.add_plain(ca, v), xa + v
    if op == "neg":
        return s.neg(ca), -xa
    if op == "row_sum":
        idx = r.integers(0, rows, draw(st.integers(1, 3)))
        return s.row_sum(ca, idx), xa[idx].sum(0, keepdims=True) / 2
    if op == "take_rows":
        idx = r.integers(0, rows, draw(st.integers(1, 4)))
        return s.take_rows(ca, idx), xa[idx]
    if op == "inner":
        return s.inner(ca, cb), (xa * xb).sum(1, keepdims=True)
    if op == "concat":
        return s.concat_rows([ca, cb]), np.vstack([xa, xb])
    if op == "lincomb":
        w = r.uniform(-1, 1, (draw(st.integers(1, 3)), rows)) / rows
        return s.lincomb(w, ca), w @ xa
    if op == "bcast_rows":
        one = [(c, x) for c, x in pool if x.shape == (1, size)]
        if not one or rows == 1:
            return None
        c1, x1 = one[draw(st.integers(0, len(one) - 1))]
        return s.mul(ca, c1), xa * x1
    if op == "bcast_size":
        col = [(c, x) for c, x in pool if x.shape == (rows, 1)]
        if not col or size == 1:
            return None
        c1, x1 = col[draw(st.integers(0, len(col) - 1))]
        return s.add(ca, s.mul(c1, ca)), xa + x1 * xa
    raise AssertionError(op)


@given(data=st.data())
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_operation_sequences(ctx, data):
    s, k = ctx
    draw = data.draw
    pool = []
    for shape in [(3, 5), (3, 5), (1, 5), (3, 1)]:
        x = np.random.default_rng(len(pool)).uniform(-1, 1, shape)
        pool.append((s.encrypt(x), x))
    for _ in range(draw(st.integers(3, 10))):
        op = draw(st.sampled_from(OPS))
        try:
            out = apply(s, op, pool, draw)
        except LevelExhaustedError:
            continue
        except MismatchError as exc:  # only scale realignment without a level left may refuse
            assert "cannot be aligned" in str(exc)
            continue
        except EncodingError as exc:  # only a result the level-0 range could not hold may be refused
            assert "a quarter of q_0 at the scale it has once rescaled to level 0" in str(exc)
            continue
        if out is None:
            continue
        ct, want = out
        if op == "row_sum":  # keep magnitudes near 1
            ct = s.mul_plain(ct, 0.5)
        got = s.decrypt_exact_local(ct, k.secret)
        assert got.shape == want.shape
        err = float(np.max(np.abs(got - want)))
        assert err <= BOUND * max(1.0, float(np.max(np.abs(want)))), (op, err)
        if np.max(np.abs(want)) < 4:
            pool.append((ct, want))


def test_a_folded_scalar_that_leaves_no_room_refuses_an_add_plain(ctx):
    """The hypothesis example: three additions, a product by 1e-3 folded into the scale, an inner product, then
    add_plain of values near 1: refused by name (the scale, 2^59.9, leaves 0.26 at level 0), never wrong."""
    s, k = ctx
    x = np.random.default_rng(0).uniform(-1, 1, (3, 5))
    a = s.encrypt(x)
    for _ in range(3):
        a = s.add(a, a)
    small = s.mul_plain(s.encrypt(np.random.default_rng(2).uniform(-1, 1, (1, 5))), 1e-3)
    dot = s.inner(small, small)
    assert dot.scale > 2.0**59
    with pytest.raises(EncodingError, match="quarter of q_0"):
        s.add_plain(dot, np.array([[0.9]]))
    fine = s.add_plain(dot, np.array([[0.1]]))  # within the range: exact to the bound
    want = (np.random.default_rng(2).uniform(-1, 1, (1, 5)) * 1e-3) ** 2
    assert abs(s.decrypt_exact_local(fine, k.secret)[0, 0] - (want.sum() + 0.1)) < BOUND
