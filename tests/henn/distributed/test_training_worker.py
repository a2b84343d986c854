"""henn.distributed.training_worker without a cluster: the replaying key holder's seeded request ids and
per-request connections, a worker's weighted contribution, and the public keys a task opens."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

pytest.importorskip("distributed")

import he_core  # noqa: E402
from henn.distributed import wire  # noqa: E402
from henn.keyservice.local_job import LocalKeyJob  # noqa: E402
from henn.distributed.training_worker import REQUEST_DOMAIN, ReplayKeyHolder, contribution, open_public  # noqa: E402
from henn.keyholder import RefreshTerms  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")
SHAPE = (2, 3)


@pytest.fixture
def job():
    scheme = he_core.get_scheme("plain")
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(6))
    targets = [scheme.refresh_target_signature(scheme.encrypt(np.zeros(SHAPE)), None)]
    with LocalKeyJob(scheme, secret, RefreshTerms(refreshes=20), targets) as served:
        yield scheme, secret, served


def holder(job, seed, **kw):
    scheme, secret, served = job
    return ReplayKeyHolder(served.address, scheme, secret.key_id, seed=seed, job=served.job, timeout=5, **kw)


def test_request_ids_follow_from_the_seed_and_the_position(job):
    a, b, c = holder(job, b"s" * 32), holder(job, b"s" * 32), holder(job, b"t" * 32)
    ids = [[h._request_id() for _ in range(3)] for h in (a, b, c)]
    assert ids[0] == ids[1] and not set(ids[0]) & set(ids[2])  # a re-run repeats them, another seed does not
    want = [hashlib.shake_256(REQUEST_DOMAIN + b"\x00" + b"s" * 32 + k.to_bytes(8, "big")).hexdigest(16)
            for k in range(3)]
    assert ids[0] == want and a.requests == 3


@pytest.mark.parametrize("seed", [b"short", "s" * 32, None])
def test_a_seed_must_be_at_least_16_bytes(job, seed):
    with pytest.raises(ValueError, match="at least 16 bytes"):
        holder(job, seed)


def test_one_connection_per_request_unless_asked_to_keep_it(job):
    scheme, secret, served = job
    values = np.array([[0.5, 1.0, -2.0], [3.0, 0.0, 0.125]])
    for per_request, open_after in ((True, False), (False, True)):
        h = holder(job, b"p" * 16, per_request=per_request)
        out = h.refresh(scheme.encrypt(values))
        np.testing.assert_array_equal(scheme.decrypt_exact_local(out, secret), values)
        assert (h._conn is not None) == open_after
        h.close()


def test_a_contribution_is_the_weighted_weights_in_the_received_layout(job):
    scheme, secret, _served = job
    h = holder(job, b"w" * 16)
    values = np.array([[1.0, -3.0, 0.5], [2.0, 0.0, -1.0]])
    ct = scheme.encrypt(values)
    layout = scheme.layout_of(ct)
    quarter = contribution(h, ct, layout, 0.25, None)
    np.testing.assert_array_equal(scheme.decrypt_exact_local(quarter, secret), 0.25 * values)
    assert contribution(h, ct, layout, 1.0, None) is ct  # nothing to do: not even a copy
    assert h.refresh_rounds == 0  # the plain twin has no levels to restore


def test_a_task_opens_the_jobs_public_keys_insecure_ones_only_when_allowed(job, monkeypatch):
    scheme, _secret, _served = job
    sealed = wire.Wire(scheme.public_keys)
    monkeypatch.setattr(wire, "_accept_insecure", False)
    with pytest.raises(he_core.FormatError, match="insecure parameters"):
        open_public(sealed)
    monkeypatch.setattr(wire, "_accept_insecure", True)  # what AcceptInsecurePlugin switches on, restored after
    public = open_public(sealed)
    assert public.key_id == scheme.public_keys.key_id and public.scheme == "plain"
