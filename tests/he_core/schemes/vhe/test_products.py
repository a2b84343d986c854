"""he_core.schemes.vhe.products: products, inner products, linear maps and re-keying, each ending in a key switch.

Exactness is the campaign's (tests/he_core/properties); here: what each operation
refuses before any work, the keys it needs, and that ``polyval``'s fast path is the
generic circuit.
"""
import numpy as np
import pytest

import he_core
from he_core import KeyRequirements, SeededRandom, circuits
from he_core.errors import EncodingError, HEOverflowError, KeyMissingError, MismatchError, NoiseBudgetExhausted


@pytest.fixture(scope="module")
def ctx():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        s = he_core.get_scheme("vhe")
        keys = s.keygen(KeyRequirements(sizes=(2, 3)), rng=SeededRandom(3))
    return s, keys.secret


def test_polyval_is_the_generic_circuit(ctx):
    s, key = ctx
    x = np.array([[0.5, -1.25, 2.0]])
    ct = s.encrypt(x)
    coeffs = [0.25, -0.5, 0.125, 0.0, 0.0625]
    fast = s.decrypt(s.polyval(ct, coeffs), key)
    generic = s.decrypt(circuits.polyval(s, ct, coeffs), key)
    np.testing.assert_array_equal(fast, generic)


def test_a_linear_key_is_for_one_matrix_and_one_key(ctx):
    s, key = ctx
    m = np.array([[0.5, 0.0, -1.0], [0.25, 1.0, 0.0]])
    lk = s.make_linear_key(key, m, rng=SeededRandom(1))
    a = s.encrypt(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_array_equal(s.decrypt(s.matvec(a, m, key=lk), key), [[-2.5, 2.25]])
    with pytest.raises(MismatchError, match="different matrix"):
        s.matvec(a, m * 2, key=lk)
    with pytest.raises(KeyMissingError, match="make_linear_key"):
        s.matvec(a, m, key=None)
    with pytest.raises(KeyMissingError):
        s.make_linear_key(key, np.ones((4, 3)))  # no secret for vectors of size 4
    with pytest.raises(EncodingError, match="2-D"):
        s.make_linear_key(key, np.ones(3))
    with pytest.raises(EncodingError, match="too large"):
        s.make_linear_key(key, np.full((2, 3), 2.0**40))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        other = he_core.get_scheme("vhe").keygen(KeyRequirements(sizes=(2, 3)), rng=SeededRandom(4)).secret
    with pytest.raises(MismatchError, match="linear key belongs"):
        s.matvec(a, m, key=s.make_linear_key(other, m))


def test_sizes_without_keys_are_refused_by_name(ctx):
    s, _ = ctx
    with pytest.raises(KeyMissingError, match="size 5"):
        s.encrypt(np.ones((1, 5)))


def test_a_product_past_the_noise_or_the_range_is_refused_before_work(ctx):
    s, _ = ctx
    big = s.encrypt(np.array([[8000.0, -8000.0, 1.0]]))
    with pytest.raises(HEOverflowError):
        s.mul(big, big)
    a = s.encrypt(np.array([[1.0, -1.0, 1.0]]))
    for _ in range(64):  # squaring ones: the values stay 1, the noise bound about doubles each time
        try:
            a = s.mul(a, a)
        except NoiseBudgetExhausted as exc:
            assert "w/2" in str(exc)
            break
    else:
        pytest.fail("the noise bound never reached w/2")
