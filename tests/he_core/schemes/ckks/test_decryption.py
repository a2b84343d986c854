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
