"""henn.keyservice.local_job: a job's key service beside the driver (LocalKeyJob) and the shared service
that serves every worker's connection side by side and counts its cached answers (SharedKeyService)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

import he_core
from he_core import serialization as ser
from henn.keyholder import RefreshTerms
from henn.keyservice import REENCRYPT, KeyServiceError, RemoteKeyHolder, protocol
from henn.keyservice.local_job import LocalKeyJob, SharedKeyService

pytestmark = pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")
SHAPE = (2, 3)


@pytest.fixture
def keyed():
    scheme = he_core.get_scheme("plain")
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(4))
    targets = [scheme.refresh_target_signature(scheme.encrypt(np.zeros(SHAPE)), None)]
    return scheme, secret, RefreshTerms(refreshes=20, min_aggregate=2), targets


def test_a_local_job_serves_its_key_privately_and_leaves_nothing_behind(keyed):
    scheme, secret, terms, targets = keyed
    with LocalKeyJob(scheme, secret, terms, targets, model={"task": "test"}) as job:
        sock = Path(job.address.removeprefix("unix:"))
        root = sock.parent.parent
        assert stat.S_IMODE(os.stat(root).st_mode) == stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
        assert not [p for p in root.rglob("*") if "secret" in p.name]  # the secret key is never written
        assert job.job["key_id"] == secret.key_id and job.job["terms"]["refreshes"] == 20
        assert isinstance(job.service, SharedKeyService)
        values = np.array([[1.5, -2.0, 0.25], [0.0, 4.0, -0.5]])
        with RemoteKeyHolder(job.address, scheme, secret.key_id, job=job.job) as remote:
            out = remote.refresh(scheme.encrypt(values))
        np.testing.assert_array_equal(scheme.decrypt_exact_local(out, secret), values)
        assert job.service.journal.refreshes == 1
    assert not root.exists()


def test_the_shared_service_serves_connections_side_by_side(keyed):
    scheme, secret, terms, targets = keyed
    with LocalKeyJob(scheme, secret, terms, targets) as job:
        a = RemoteKeyHolder(job.address, scheme, secret.key_id, timeout=5)
        b = RemoteKeyHolder(job.address, scheme, secret.key_id, timeout=5)  # while a keeps its connection
        for holder in (a, b, a):
            holder.refresh(scheme.encrypt(np.ones(SHAPE)))
        a.close()
        b.close()
        assert job.service.journal.refreshes == 3


def test_the_stock_service_serves_one_connection_at_a_time(keyed):
    scheme, secret, terms, targets = keyed
    with LocalKeyJob(scheme, secret, terms, targets, shared=False) as job:
        with RemoteKeyHolder(job.address, scheme, secret.key_id, timeout=5):
            with pytest.raises(KeyServiceError):  # its greeting waits behind the open connection
                RemoteKeyHolder(job.address, scheme, secret.key_id, timeout=0.5)
        with RemoteKeyHolder(job.address, scheme, secret.key_id, timeout=5) as later:  # served once it closed
            later.refresh(scheme.encrypt(np.ones(SHAPE)))


def test_a_replayed_request_is_answered_from_the_cache_and_counted(keyed):
    scheme, secret, terms, targets = keyed
    with LocalKeyJob(scheme, secret, terms, targets) as job:
        payload = protocol.pack({"request_id": "cd" * 16, "target": None}, ser.dumps(scheme.encrypt(np.ones(SHAPE))))
        first = job.service.handle(REENCRYPT, payload)
        assert job.service.replays == 0
        assert job.service.handle(REENCRYPT, payload) == first
        assert job.service.replays == 1 and job.service.journal.refreshes == 1


def test_a_job_served_apart_answers_from_another_process_and_stops_with_the_block():
    from henn.keyservice.local_job import serve_apart

    scheme = he_core.get_scheme("vhe")
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(4))
    ct = scheme.encrypt(np.array([[0.5, -1.25, 2.0], [0.0, 3.0, -0.75]]))
    targets = [scheme.refresh_target_signature(ct, None)]
    with serve_apart(scheme, secret, RefreshTerms(refreshes=4, min_aggregate=2), targets) as remote:
        fresh = remote.refresh(ct, value_bound=4.0)
        assert remote.refresh_rounds == 1 and remote.bytes_exchanged > 0
        np.testing.assert_array_equal(scheme.decrypt(fresh, secret), scheme.decrypt(ct, secret))
        assert scheme.budget(fresh)["remaining"] > scheme.budget(ct)["remaining"] - 1e-9
        children = __import__("multiprocessing").active_children()
        assert [p.name for p in children] == ["henn-key-service-apart"] and children[0].pid != os.getpid()
        with pytest.raises(KeyServiceError, match="does not allow"):  # the job's terms hold in the child
            remote.refresh(scheme.encrypt(np.zeros((1, 3))), value_bound=1.0)
    assert not __import__("multiprocessing").active_children()  # stopped and joined with the block


def test_the_other_core_is_one_this_process_is_not_pinned_to():
    from henn.keyservice.local_job import other_core

    if not hasattr(os, "sched_getaffinity") or (os.cpu_count() or 1) < 2:
        pytest.skip("needs CPU affinity and two cores")
    mine = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(mine)})
        assert other_core() not in (None, min(mine))
    finally:
        os.sched_setaffinity(0, mine)
