"""henn.lifecycle: key directories, plaintext and encrypted models, re-keying, roles."""
from __future__ import annotations

import dataclasses
import functools
import os
import stat

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import he_core
from he_core import serialization as ser
from henn import lifecycle as lc


# plain and vhe are below 128-bit security, so these tests opt in to loading them
# (the refusal itself: test_insecure_files_need_the_opt_in).
load_public = functools.partial(lc.load_public, allow_insecure=True)
load_secret = functools.partial(lc.load_secret, allow_insecure=True)
load_owner = functools.partial(lc.load_owner, allow_insecure=True)
load_encrypted_model = functools.partial(lc.load_encrypted_model, allow_insecure=True)
make_switch_key = functools.partial(lc.make_switch_key, allow_insecure=True)
ser_load = functools.partial(ser.load, allow_insecure=True)

SCHEMES = [name for name in ("plain", "vhe", "ckks") if name in he_core.available_schemes()]
REKEY_SCHEMES = [n for n in SCHEMES if he_core.get_scheme(n).supports(he_core.Capability.REKEY)]
TOL = {"plain": 0.0, "vhe": 1e-3, "ckks": 1e-4}  # exact for plain; fixed-point rounding otherwise


def toy_model() -> lc.PlainModel:
    return lc.PlainModel({"0.weight": np.array([[0.5, -1.25], [0.0, 2.0], [-3.0, 0.75]]),
                          "0.bias": np.array([[0.25, -0.5]]), "2.weight": np.array([1.5, -2.0]),
                          "scale": np.array(3.0)}, {"arch": "toy", "layers": [3, 2, 1]})


@pytest.fixture
def owner(tmp_path):
    """A plain key directory covering the toy model."""
    lc.keygen("plain", tmp_path / "A", sizes=lc.required_sizes(toy_model()))
    return tmp_path / "A"


# --- key directories -------------------------------------------------------------------------------
def test_keygen_writes_a_private_secret_and_a_shareable_public_file(tmp_path):
    pair = lc.keygen("plain", tmp_path / "keys", sizes=(1, 4))
    secret, public = tmp_path / "keys" / lc.SECRET_FILE, tmp_path / "keys" / lc.PUBLIC_FILE
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "keys").st_mode) & 0o077 == 0
    assert ser_load(public, expect_kind="public_keys").key_id == pair.public.key_id
    assert ser_load(secret, expect_kind="secret_key").key_id == pair.secret.key_id
    scheme, loaded = load_public(tmp_path / "keys")
    assert loaded.requirements.sizes == (1, 4) and scheme.public_keys.key_id == pair.public.key_id


def test_keygen_refuses_to_replace_a_secret_key_unless_forced(owner):
    before = load_secret(owner).key_id
    with pytest.raises(FileExistsError, match="undecryptable"):
        lc.keygen("plain", owner)
    assert load_secret(owner).key_id == before
    assert lc.keygen("plain", owner, force=True).secret.key_id != before


def test_load_owner_refuses_a_mixed_directory(tmp_path, owner):
    lc.keygen("plain", tmp_path / "B")
    (owner / lc.PUBLIC_FILE).write_bytes((tmp_path / "B" / lc.PUBLIC_FILE).read_bytes())
    with pytest.raises(he_core.MismatchError, match="not one pair"):
        load_owner(owner)


def test_load_public_refuses_a_secret_key_file(owner):
    with pytest.raises(he_core.KeyMissingError, match="secret key file"):
        load_public(owner / lc.SECRET_FILE)
    os.rename(owner / lc.SECRET_FILE, owner / "renamed.henn")
    with pytest.raises(he_core.FormatError, match="wrong kind"):
        load_public(owner / "renamed.henn")


def test_public_only_blocks_every_secret_key_access(owner):
    with lc.public_only("trainer"):
        scheme, public = load_public(owner)  # allowed
        for call in (lambda: load_secret(owner), lambda: load_owner(owner),
                     lambda: lc.keygen("plain", owner / "new")):
            with pytest.raises(he_core.KeyMissingError, match="refusing to look for a secret key on the trainer"):
                call()
    assert load_secret(owner).key_id == public.key_id  # outside the block the owner can


def test_missing_secret_key_is_a_clear_error(tmp_path, owner):
    os.remove(owner / lc.SECRET_FILE)
    with pytest.raises(he_core.KeyMissingError, match="does not exist"):
        load_secret(owner)


# --- plaintext models -------------------------------------------------------------------------------
def test_plain_model_round_trip_is_owner_only(tmp_path):
    path = lc.write_plain_model(tmp_path / "m.npz", toy_model())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    back = lc.read_plain_model(path)
    assert back.meta == toy_model().meta
    for name, array in toy_model().arrays.items():
        np.testing.assert_array_equal(back.arrays[name], array)


def test_plain_model_in_a_new_directory_gets_an_owner_only_one(tmp_path):
    path = lc.write_plain_model(tmp_path / "owner" / "init.npz", toy_model())
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700 and lc.read_plain_model(path).meta == toy_model().meta


def test_plain_model_of_integers_is_read_as_float(tmp_path):
    np.savez(tmp_path / "m.npz", w=np.array([[1, -2]], dtype=np.int32))
    model = lc.read_plain_model(tmp_path / "m.npz")
    assert model.arrays["w"].dtype == np.float64 and model.meta == {}


@pytest.mark.parametrize("arrays,match", [
    ({"w": np.array([object(), 1], dtype=object)}, "dtype object are not weights"),
    ({"w": np.array([1.0, np.nan])}, "NaN"),
    ({"w": np.array(["a", "b"])}, "real numbers"),
    ({"w": np.array([1 + 2j])}, "real numbers"),
    ({"w": np.array([True])}, "real numbers"),
    ({"__meta__": np.frombuffer(b"[1]", np.uint8)}, "no weight arrays|JSON object"),
    ({"w": np.ones(2), "__meta__": np.frombuffer(b"{bad", np.uint8)}, "bad __meta__ JSON"),
    ({"w": np.ones(2), "__meta__": np.array([1.0])}, "UTF-8 JSON bytes"),
])
def test_bad_plain_models_are_format_errors(tmp_path, arrays, match):
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(he_core.FormatError, match=match):
        lc.read_plain_model(tmp_path / "m.npz")


def test_npy_header_claiming_more_than_the_data_allocates_nothing(tmp_path):
    import io
    import tracemalloc
    import zipfile
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (2**40,)})
    with zipfile.ZipFile(tmp_path / "m.npz", "w") as archive:
        archive.writestr("w.npy", header.getvalue() + b"\0" * 64)  # the header includes the magic
    tracemalloc.start()
    try:
        with pytest.raises(he_core.FormatError, match="header claims 8796093022208 bytes"):
            lc.read_plain_model(tmp_path / "m.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000


@pytest.mark.parametrize("header", [b"{'descr': '|u1', 'fortran_order': False, 'shape': (15,9, }",
                                    b"{'descr': '<f8', 'fortran_order': False, 'shape': (2,)",
                                    b"__import__('os').system('echo pwned')"])
def test_malformed_npy_headers_are_format_errors(tmp_path, header):
    # The first one was found by fuzz/run_loaders.py: numpy raised tokenize.TokenError.
    import struct
    import zipfile
    padded = header + b" " * (-(len(header) + 11) % 64) + b"\n"
    member = np.lib.format.magic(1, 0) + struct.pack("<H", len(padded)) + padded + b"\0" * 16
    with zipfile.ZipFile(tmp_path / "m.npz", "w") as archive:
        archive.writestr("w.npy", member)
    with pytest.raises(he_core.FormatError, match="cannot read plaintext model"):
        lc.read_plain_model(tmp_path / "m.npz")


def test_fortran_order_and_unusual_members(tmp_path):
    np.savez(tmp_path / "m.npz", w=np.asfortranarray(np.arange(6.0).reshape(2, 3)))
    np.testing.assert_array_equal(lc.read_plain_model(tmp_path / "m.npz").arrays["w"], np.arange(6.0).reshape(2, 3))
    import zipfile
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as archive:
        archive.writestr("evil.pkl", b"cos\nsystem\n")
    with pytest.raises(he_core.FormatError, match="unexpected archive member"):
        lc.read_plain_model(tmp_path / "x.npz")


def test_not_an_npz_is_a_format_error(tmp_path):
    (tmp_path / "m.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(he_core.FormatError, match="cannot read plaintext model"):
        lc.read_plain_model(tmp_path / "m.npz")


# --- encrypted models ---------------------------------------------------------------------------------
def _owner_of(name, tmp_path, label="A"):
    pair = lc.keygen(name, tmp_path / label, sizes=lc.required_sizes(toy_model()), rng=he_core.SeededRandom(5 + sum(map(ord, label))))
    return load_owner(tmp_path / label) + (pair,)


def _encrypt(scheme, secret, model):
    use_secret = None if scheme.supports(he_core.Capability.PUBLIC_KEY_ENCRYPT) else secret
    return lc.encrypt_model(model, scheme, secret=use_secret)


@pytest.mark.parametrize("name", SCHEMES)
def test_encrypt_save_load_decrypt(name, tmp_path):
    scheme, public, secret, _ = _owner_of(name, tmp_path)
    bundle = _encrypt(scheme, secret, toy_model())
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


# --- re-keying ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", REKEY_SCHEMES)
def test_rekey_moves_the_model_without_decrypting(name, tmp_path, monkeypatch):
    scheme, _, secret_a, _ = _owner_of(name, tmp_path, "A")
    _, public_b, secret_b, _ = _owner_of(name, tmp_path, "B")
    lc.save_encrypted_model(tmp_path / "m.henn", _encrypt(scheme, secret_a, toy_model()))
    model = load_encrypted_model(tmp_path / "m.henn")
    switch = make_switch_key(tmp_path / "A", tmp_path / "B")

    def no_decrypt(*args):
        raise AssertionError("rekey must not decrypt")
    with monkeypatch.context() as patch:
        patch.setattr(type(model.scheme), "_decrypt", no_decrypt)
        with lc.public_only("re-keying party"):
            moved = lc.rekey_model(model, switch, public_b)
    lc.save_encrypted_model(tmp_path / "mB.henn", moved)
    received = load_encrypted_model(tmp_path / "mB.henn")
    assert received.key_id == secret_b.key_id
    assert received.bundle.meta["key_history"] == [secret_a.key_id, secret_b.key_id]
    back = lc.decrypt_model(received, secret_b)
    for key, array in toy_model().arrays.items():
        np.testing.assert_allclose(back.arrays[key], array, rtol=0, atol=TOL[name])
    with pytest.raises(he_core.MismatchError):
        lc.decrypt_model(received, secret_a)


def test_rekey_checks_the_switch_key_and_target(tmp_path, owner):
    scheme, _ = load_public(owner)
    model = lc.EncryptedModel(scheme, lc.encrypt_model(toy_model(), scheme))
    lc.keygen("plain", tmp_path / "B", sizes=(1, 2))
    lc.keygen("plain", tmp_path / "C", sizes=(1, 2))
    b_to_c = make_switch_key(tmp_path / "B", tmp_path / "C")
    with pytest.raises(he_core.MismatchError, match="starts from key"):
        lc.rekey_model(model, b_to_c, load_public(tmp_path / "C")[1])
    a_to_b = make_switch_key(owner, tmp_path / "B")
    with pytest.raises(he_core.MismatchError, match="leads to key"):
        lc.rekey_model(model, a_to_b, load_public(tmp_path / "C")[1])


class _NoRekeyScheme(he_core.get_scheme("plain").__class__):
    name = "plain-norekey"
    capabilities = he_core.get_scheme("plain").capabilities - {he_core.Capability.REKEY}

    @dataclasses.dataclass(frozen=True)
    class params_class(he_core.get_scheme("plain").params_class):  # noqa: N801 - the interface's name
        scheme = "plain-norekey"


def test_a_scheme_without_key_switching_says_so(tmp_path):
    he_core.register_scheme("plain-norekey", _NoRekeyScheme, replace=True)
    try:
        lc.keygen("plain-norekey", tmp_path / "A")
        lc.keygen("plain-norekey", tmp_path / "B")
        with pytest.raises(he_core.CapabilityError, match="switching to another secret key"):
            make_switch_key(tmp_path / "A", tmp_path / "B")
    finally:
        he_core.unregister_scheme("plain-norekey")
