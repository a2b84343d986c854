"""Shared fixtures of the key service tests."""
from __future__ import annotations

import pytest

from henn.keyservice.pki import make_pki


@pytest.fixture(scope="module")
def pkis(tmp_path_factory):
    """Two independent PKIs: ``a`` (the owner's) and ``b`` (someone else's)."""
    root = tmp_path_factory.mktemp("pki")
    return make_pki(root / "a"), make_pki(root / "b")
