"""he_core.schemes.ckks.keyset: which Galois keys a requirement set gets, key checks, and missing keys by name."""
import warnings

import numpy as np
import pytest

from he_core import KeyRequirements, SeededRandom
from he_core.errors import FormatError, KeyMissingError
from he_core.schemes.ckks import CkksParams, CkksScheme


def scheme():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CkksScheme(CkksParams(poly_degree=1024, levels=2, allow_insecure=True))


@pytest.fixture(scope="module")
def full():
    s = scheme()
    return s, s.keygen(KeyRequirements(sizes=(4,), rotations=(7,)), rng=SeededRandom(1))


def test_default_keys_cover_asked_rotations_powers_of_two_and_conjugation(full):
    s, keys = full
    slots = s.params.slots
    galois = {int(g) for g in keys.public.data["galois"]}
    assert s._galois_element(7) in galois and 2 * s.params.poly_degree - 1 in galois
    for k in range(slots.bit_length() - 1):
        assert s._galois_element(1 << k) in galois and s._galois_element(-(1 << k)) in galois
    assert "relin" in keys.public.data
    assert keys.public.data["pk_seed"].shape == (32,)


def test_a_minimal_set_holds_only_what_was_asked():
    s = scheme()
    keys = s.keygen(KeyRequirements(sizes=(4,), rotations=(3,), minimal=True, multiply=False), rng=SeededRandom(2))
    galois = {int(g) for g in keys.public.data["galois"]}
    assert galois == {s._galois_element(3)}
    assert "relin" not in keys.public.data
    a = s.encrypt(np.ones((1, 4)))
    with pytest.raises(KeyMissingError, match="relinearisation key"):
        s.mul(a, a)
    with pytest.raises(KeyMissingError, match="no Galois key"):
        s.rotate(a, 1)
    s.rotate(a, 3)  # the asked one works


def test_received_public_keys_are_checked(full):
    s, keys = full
    s.check_public_keys(keys.public)
    pub = keys.public

    def forged(**changes):
        data = {**pub.data, **changes}
        return type(pub)(pub.scheme, pub.params_id, pub.key_id, data, pub.requirements, pub.params)

    chosen_a = pub.data["pk"].copy()
    chosen_a[1, 0, 0] = (int(chosen_a[1, 0, 0]) + 1) % s.ring.q[0]
    bad_residue = pub.data["pk"].copy()
    bad_residue[0, 0, 0] = np.uint64(s.ring.q[0])
    relin = pub.data["relin"]
    for data, match in ((forged(pk=chosen_a), "chosen, not drawn"), (forged(pk=bad_residue), "not below"),
                        (forged(pk_seed=np.zeros(31, np.uint8)), "no seed"),
                        (forged(relin=relin[:1]), "relinearisation key is not"),
                        (forged(galois={"5": relin.astype(np.int64)}), "Galois key 5"),
                        (forged(galois=[1]), "malformed")):
        with pytest.raises(FormatError, match=match):
            s.check_public_keys(data)


def test_the_key_id_is_derived_from_the_public_key_alone(full):
    s, keys = full
    assert s.key_id_material(keys.public.data) == [keys.public.data["pk"]]
    again = scheme().keygen(KeyRequirements(sizes=(4,), rotations=(7,)), rng=SeededRandom(1))
    assert again.public.key_id == keys.public.key_id  # same seed, same key, same id
