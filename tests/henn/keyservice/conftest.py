"""Shared fixtures of the key service tests."""
from __future__ import annotations

import pytest

import he_core
from henn import jobs
from henn.keyservice import KeyService
from henn.keyservice.pki import make_pki

from .service_env import make_job, serving


@pytest.fixture(scope="module")
def pkis(tmp_path_factory):
    """Two independent PKIs: ``a`` (the owner's) and ``b`` (someone else's)."""
    root = tmp_path_factory.mktemp("pki")
    return make_pki(root / "a"), make_pki(root / "b")


@pytest.fixture(params=["plain", "vhe"])
def served(request, tmp_path):
    """(scheme, secret, service, address) with the service running in a thread."""
    scheme = he_core.get_scheme(request.param)
    secret, _public = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(1))
    keys = tmp_path / "job"
    spec = make_job(scheme, secret, keys)
    service = KeyService(scheme, secret, spec, jobs.Journal(keys))
    address = f"unix:{tmp_path / 'sock' / 'k.sock'}"
    with serving(service, address):
        yield scheme, secret, service, address
    service.journal.close()
