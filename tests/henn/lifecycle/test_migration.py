"""henn.lifecycle.migration: key directories and models from before derived key ids."""
from __future__ import annotations

import dataclasses
import hashlib
import struct

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
    small_model,
)


def version_1(blob: bytes) -> bytes:
    """The same file as written before signatures and derived ids (format version 1)."""
    body = bytearray(blob[:-32])
    struct.pack_into("<H", body, 8, 1)
    return bytes(body) + hashlib.sha256(body).digest()


def as_old(public, old_id: str):
    """Public keys as an old release held them: under ``old_id``, every switching key whole (seeds came later)."""
    data = {k: v for k, v in public.data.items() if k not in ("relin_seed", "galois_seeds")}
    return dataclasses.replace(public, key_id=old_id, data=data)


def make_legacy(keys, models=(), old_id: str | None = None) -> str:
    """Rewrite a key directory and models as an old release left them: a random key id, version 1."""
    old_id = old_id or he_core.keys.new_key_id()
    public = ser.load(keys / lc.PUBLIC_FILE, allow_insecure=True, verify_key_id=False)
    secret = ser.load(keys / lc.SECRET_FILE, allow_insecure=True)
    (keys / lc.PUBLIC_FILE).write_bytes(version_1(ser.dumps(as_old(public, old_id))))
    (keys / lc.SECRET_FILE).write_bytes(version_1(ser.dumps(dataclasses.replace(secret, key_id=old_id))))
    for path in models:
        bundle = ser.load(path, allow_insecure=True, verify_key_id=False)
        meta = dict(bundle.meta, key_history=[old_id])
        cts = {n: ct.replace(key_id=old_id) for n, ct in bundle.ciphertexts.items()}
        path.write_bytes(version_1(ser.dumps(ser.Bundle(cts, meta, as_old(bundle.public, old_id)))))
    return old_id


@pytest.mark.parametrize("name", FAST_SCHEMES)
def test_migrate_moves_keys_and_models_to_the_derived_id(name, tmp_path, identity):
    owner_dir, signer = identity
    pair = lc.keygen(name, tmp_path / "k", sizes=(1, 2))
    scheme, _ = lc.load_public(tmp_path / "k", allow_insecure=True)
    lc.save_encrypted_model(tmp_path / "m.henn", lc.encrypt_model(small_model(), scheme, secret=pair.secret))
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
    lc.save_encrypted_model(tmp_path / "m.henn", lc.encrypt_model(small_model(), scheme))
    make_legacy(tmp_path / "other", [tmp_path / "m.henn"])
    make_legacy(tmp_path / "k")
    migration = lc.migrate_keys(tmp_path / "k", allow_insecure=True)
    with pytest.raises(he_core.MismatchError, match="is not the key directory's"):
        lc.migrate_model(tmp_path / "m.henn", migration, allow_insecure=True)
