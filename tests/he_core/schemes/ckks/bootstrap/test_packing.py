"""Several ciphertexts through one bootstrap (he_core/schemes/ckks/bootstrap/packing.py).

Each output is checked against its plaintext within the scheme's own noise record and
within 2^-18 absolute (the small ring's single bootstrap gives about 2^-26 here), and
against a bootstrap of that ciphertext alone.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from he_core import EncodingError, KeyMissingError, KeyRequirements, ParameterError, SeededRandom
from he_core.schemes.ckks.bootstrap import packing

from .conftest import small_scheme

N = 32
TOL = 2.0**-18


@pytest.fixture(scope="module")
def packed():
    """(scheme, keys) for bootstrapping 32 slots, with the packing rotations."""
    scheme = small_scheme()
    return scheme, scheme.bootstrap_keygen(N, rng=SeededRandom(7), requirements=KeyRequirements(sizes=(1, 4)),
                                           packing=True)


def _error(s, keys, ct, want) -> float:
    got = s.decrypt_exact_local(ct, keys.secret)
    assert got.shape == want.shape
    return float(np.max(np.abs(got - want)))


def test_offsets_put_the_largest_first_each_on_a_multiple_of_its_size():
    assert packing.pack_offsets([4, 8, 1, 4], 32) == [8, 0, 16, 12]
    assert packing.pack_offsets([16, 16], 32) == [0, 16]
    assert packing.extent(2, 4) == 8 and packing.extent(1, 1) == 1 and packing.extent(3, 4) == 16
    with pytest.raises(ParameterError, match="need 64"):
        packing.pack_offsets([32, 16, 4], 32)
    with pytest.raises(ParameterError, match="power of two"):
        packing.pack_offsets([3], 32)


def test_the_packing_rotations_are_the_powers_of_two_below_n(packed):
    s, keys = packed
    assert packing.packing_rotations(32) == (1, 2, 4, 8, 16)
    assert packing.packing_rotations(2) == (1,)
    galois = keys.public.data["galois"]
    assert all(str(s._galois_element(r)) in galois for r in packing.packing_rotations(N))


def test_four_tensors_at_four_levels_come_back_from_one_bootstrap(packed):
    """An XOR model's parameters (shapes (2, 4), (1, 4), (1, 4), (1, 1)), zeros and negatives included."""
    s, keys = packed
    rng = np.random.default_rng(1)
    values = [rng.uniform(-3, 3, (2, 4)), np.zeros((1, 4)), -rng.uniform(0, 3, (1, 4)), np.array([[2.5]])]
    cts = [s.level_drop(s.encrypt(v, rng=SeededRandom(i)), 1 + i) for i, v in enumerate(values)]
    outs = s.bootstrap_many(cts, slots=N, clean=True, value_bound=4.0)
    level = s.bootstrap_plan(N, clean=True)["output_level"]
    for ct, out, want in zip(cts, outs, values):
        assert out.shape == ct.shape and out.meta["stride"] == ct.meta["stride"]
        assert s.level(out) == level and not out.meta["dirty"]
        error = _error(s, keys, out, want)
        assert error < TOL and error <= s.noise_estimate(out)["slot_bound"]


def test_each_output_is_clean_outside_its_own_values(packed):
    s, keys = packed
    values = [np.full((1, 4), 2.0), np.full((2, 4), -1.5)]
    outs = s.bootstrap_many([s.encrypt(v) for v in values], slots=N, clean=True, value_bound=4.0)
    for out, v in zip(outs, values):
        slots = s._decrypt_slots(out, s._s_full(keys.secret))[0].real
        inside = np.zeros(s.params.slots, dtype=bool)
        for r in range(v.shape[0]):
            inside[r * out.meta["stride"]: r * out.meta["stride"] + v.shape[1]] = True
        assert np.max(np.abs(slots[~inside])) < TOL
        assert np.max(np.abs(slots[inside] - v.ravel())) < TOL


def test_packed_outputs_match_bootstrapping_each_alone(packed):
    s, keys = packed
    rng = np.random.default_rng(2)
    values = [rng.uniform(-1, 1, (1, 4)), rng.uniform(-1, 1, (2, 3))]
    cts = [s.encrypt(v) for v in values]
    many = s.bootstrap_many(cts, slots=N, clean=True, value_bound=2.0)
    for ct, out in zip(cts, many):
        alone = s.bootstrap(ct, slots=N, clean=True, value_bound=2.0)
        assert s.level(alone) == s.level(out)
        diff = s.decrypt_exact_local(out, keys.secret) - s.decrypt_exact_local(alone, keys.secret)
        assert float(np.max(np.abs(diff))) < 2 * TOL


def test_without_clean_the_outputs_are_dirty_one_level_higher_and_right(packed):
    s, keys = packed
    values = [np.full((1, 2), 0.5), np.full((1, 4), -0.25)]
    outs = s.bootstrap_many([s.encrypt(v) for v in values], slots=N, value_bound=1.0)
    for out, v in zip(outs, values):
        assert out.meta["dirty"] and s.level(out) == s.bootstrap_plan(N)["output_level"]
        assert _error(s, keys, out, v) < TOL


def test_what_cannot_be_packed_is_refused_by_name(packed):
    s, _keys = packed
    ct = s.encrypt(np.ones((1, 4)))
    with pytest.raises(ParameterError, match="level 0"):
        s.bootstrap_many([ct, s.level_drop(ct, 0)], slots=N)
    with pytest.raises(ParameterError, match="need 64"):
        s.bootstrap_many([s.encrypt(np.ones((4, 8))), s.encrypt(np.ones((2, 8)))], slots=N)
    with pytest.raises(EncodingError, match="empty"):
        s.bootstrap_many([], slots=N)
    with pytest.raises(EncodingError, match="one ciphertext"):
        s.bootstrap_many([s.encrypt(np.ones((300, 4)))], slots=N)
    other = small_scheme()
    other.bootstrap_keygen(N, rng=SeededRandom(8), packing=True)
    with pytest.raises(EncodingError, match="different keys"):
        s.bootstrap_many([ct, other.encrypt(np.ones((1, 4))).replace(params_id=ct.params_id)], slots=N)
    with pytest.raises(ParameterError, match="value_bound"):
        s.bootstrap_many([ct], slots=N, value_bound=float("nan"))


def test_without_the_packing_rotations_the_missing_key_is_named():
    """Blocks at 8 and 12 move by 24 = 16 + 8, 20, 8 and 12: without the key for 8 the move is refused."""
    s = small_scheme()
    s.bootstrap_keygen(N, rng=SeededRandom(9), packing=True)
    del s.public_keys.data["galois"][str(s._galois_element(8))]
    cts = [s.encrypt(np.ones((1, 4))), s.encrypt(np.ones((1, 4))), s.encrypt(np.ones((2, 4)))]
    with pytest.raises(KeyMissingError, match="Galois key for rotation"):
        s.bootstrap_many(cts, slots=N)


@given(data=st.data())
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
def test_any_shapes_that_fit_come_back_within_the_bound(packed, data):
    s, keys = packed
    count = data.draw(st.integers(1, 4))
    shapes = [(data.draw(st.integers(1, 2)), data.draw(st.integers(1, 4))) for _ in range(count)]
    values = [np.array(data.draw(st.lists(st.floats(-4, 4, allow_nan=False), min_size=r * c, max_size=r * c)))
              .reshape(r, c) for r, c in shapes]
    levels = [data.draw(st.integers(1, 4)) for _ in shapes]
    cts = [s.level_drop(s.encrypt(v), lv) for v, lv in zip(values, levels)]
    outs = s.bootstrap_many(cts, slots=N, clean=True, value_bound=4.0)
    for out, want in zip(outs, values):
        error = _error(s, keys, out, want)
        assert error < TOL and error <= s.noise_estimate(out)["slot_bound"]


def test_groups_fill_each_pack_largest_first_and_open_another_only_when_needed(packed):
    assert packing.groups([8, 4, 4, 4], 32) == [[0, 1, 2, 3]]
    assert packing.groups([8, 4, 4, 4], 16) == [[0, 1, 2], [3]]
    assert packing.groups([16, 16, 8, 8], 16) == [[0], [1], [2, 3]]
    with pytest.raises(ParameterError, match="64 slots"):
        packing.groups([64], 32)
    s, _keys = packed
    cts = [s.encrypt(np.ones((4, 8))), s.encrypt(np.ones((2, 8))), s.encrypt(np.ones((1, 4)))]
    assert s.bootstrap_packs(cts, slots=N) == [[0], [1, 2]]
    assert s.bootstrap_packs(cts[1:], slots=N) == [[0, 1]]
