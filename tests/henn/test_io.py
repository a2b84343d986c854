"""Saving and loading encrypted models and secret keys."""
from __future__ import annotations

import functools
import os
import stat

import numpy as np
import pytest

import he_core
from henn import io
from henn.tasks.xor import X, XorConfig, build_xor
from henn.tasks.xor import setup



def _saved(tmp_path, scheme_name="plain"):
    scheme, kh = setup(scheme_name)
    model = build_xor(scheme, XorConfig(seed=1))
    io.save_model(tmp_path, model, scheme, meta={"task": "xor", "seed": 1}, secret=kh.export_secret_key())
    return scheme, kh, model


# plain and vhe are below 128-bit security: loading their files is opt-in (refusal: test_insecure_models_*).
load_model = functools.partial(io.load_model, allow_insecure=True)
load_secret = functools.partial(io.load_secret, allow_insecure=True)

SCHEMES = ["plain", "vhe"]


@pytest.mark.parametrize("name", SCHEMES)
def test_round_trip(tmp_path, name):
    scheme, kh, model = _saved(tmp_path, name)
    assert stat.S_IMODE(os.stat(tmp_path / io.SECRET_FILE).st_mode) == 0o600
    loaded = load_model(tmp_path, expect_scheme=name)
    assert loaded.meta == {"task": "xor", "seed": 1} and loaded.key_id == kh.key_id
    secret = load_secret(tmp_path, key_id=loaded.key_id)
    fresh = io.apply_tensors(build_xor(loaded.scheme, XorConfig(seed=9)), loaded.tensors)
    for (name, p), (_, q) in zip(model.named_parameters(), fresh.named_parameters()):
        np.testing.assert_array_equal(scheme.decrypt_exact_local(p.value.ct, kh.export_secret_key()), loaded.scheme.decrypt_exact_local(q.value.ct, secret), err_msg=name)
    # the loaded model computes: same predictions as the original
    np.testing.assert_array_equal(scheme.decrypt_exact_local(model(X).ct, kh.export_secret_key()), loaded.scheme.decrypt_exact_local(fresh(X).ct, secret))


def test_model_file_alone_holds_no_secret(tmp_path):
    _saved(tmp_path)
    (tmp_path / io.SECRET_FILE).unlink()
    loaded = load_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="secret key"):
        load_secret(tmp_path, key_id=loaded.key_id)


def test_wrong_scheme_is_refused(tmp_path):
    _saved(tmp_path)
    with pytest.raises(he_core.FormatError, match="wrong scheme"):
        load_model(tmp_path, expect_scheme="vhe")


@pytest.mark.parametrize("name", SCHEMES)
def test_wrong_key_is_refused(tmp_path, name):
    a, b = tmp_path / "a", tmp_path / "b"
    _saved(a, name)
    _saved(b, name)
    model_a = load_model(a)
    with pytest.raises(he_core.FormatError, match="wrong key"):
        load_secret(b, key_id=model_a.key_id)


def test_saving_a_foreign_secret_is_refused(tmp_path):
    scheme, kh = setup("plain")
    _, other = setup("plain")
    with pytest.raises(he_core.MismatchError, match="not the key"):
        io.save_model(tmp_path, build_xor(scheme), scheme, meta={}, secret=other.export_secret_key())


def test_architecture_mismatch_and_missing_files(tmp_path):
    _saved(tmp_path)
    loaded = load_model(tmp_path)
    tensors = dict(loaded.tensors)
    tensors.pop("2.bias")
    with pytest.raises(ValueError, match="do not match"):
        io.apply_tensors(build_xor(loaded.scheme), tensors)
    tensors["2.bias"] = loaded.tensors["0.bias"]  # (1, 4) where (1, 1) belongs
    with pytest.raises(ValueError, match="has shape"):
        io.apply_tensors(build_xor(loaded.scheme), tensors)
    with pytest.raises(FileNotFoundError, match="model.henn"):
        load_model(tmp_path / "nowhere")


def test_corrupt_model_file_is_a_format_error(tmp_path):
    _saved(tmp_path)
    path = tmp_path / io.MODEL_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(he_core.FormatError):
        load_model(tmp_path)


def test_insecure_models_need_the_opt_in(tmp_path):
    _saved(tmp_path)
    with pytest.raises(he_core.FormatError, match="insecure parameters"):
        io.load_model(tmp_path)
    with pytest.raises(he_core.FormatError, match="insecure parameters"):
        io.load_secret(tmp_path, key_id=load_model(tmp_path).key_id)


def test_signed_model_and_sealed_secret(tmp_path):
    from he_core.formats.signing import SigningKey
    owner, stranger = SigningKey.generate(), SigningKey.generate()
    scheme, holder = setup("plain")
    io.save_model(tmp_path, build_xor(scheme, XorConfig(seed=1)), scheme, meta={}, secret=holder.export_secret_key(),
                  signer=owner, passphrase=b"pw")
    loaded = load_model(tmp_path, owner_key=owner.verify_key)
    with pytest.raises(he_core.FormatError, match="not by the owner key"):
        load_model(tmp_path, owner_key=stranger.verify_key)
    with pytest.raises(he_core.KeyMissingError, match="sealed"):
        load_secret(tmp_path, key_id=loaded.key_id)
    assert load_secret(tmp_path, key_id=loaded.key_id, passphrase=b"pw").key_id == loaded.key_id
