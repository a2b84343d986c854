"""henn.lifecycle.rekey: moving a model to another key without decrypting."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import he_core
from henn import lifecycle as lc

from .conftest import (
    REKEY_SCHEMES,
    TOL,
    encrypt_as_owner,
    load_encrypted_model,
    load_public,
    make_switch_key,
    owner_of,
    toy_model,
)


@pytest.mark.parametrize("name", REKEY_SCHEMES)
def test_rekey_moves_the_model_without_decrypting(name, tmp_path, monkeypatch):
    scheme, _, secret_a, _ = owner_of(name, tmp_path, "A")
    _, public_b, secret_b, _ = owner_of(name, tmp_path, "B")
    lc.save_encrypted_model(tmp_path / "m.henn", encrypt_as_owner(scheme, secret_a, toy_model()))
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
