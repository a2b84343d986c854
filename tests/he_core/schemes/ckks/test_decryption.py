"""he_core.schemes.ckks.decryption: exact phases, decoded values, and wraps refused as overflows."""
import warnings

import numpy as np
import pytest

from he_core import KeyRequirements, SeededRandom
from he_core.errors import HEOverflowError
from he_core.schemes.ckks import CkksParams, CkksScheme

# A fresh secret-key encryption at scale 2^40 (N = 1024) decrypts within a few 2^-40: 2^-30 is loose but tight
# against any decoding mistake (a wrong slot or scale is off by ~1).
BOUND = 2.0**-30


@pytest.fixture(scope="module")
def ctx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=1024, levels=3, allow_insecure=True))
    keys = scheme.keygen(KeyRequirements(sizes=(4,)), rng=SeededRandom(3))
    return scheme, scheme.keyset.s_full(keys.secret), keys.secret


def test_a_decryption_returns_the_encrypted_values(ctx):
    scheme, s_full, secret = ctx
    x = np.random.default_rng(1).uniform(-2, 2, (3, 4))
    ct = scheme.encrypt(x, secret, rng=SeededRandom(2))
    got = scheme.decryptor.decrypt(ct, s_full)
    assert np.max(np.abs(got - x)) <= BOUND
    table = scheme.encrypt(x, secret, rng=SeededRandom(3), layout="table")
    assert np.max(np.abs(scheme.decryptor.decrypt(table, s_full) - x)) <= BOUND


def test_the_phases_lift_the_limbs_exactly(ctx):
    scheme, s_full, secret = ctx
    ct = scheme.encrypt(np.ones((1, 4)), secret, rng=SeededRandom(4))
    limbs = scheme.decryptor.phase_limbs(ct, s_full)[0]
    lifted = scheme.decryptor.phases(ct, s_full)[0]
    q0 = scheme.ring.q[0]
    assert np.array_equal(np.mod(lifted.astype(np.int64), q0).astype(np.uint64), limbs[0])


def test_a_value_beyond_the_decoding_range_is_an_overflow(ctx):
    scheme, s_full, secret = ctx
    ct = scheme.encrypt(np.ones((1, 4)), secret, rng=SeededRandom(5))
    limit = scheme.decryptor.decode_range(ct)
    assert limit == float(scheme.ring.q[0]) * float(scheme.ring.q[1]) / (2.0 * ct.scale)
    # A uniformly random c0 (what a wrap leaves): slots with imaginary parts as large as their real ones.
    gen = np.random.default_rng(6)
    data = ct.data.copy()
    for limb, q in enumerate(scheme.ring.q[: data.shape[2]]):
        data[0, 0, limb] = gen.integers(0, q, scheme.ring.n, dtype=np.uint64)
    with pytest.raises(HEOverflowError, match="not a valid encoding"):
        scheme.decryptor.decrypt(ct.replace(data=data), s_full)


def test_the_precise_lift_is_exact_beyond_float64(ctx):
    """Coefficients past 2^53 (and past int64) come back as the exact centred integers, to long double's
    unit roundoff: the key holder's release decodes from them."""
    scheme, _, _ = ctx
    q0, q1 = scheme.ring.q[0], scheme.ring.q[1]
    rng = np.random.default_rng(5)
    wanted = [0, 1, -1, q0 // 2, -(q0 // 2), 2**53 + 1, -(2**53 + 3), 2**62 + 7, -(2**62 + 9)]
    wanted += [int(x) for x in rng.integers(-2**62, 2**62, scheme.ring.n - len(wanted))]
    limbs = np.array([[x % q for x in wanted] for q in (q0, q1)], dtype=np.uint64)
    got = scheme.decryptor.lift_precise(limbs)
    assert got.dtype == np.longdouble
    eps = float(np.finfo(np.longdouble).eps)
    for x, g in zip(wanted, got):
        assert abs(int(g) - x) <= abs(x) * eps, (x, int(g))
    if eps <= 2.0**-63:  # x87 extended precision: every value here below 2^63 is exact
        assert [int(g) for g in got] == wanted
