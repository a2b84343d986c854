"""henn.lifecycle.keydir: key directories, sealed, signed, checked and destroyed."""
from __future__ import annotations

import dataclasses
import os
import stat

import numpy as np
import pytest

import he_core
from he_core import serialization as ser
from henn import lifecycle as lc

from .conftest import (
    FAST_SCHEMES,
    PASS,
    TOL,
    WEIGHTS,
    load_owner,
    load_public,
    load_secret,
    ser_load,
    small_model,
)


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


def test_missing_secret_key_is_a_clear_error(tmp_path, owner):
    os.remove(owner / lc.SECRET_FILE)
    with pytest.raises(he_core.KeyMissingError, match="does not exist"):
        load_secret(owner)


@pytest.mark.parametrize("name", FAST_SCHEMES)
def test_sealed_and_signed_key_directory(name, tmp_path, identity):
    owner_dir, signer = identity
    pair = lc.keygen(name, tmp_path / "k", sizes=(1, 2), passphrase=PASS, signer=signer)
    assert ser.file_info((tmp_path / "k" / lc.SECRET_FILE).read_bytes()).sealed
    with pytest.raises(he_core.KeyMissingError, match="sealed with a passphrase"):
        lc.load_secret(tmp_path / "k", allow_insecure=True)
    owner_key = lc.load_owner_key(owner_dir)
    scheme, public, secret = lc.load_owner(tmp_path / "k", PASS, owner_key=owner_key, allow_insecure=True)
    assert secret.key_id == public.key_id == pair.public.key_id
    with pytest.raises(he_core.FormatError, match="insecure parameters"):
        lc.load_public(tmp_path / "k", owner_key=owner_key)
    bundle = lc.encrypt_model(small_model(), scheme)
    lc.save_encrypted_model(tmp_path / "m.henn", bundle, signer=signer)
    with lc.public_only():
        received = lc.load_encrypted_model(tmp_path / "m.henn", owner_key=owner_key, allow_insecure=True)
    back = lc.decrypt_model(received, secret)
    for key, array in WEIGHTS.items():
        np.testing.assert_allclose(back.arrays[key], array, rtol=0, atol=TOL[name])


def test_unsigned_or_foreign_files_are_refused_when_the_owner_is_required(tmp_path, identity):
    owner_dir, _ = identity
    lc.keygen("plain", tmp_path / "k", sizes=(1, 2))  # not signed
    owner_key = lc.load_owner_key(owner_dir)
    with pytest.raises(he_core.FormatError, match="not signed"):
        lc.load_public(tmp_path / "k", owner_key=owner_key, allow_insecure=True)
    scheme, _ = lc.load_public(tmp_path / "k", allow_insecure=True)
    stranger = he_core.formats.signing.SigningKey.generate()
    lc.save_encrypted_model(tmp_path / "m.henn", lc.encrypt_model(small_model(), scheme), signer=stranger)
    with pytest.raises(he_core.FormatError, match=f"signed by key {stranger.fingerprint}, not by the owner key "
                                                  f"{owner_key.fingerprint}"):
        lc.load_encrypted_model(tmp_path / "m.henn", owner_key=owner_key, allow_insecure=True)


def test_insecure_key_directories_and_models_need_the_opt_in(tmp_path):
    lc.keygen("plain", tmp_path / "k", sizes=(1, 2))
    for call in (lambda: lc.load_public(tmp_path / "k"), lambda: lc.load_secret(tmp_path / "k"),
                 lambda: lc.load_owner(tmp_path / "k")):
        with pytest.raises(he_core.FormatError, match="insecure parameters.*--allow-insecure"):
            call()
    scheme, _ = lc.load_public(tmp_path / "k", allow_insecure=True)
    lc.save_encrypted_model(tmp_path / "m.henn", lc.encrypt_model(small_model(), scheme))
    with pytest.raises(he_core.FormatError, match="insecure parameters"):
        lc.load_encrypted_model(tmp_path / "m.henn")


def test_a_relabelled_secret_key_is_not_the_public_keys_pair(tmp_path):
    # The public key's id is checked against its material on load; the secret key's id must then match it.
    pair = lc.keygen("plain", tmp_path / "k", sizes=(1, 2))
    ser.save(dataclasses.replace(pair.secret, key_id="e" * 32), tmp_path / "k" / lc.SECRET_FILE)
    with pytest.raises(he_core.MismatchError, match="not one pair"):
        lc.load_owner(tmp_path / "k", allow_insecure=True)


def test_destroy_secret_overwrites_then_removes(tmp_path):
    lc.keygen("plain", tmp_path / "k", passphrase=PASS)
    path = tmp_path / "k" / lc.SECRET_FILE
    before = path.read_bytes()
    os.link(path, tmp_path / "other-name")  # a second name for the same bytes on disk
    assert lc.destroy_secret(tmp_path / "k") == path
    assert not path.exists() and sorted(os.listdir(tmp_path / "k")) == [lc.PUBLIC_FILE]
    after = (tmp_path / "other-name").read_bytes()
    assert len(after) == len(before) and after != before and not after.startswith(b"\x89HENN")
    with pytest.raises(he_core.FormatError, match="bad magic"):
        ser.load(tmp_path / "other-name", passphrase=PASS)
    with pytest.raises(he_core.KeyMissingError, match="does not exist"):
        lc.destroy_secret(tmp_path / "k")


def test_destroy_secret_is_owner_only_and_refuses_symlinks(tmp_path):
    lc.keygen("plain", tmp_path / "k")
    with lc.public_only("trainer"), pytest.raises(he_core.KeyMissingError, match="trainer"):
        lc.destroy_secret(tmp_path / "k")
    (tmp_path / "j").mkdir()
    os.symlink(tmp_path / "k" / lc.SECRET_FILE, tmp_path / "j" / lc.SECRET_FILE)
    with pytest.raises(OSError):
        lc.destroy_secret(tmp_path / "j")
    assert lc.load_secret(tmp_path / "k", allow_insecure=True) is not None  # the target is untouched
