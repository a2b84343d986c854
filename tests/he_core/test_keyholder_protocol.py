"""he_core.keyholder_protocol: released and exact decryption, and what a release would carry."""
import warnings

import numpy as np
import pytest

import he_core
from he_core import Flooding, KeyRequirements, SeededRandom
from he_core.errors import CapabilityError, MismatchError, PrecisionError


def made(name, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        s = he_core.get_scheme(name, **kw)
        keys = s.keygen(KeyRequirements(sizes=(2,)), rng=SeededRandom(5))
    return s, keys.secret


@pytest.mark.parametrize("name", ["plain", "vhe"])
def test_exact_schemes_release_exactly_what_they_decrypt(name):
    s, key = made(name)
    ct = s.encrypt(np.array([[0.5, -1.25]]))
    np.testing.assert_array_equal(s.decrypt(ct, key), s.decrypt_exact_local(ct, key))
    assert s.release_report(ct)["flooded"] is False


def test_an_approximate_scheme_floods_and_rounds_its_releases():
    s, key = made("ckks", poly_degree=1024, levels=2, allow_insecure=True)
    x = np.array([[0.5, -1.25]])
    ct = s.encrypt(x)
    report = s.release_report(ct)
    assert report["flooded"] and report["grid"] > 0
    a, b = (s.decrypt(ct, key, rng=SeededRandom(i)) for i in (1, 2))
    assert not np.array_equal(a, b)  # fresh flooding each time
    for out in (a, b):
        assert np.all(np.round(out / report["grid"]) * report["grid"] == out)  # on the grid
        assert np.abs(out - x).max() < 64 * report["value_sigma"] + report["grid"]
    exact = s.decrypt_exact_local(ct, key)
    assert np.abs(exact - x).max() < report["value_sigma"]  # the exact one carries only the ciphertext's noise
    more = s.release_report(ct, Flooding(queries=2**20))
    assert more["value_sigma"] > report["value_sigma"]


def test_a_release_that_keeps_too_little_precision_is_refused():
    s, key = made("ckks", poly_degree=1024, levels=2, scale_bits=24, first_bits=40, special_bits=40,
                  allow_insecure=True)
    ct = s.encrypt(np.array([[1e-3, 1e-3]]))
    with pytest.raises(PrecisionError, match="bits of precision"):
        s.decrypt(ct, key, flooding=Flooding(min_precision_bits=40))


def test_decryption_needs_the_ciphertexts_own_key():
    s, key = made("plain")
    other = s.keygen(rng=SeededRandom(9)).secret
    ct = s.encrypt([1.0], key)
    for call in (s.decrypt, s.decrypt_exact_local):
        with pytest.raises(MismatchError, match="cannot decrypt"):
            call(ct, other)
    with pytest.raises(TypeError):
        s.decrypt(ct, "key")


def test_an_approximate_scheme_without_its_flooding_hook_refuses_to_release():
    from he_core.keyholder_protocol import KeyHolderProtocol

    class Approximate(KeyHolderProtocol):
        name = "toy"
        capabilities = frozenset({he_core.Capability.APPROXIMATE})

    with pytest.raises(CapabilityError, match="flood"):
        Approximate()._decrypt_release(None, None, Flooding(), None)
