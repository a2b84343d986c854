"""he_core.bundle.Bundle: named ciphertexts plus metadata, and the keys they are under."""
import numpy as np

import he_core
from he_core.bundle import Bundle


def test_key_ids_are_the_distinct_keys_of_the_ciphertexts_and_the_attached_public_keys():
    s = he_core.get_scheme("plain")
    a = s.keygen(rng=he_core.SeededRandom(1))
    b = s.keygen(rng=he_core.SeededRandom(2))
    ca, cb = s.encrypt(np.ones(2), a.secret), s.encrypt(np.ones(2), b.secret)
    assert Bundle().key_ids == []
    assert Bundle({"w": ca, "v": s.copy(ca)}).key_ids == [a.secret.key_id]
    assert Bundle({"w": ca, "v": cb}).key_ids == sorted([a.secret.key_id, b.secret.key_id])
    assert Bundle({"w": ca}, public=b.public).key_ids == sorted([a.secret.key_id, b.public.key_id])


def test_each_bundle_has_its_own_containers():
    x, y = Bundle(), Bundle()
    x.ciphertexts["a"] = None
    x.meta["k"] = 1
    assert y.ciphertexts == {} and y.meta == {}
