"""henn.lifecycle and the owner's trust anchors: signing identity, sealed and destroyed keys, migration."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import struct

import numpy as np
import pytest

import he_core
from he_core import serialization as ser
from henn import lifecycle as lc

PASS = b"owner passphrase"
SCHEMES = [name for name in ("plain", "vhe") if name in he_core.available_schemes()]
WEIGHTS = {"0.weight": np.array([[0.5, -1.25], [0.0, 2.0], [-3.0, 0.75]]), "0.bias": np.array([[0.25, -0.5]])}
TOL = {"plain": 0.0, "vhe": 1e-3}


def model() -> lc.PlainModel:
    return lc.PlainModel(dict(WEIGHTS), {"arch": "toy"})


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    """An owner directory (signing key under PASS) and its key."""
    out = tmp_path_factory.mktemp("id") / "owner"
    lc.owner_init(out, PASS)
    return out, lc.load_signer(out, PASS)


# --- the owner's signing identity ---------------------------------------------------------------------
def test_owner_init_writes_a_private_key_and_a_public_one(tmp_path):
    public = lc.owner_init(tmp_path / "me", PASS)
    assert stat.S_IMODE(os.stat(tmp_path / "me").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "me" / lc.SIGNING_KEY_FILE).st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "me" / lc.SIGNING_KEY_FILE).read_bytes()
    assert len(public.fingerprint) == 32
    assert lc.load_owner_key(tmp_path / "me") == public == lc.load_owner_key(tmp_path / "me" / lc.OWNER_PUB_FILE)
    assert lc.load_signer(tmp_path / "me", PASS).verify_key == public
    with pytest.raises(he_core.KeyMissingError, match="--passphrase-file"):
        lc.load_signer(tmp_path / "me")
    with pytest.raises(he_core.FormatError, match="wrong passphrase"):
        lc.load_signer(tmp_path / "me", b"guess")


def test_owner_init_never_replaces_an_identity_nor_uses_an_open_directory(tmp_path):
    first = lc.owner_init(tmp_path / "me")
    with pytest.raises(FileExistsError, match="unverifiable"):
        lc.owner_init(tmp_path / "me")
    assert lc.load_owner_key(tmp_path / "me") == first
    (tmp_path / "shared").mkdir(mode=0o755)
    os.chmod(tmp_path / "shared", 0o755)
    with pytest.raises(PermissionError, match="accessible to other users"):
        lc.owner_init(tmp_path / "shared")


def test_owner_key_paths_and_a_mismatched_directory(tmp_path):
    lc.owner_init(tmp_path / "me")
    lc.owner_init(tmp_path / "other")
    with pytest.raises(he_core.KeyMissingError, match="private signing key"):
        lc.load_owner_key(tmp_path / "me" / lc.SIGNING_KEY_FILE)
    (tmp_path / "me" / lc.OWNER_PUB_FILE).write_bytes((tmp_path / "other" / lc.OWNER_PUB_FILE).read_bytes())
    with pytest.raises(he_core.MismatchError, match="owner.pub is key"):
        lc.load_signer(tmp_path / "me")
    with pytest.raises(he_core.KeyMissingError, match="henn owner init"):
        lc.load_signer(tmp_path / "nowhere")
    with lc.public_only("trainer"), pytest.raises(he_core.KeyMissingError, match="trainer"):
        lc.load_signer(tmp_path / "other")


# --- key directories: sealed, signed, checked ---------------------------------------------------------
@pytest.mark.parametrize("name", SCHEMES)
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
    bundle = lc.encrypt_model(model(), scheme)
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
    lc.save_encrypted_model(tmp_path / "m.henn", lc.encrypt_model(model(), scheme), signer=stranger)
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
    lc.save_encrypted_model(tmp_path / "m.henn", lc.encrypt_model(model(), scheme))
    with pytest.raises(he_core.FormatError, match="insecure parameters"):
        lc.load_encrypted_model(tmp_path / "m.henn")


def test_a_relabelled_secret_key_is_not_the_public_keys_pair(tmp_path):
    # The public key's id is checked against its material on load; the secret key's id must then match it.
    pair = lc.keygen("plain", tmp_path / "k", sizes=(1, 2))
    ser.save(dataclasses.replace(pair.secret, key_id="e" * 32), tmp_path / "k" / lc.SECRET_FILE)
    with pytest.raises(he_core.MismatchError, match="not one pair"):
        lc.load_owner(tmp_path / "k", allow_insecure=True)


# --- destroying a key ---------------------------------------------------------------------------------
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


# --- migration from random key ids -------------------------------------------------------------------
def version_1(blob: bytes) -> bytes:
    """The same file as written before signatures and derived ids (format version 1)."""
    body = bytearray(blob[:-32])
    struct.pack_into("<H", body, 8, 1)
    return bytes(body) + hashlib.sha256(body).digest()


def make_legacy(keys, models=(), old_id: str | None = None) -> str:
    """Rewrite a key directory and models as an old release left them: a random key id, version 1."""
    old_id = old_id or he_core.keys.new_key_id()
    public = ser.load(keys / lc.PUBLIC_FILE, allow_insecure=True, verify_key_id=False)
    secret = ser.load(keys / lc.SECRET_FILE, allow_insecure=True)
    (keys / lc.PUBLIC_FILE).write_bytes(version_1(ser.dumps(dataclasses.replace(public, key_id=old_id))))
    (keys / lc.SECRET_FILE).write_bytes(version_1(ser.dumps(dataclasses.replace(secret, key_id=old_id))))
    for path in models:
        bundle = ser.load(path, allow_insecure=True, verify_key_id=False)
        meta = dict(bundle.meta, key_history=[old_id])
        cts = {n: ct.replace(key_id=old_id) for n, ct in bundle.ciphertexts.items()}
        path.write_bytes(version_1(ser.dumps(ser.Bundle(cts, meta, dataclasses.replace(bundle.public,
                                                                                        key_id=old_id)))))
    return old_id


@pytest.mark.parametrize("name", SCHEMES)
def test_migrate_moves_keys_and_models_to_the_derived_id(name, tmp_path, identity):
    owner_dir, signer = identity
    pair = lc.keygen(name, tmp_path / "k", sizes=(1, 2))
    scheme, _ = lc.load_public(tmp_path / "k", allow_insecure=True)
    lc.save_encrypted_model(tmp_path / "m.henn", lc.encrypt_model(model(), scheme, secret=pair.secret))
    old_id = make_legacy(tmp_path / "k", [tmp_path / "m.henn"])
    with pytest.raises(he_core.FormatError, match="written before key ids were derived.*henn migrate"):
        lc.load_public(tmp_path / "k", allow_insecure=True)
    with pytest.raises(he_core.FormatError, match="henn migrate"):
        lc.load_encrypted_model(tmp_path / "m.henn", allow_insecure=True)

    migration = lc.migrate_keys(tmp_path / "k", passphrase=PASS, signer=signer, allow_insecure=True)
    assert migration.old_ids == (old_id,) and migration.new_id == pair.public.key_id
    lc.migrate_model(tmp_path / "m.henn", migration, signer=signer, allow_insecure=True)

    owner_key = lc.load_owner_key(owner_dir)
    _, public, secret = lc.load_owner(tmp_path / "k", PASS, owner_key=owner_key, allow_insecure=True)
    received = lc.load_encrypted_model(tmp_path / "m.henn", owner_key=owner_key, allow_insecure=True)
    assert received.bundle.key_ids == [public.key_id] and received.bundle.meta["key_history"] == [public.key_id]
    back = lc.decrypt_model(received, secret)
    for key, array in WEIGHTS.items():
        np.testing.assert_allclose(back.arrays[key], array, rtol=0, atol=TOL[name])
    again = lc.migrate_keys(tmp_path / "k", passphrase=PASS, allow_insecure=True)  # safe to repeat
    assert again.old_ids == () and again.new_id == public.key_id


def test_migrate_finishes_a_half_done_directory(tmp_path):
    pair = lc.keygen("plain", tmp_path / "k")
    make_legacy(tmp_path / "k")
    ser.save(pair.secret, tmp_path / "k" / lc.SECRET_FILE)  # the secret was rewritten, then it stopped
    assert lc.migrate_keys(tmp_path / "k", allow_insecure=True).new_id == pair.public.key_id
    assert lc.load_owner(tmp_path / "k", allow_insecure=True)[1].key_id == pair.public.key_id


@pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="ckks not built")
def test_migrate_refuses_a_public_key_that_is_not_the_secret_keys_pair(tmp_path):
    # Someone slipped their own public key into an old directory under its id: migrating
    # must not bind the owner's secret key to it (models would be encrypted to them).
    # CKKS (a toy ring, for speed): with vhe a wrong key still decrypts public-key
    # encryptions, one more way in which vhe is insecure, so the test needs a real scheme.
    params = he_core.scheme_class("ckks").params_class(poly_degree=2048, levels=1, allow_insecure=True)
    for label in ("k", "theirs"):
        lc.keygen("ckks", tmp_path / label, sizes=(1, 2), params=params)
    old_id = make_legacy(tmp_path / "k")
    make_legacy(tmp_path / "theirs", old_id=old_id)
    ours = (tmp_path / "k" / lc.PUBLIC_FILE).read_bytes()
    (tmp_path / "k" / lc.PUBLIC_FILE).write_bytes((tmp_path / "theirs" / lc.PUBLIC_FILE).read_bytes())
    before = (tmp_path / "k" / lc.SECRET_FILE).read_bytes()
    with pytest.raises(he_core.MismatchError, match="not the public half of its secret key"):
        lc.migrate_keys(tmp_path / "k", allow_insecure=True)
    assert (tmp_path / "k" / lc.SECRET_FILE).read_bytes() == before  # nothing written
    (tmp_path / "k" / lc.PUBLIC_FILE).write_bytes(ours)  # the control: the real pair migrates
    assert lc.migrate_keys(tmp_path / "k", allow_insecure=True).old_ids == (old_id,)


def test_migrate_model_refuses_a_model_under_another_key(tmp_path):
    lc.keygen("plain", tmp_path / "k", sizes=(1, 2))
    lc.keygen("plain", tmp_path / "other", sizes=(1, 2))
    scheme, _ = lc.load_public(tmp_path / "other", allow_insecure=True)
    lc.save_encrypted_model(tmp_path / "m.henn", lc.encrypt_model(model(), scheme))
    make_legacy(tmp_path / "other", [tmp_path / "m.henn"])
    make_legacy(tmp_path / "k")
    migration = lc.migrate_keys(tmp_path / "k", allow_insecure=True)
    with pytest.raises(he_core.MismatchError, match="is not the key directory's"):
        lc.migrate_model(tmp_path / "m.henn", migration, allow_insecure=True)
