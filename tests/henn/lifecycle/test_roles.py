"""henn.lifecycle.roles: inside public_only no secret key can be reached."""
from __future__ import annotations

import pytest

import he_core
from henn import lifecycle as lc

from .conftest import (
    load_owner,
    load_public,
    load_secret,
)


def test_public_only_blocks_every_secret_key_access(owner):
    with lc.public_only("trainer"):
        scheme, public = load_public(owner)  # allowed
        for call in (lambda: load_secret(owner), lambda: load_owner(owner),
                     lambda: lc.keygen("plain", owner / "new")):
            with pytest.raises(he_core.KeyMissingError, match="refusing to look for a secret key on the trainer"):
                call()
    assert load_secret(owner).key_id == public.key_id  # outside the block the owner can
