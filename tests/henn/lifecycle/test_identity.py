"""henn.lifecycle.identity: the owner's signing identity."""
from __future__ import annotations

import os
import stat

import pytest

import he_core
from henn import lifecycle as lc

from .conftest import (
    PASS,
)


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
