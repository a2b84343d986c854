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


def all_seeds(public) -> list[bytes]:
    data = public.data
    return [data["pk_seed"].tobytes(), data["relin_seed"].tobytes(),
            *(v.tobytes() for v in data["galois_seeds"].values())]


def test_every_switching_key_has_its_own_seed_and_the_same_randomness_gives_the_same_keys(full):
    s, keys = full
    data = keys.public.data
    assert list(data["galois_seeds"]) == list(data["galois"]) and data["relin_seed"].dtype == np.uint8
    again = scheme().keygen(KeyRequirements(sizes=(4,), rotations=(7,)), rng=SeededRandom(1)).public.data
    assert list(again) == list(data)
    for name in ("pk", "pk_seed", "relin", "relin_seed"):
        np.testing.assert_array_equal(again[name], data[name])
    for g in data["galois"]:
        np.testing.assert_array_equal(again["galois"][g], data["galois"][g])
        np.testing.assert_array_equal(again["galois_seeds"][g], data["galois_seeds"][g])


def test_two_key_generations_never_share_a_seed(full):
    _, keys = full
    req = KeyRequirements(sizes=(4,), rotations=(3, 5), minimal=True)
    first, second = (scheme().keygen(req).public for _ in range(2))  # the OS CSPRNG, as in use
    seeds = all_seeds(first) + all_seeds(second)
    assert len(seeds) == 8 and len(set(seeds)) == len(seeds)
    within = all_seeds(keys.public)
    assert len(set(within)) == len(within) == 2 + len(keys.public.data["galois"])


def test_malformed_seeds_in_public_keys_are_refused_by_name(full):
    s, keys = full
    pub = keys.public
    g = next(iter(pub.data["galois"]))

    def forged(**changes):
        return type(pub)(pub.scheme, pub.params_id, pub.key_id, {**pub.data, **changes}, pub.requirements, pub.params)

    cases = ((forged(relin_seed=np.zeros(31, np.uint8)), "seed of the relinearisation key is not 32 bytes"),
             (forged(relin_seed=pub.data["relin_seed"].astype(np.int64)), "relinearisation key is not 32 bytes"),
             (forged(galois_seeds={**pub.data["galois_seeds"], g: b"x" * 32}), f"seed of Galois key {g} is not"),
             (forged(galois_seeds={"3": pub.data["relin_seed"]}), "not one per Galois key"),
             (forged(galois_seeds=[1]), "not one per Galois key"))
    for public, match in cases:
        with pytest.raises(FormatError, match=match):
            s.check_public_keys(public)
    without_relin = {k: v for k, v in pub.data.items() if k != "relin"}
    with pytest.raises(FormatError, match="a seed for the relinearisation key, which the data does not hold"):
        s.check_public_keys(type(pub)(pub.scheme, pub.params_id, pub.key_id, without_relin, pub.requirements))


def test_switching_under_another_keys_installed_keys_is_refused_by_name():
    """A scheme holds one installed key set: a product, a rotation, a sanitisation or a mask under key A with
    key B's public keys installed used B's keys and decrypted to garbage; each is now a MismatchError, and
    works again once A's keys are installed."""
    from he_core import Flooding, MismatchError

    s = scheme()
    a = s.keygen(KeyRequirements(sizes=(4,)), rng=SeededRandom(3))
    s.keygen(KeyRequirements(sizes=(4,)), rng=SeededRandom(4))  # B's keys now installed
    x = np.array([[0.5, -1.0, 0.25, 2.0]])
    ct = s.encrypt(x, a.secret, rng=SeededRandom(5))
    for op in (lambda: s.mul(ct, ct), lambda: s.rotate(ct, 1),
               lambda: s.sanitize(ct, flooding=Flooding(queries=2), rng=SeededRandom(6))):
        with pytest.raises(MismatchError, match="installed public keys"):
            op()
    s.set_public_keys(a.public)
    np.testing.assert_allclose(s.decrypt_exact_local(s.mul(ct, ct), a.secret), x * x, atol=1e-6)
    np.testing.assert_allclose(s.decrypt_exact_local(s.rotate(ct, 1), a.secret)[:, :3], x[:, 1:], atol=1e-6)
