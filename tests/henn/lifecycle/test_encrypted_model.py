"""henn.lifecycle.encrypted_model: encrypt, save, load and decrypt a model."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import he_core
from he_core import serialization as ser
from henn import lifecycle as lc

from .conftest import (
    SCHEMES,
    TOL,
    encrypt_as_owner,
    load_encrypted_model,
    load_owner,
    load_public,
    load_secret,
    make_switch_key,
    owner_of,
    toy_model,
)


@pytest.mark.parametrize("name", SCHEMES)
def test_encrypt_save_load_decrypt(name, tmp_path):
    scheme, public, secret, _ = owner_of(name, tmp_path)
    bundle = encrypt_as_owner(scheme, secret, toy_model())
    lc.save_encrypted_model(tmp_path / "m.henn", bundle)
    with lc.public_only():
        received = load_encrypted_model(tmp_path / "m.henn")
    assert received.key_id == public.key_id and received.bundle.key_ids == [public.key_id]
    back = lc.decrypt_model(received, secret)
    assert back.meta == toy_model().meta
    for key, array in toy_model().arrays.items():
        assert back.arrays[key].shape == array.shape
        np.testing.assert_allclose(back.arrays[key], array, rtol=0, atol=TOL[name])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrays=st.dictionaries(st.from_regex(r"[a-z][a-z0-9.]{0,6}", fullmatch=True),
                              hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                                         elements=st.floats(-1e6, 1e6, allow_subnormal=False)),
                              min_size=1, max_size=4))
def test_any_plain_model_round_trips_exactly_on_plain(arrays, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("m")
    model = lc.PlainModel(arrays, {"n": len(arrays)})
    lc.keygen("plain", tmp / "k", sizes=lc.required_sizes(model))
    scheme, _, secret = load_owner(tmp / "k")
    lc.save_encrypted_model(tmp / "m.henn", lc.encrypt_model(model, scheme))
    back = lc.decrypt_model(load_encrypted_model(tmp / "m.henn"), secret)
    for key, array in arrays.items():
        np.testing.assert_array_equal(back.arrays[key], array)


def test_keys_must_cover_the_model_sizes(tmp_path):
    lc.keygen("plain", tmp_path / "k", sizes=(1, 2))
    scheme, _ = load_public(tmp_path / "k")
    with pytest.raises(he_core.KeyMissingError, match=r"sizes \[1, 2\], the model also needs \[3\]"):
        lc.encrypt_model(lc.PlainModel({"w": np.ones((2, 3))}), scheme)


def test_empty_weights_are_refused(owner):
    scheme, _ = load_public(owner)
    with pytest.raises(ValueError, match="empty"):
        lc.encrypt_model(lc.PlainModel({"w": np.ones((0, 2))}), scheme)


def test_wrong_key_is_detected_by_id_before_any_arithmetic(tmp_path, owner, monkeypatch):
    scheme, _ = load_public(owner)
    lc.save_encrypted_model(tmp_path / "m.henn", lc.encrypt_model(toy_model(), scheme))
    lc.keygen("plain", tmp_path / "B", sizes=(1, 2))
    other = load_secret(tmp_path / "B")
    model = load_encrypted_model(tmp_path / "m.henn")
    calls = []
    monkeypatch.setattr(type(model.scheme), "_decrypt", lambda *a: calls.append(a))
    with pytest.raises(he_core.MismatchError) as info:
        lc.decrypt_model(model, other, tmp_path / "B")
    assert model.key_id in str(info.value) and other.key_id in str(info.value)
    assert calls == []


def test_a_bundle_that_is_not_a_model_is_refused(tmp_path, owner):
    scheme, public = load_public(owner)
    ser.save(ser.Bundle({"w": scheme.encrypt([1.0])}, {}), tmp_path / "no_public.henn")
    with pytest.raises(he_core.FormatError, match="not an encrypted henn model"):
        load_encrypted_model(tmp_path / "no_public.henn")
    ser.save(scheme.encrypt([1.0]), tmp_path / "ct.henn")
    with pytest.raises(he_core.FormatError, match="wrong kind"):
        load_encrypted_model(tmp_path / "ct.henn")


@pytest.mark.parametrize("shapes,match", [({"0.weight": [3, 2]}, "shape table"), ("x", "shape table"),
                                          ({"0.weight": [2, 3], "0.bias": [1, 2], "2.weight": [2], "scale": []},
                                           "recorded as"),
                                          ({"0.weight": [3, -2], "0.bias": [1, 2], "2.weight": [2], "scale": []},
                                           "bad shape")])
def test_a_shape_table_that_does_not_match_is_refused(tmp_path, owner, shapes, match):
    scheme, _ = load_public(owner)
    bundle = lc.encrypt_model(toy_model(), scheme)
    bundle.meta["shapes"] = shapes
    ser.save(bundle, tmp_path / "m.henn")
    with pytest.raises(he_core.FormatError, match=match):
        load_encrypted_model(tmp_path / "m.henn")


def test_other_bundles_with_public_keys_work_too(tmp_path, owner):
    # e.g. henn.io.save_model's model.henn: no shape table, metadata of its own, in a directory.
    scheme, public = load_public(owner)
    secret = load_secret(owner)
    (tmp_path / "saved").mkdir()
    meta = {"task": "xor", "config": {"hidden": 2}}
    ser.save(ser.Bundle({"w": scheme.encrypt([[1.0, -2.0]])}, meta, public), tmp_path / "saved" / lc.MODEL_FILE)
    model = load_encrypted_model(tmp_path / "saved")
    lc.keygen("plain", tmp_path / "B", sizes=(1, 2))
    moved = lc.rekey_model(model, make_switch_key(owner, tmp_path / "B"), load_public(tmp_path / "B")[1])
    assert moved.bundle.meta == meta  # their metadata is left exactly as it was
    with pytest.raises(he_core.MismatchError):
        lc.decrypt_model(moved, secret)
    back = lc.decrypt_model(moved, load_secret(tmp_path / "B"))
    assert back.meta == meta
    np.testing.assert_array_equal(back.arrays["w"], [[1.0, -2.0]])
