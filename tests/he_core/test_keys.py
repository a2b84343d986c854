"""he_core.keys: key ids derived from public material, requirements normalised, secret keys that refuse to leave."""
import copy
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from he_core.errors import KeyExportError
from he_core.keys import KeyRequirements, PublicKeys, SecretKey, SwitchKey, derive_key_id, new_key_id

arrays = hnp.arrays(st.sampled_from([np.int64, np.uint64, np.int8, np.float64]),
                    hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))


@given(a=arrays)
def test_key_ids_depend_on_every_byte_dtype_and_shape(a):
    kid = derive_key_id("ckks", "p1", [a])
    assert len(kid) == 32 and int(kid, 16) >= 0
    assert derive_key_id("ckks", "p1", [a.copy()]) == kid
    assert derive_key_id("ckks", "p1", [a.astype(a.dtype.newbyteorder(">"))]) == kid  # byte order is normalised
    assert derive_key_id("vhe", "p1", [a]) != kid and derive_key_id("ckks", "p2", [a]) != kid
    assert derive_key_id("ckks", "p1", [a.reshape(-1, 1)]) != kid or a.ndim == 2 and a.shape[1] == 1
    flipped = a.copy()
    flipped.view(np.uint8).reshape(-1)[0] ^= 1
    assert derive_key_id("ckks", "p1", [flipped]) != kid
    if a.dtype != np.int8:
        assert derive_key_id("ckks", "p1", [a.view(np.int8)]) != kid


def test_the_domain_fields_are_length_prefixed():
    x = np.zeros(1)
    assert derive_key_id("ab", "c", [x]) != derive_key_id("a", "bc", [x])
    assert derive_key_id("s", "p", [x, x]) != derive_key_id("s", "p", [np.zeros(2)])


def test_random_ids_are_fresh():
    assert len({new_key_id() for _ in range(100)}) == 100


@given(sizes=st.lists(st.integers(1, 64), min_size=1, max_size=6), rots=st.lists(st.integers(-100, 100), max_size=6))
def test_requirements_are_sorted_and_deduplicated_and_merge(sizes, rots):
    req = KeyRequirements(sizes=tuple(sizes), rotations=tuple(rots))
    assert req.sizes == tuple(sorted(set(sizes))) and req.rotations == tuple(sorted(set(rots)))
    merged = req.merge(KeyRequirements(sizes=(99,), minimal=True, transforms=(3,)))
    assert merged.sizes == tuple(sorted(set(sizes) | {99})) and merged.transforms == (3,)
    assert merged.minimal is False  # minimal only if both are


@pytest.mark.parametrize("bad", [dict(sizes=()), dict(sizes=(0,)), dict(sizes=(-1,)), dict(transforms=(0,))])
def test_bad_requirements_are_refused(bad):
    with pytest.raises(ValueError):
        KeyRequirements(**bad)


def test_a_secret_key_never_prints_or_pickles_its_material_but_copies_in_process():
    key = SecretKey("ckks", "p", "k" * 32, {"s": np.array([1, -1, 0])})
    assert "array" not in repr(key) and "kkkk" in repr(key)
    with pytest.raises(KeyExportError, match="cannot pickle a secret key"):
        pickle.dumps(key)
    deep = copy.deepcopy(key)
    assert deep.key_id == key.key_id and np.array_equal(deep.data["s"], key.data["s"])
    assert deep.data["s"] is not key.data["s"]
    assert copy.copy(key).data is key.data


def test_public_and_switch_keys_pickle_and_print_briefly():
    pub = PublicKeys("vhe", "p", "a" * 32, {"big": np.zeros(10**4)})
    assert len(repr(pub)) < 120
    assert pickle.loads(pickle.dumps(pub)).key_id == pub.key_id
    sk = SwitchKey("vhe", "p", "a" * 32, "b" * 32, None)
    assert "aaaaaaaaaaaa" in repr(sk) and "bbbbbbbbbbbb" in repr(sk)
