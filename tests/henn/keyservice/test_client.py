"""henn.keyservice.client.RemoteKeyHolder: the trainer's side of the key service, against a service in a thread.

It checks what it is talking to (the key, the job, a henn greeting), refreshes through the service
(values kept, exactly on the plain and vhe grids), resends a request once its connection drops, and
turns the service's refusals into named errors. The service's own checks are in test_service.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import he_core
from henn import jobs
from henn.keyholder import BudgetExhausted
from henn.keyservice import OK, KeyService, KeyServiceError, RemoteKeyHolder
from henn.keyservice.transport import listen

from .service_env import SHAPE, make_job, serving
from .threads import InThread


def test_remote_refresh_keeps_values_and_is_journaled(served):
    scheme, secret, service, address = served
    values = np.array([[0.5, -1.25, 0.0], [3.0, -0.0625, 7.5]])
    ct = scheme.encrypt(values)
    with RemoteKeyHolder(address, scheme, secret.key_id) as remote:
        fresh = remote.refresh(ct)
        again = remote.refresh(fresh)
        assert remote.refresh_rounds == 2 and remote.bytes_exchanged > 2 * ct.nbytes
        assert remote.terms == service.spec.terms  # the masks are sized for the job's terms
    for out in (fresh, again):
        np.testing.assert_array_equal(scheme.decrypt_exact_local(out, secret), values)  # exact: values on the grid
    assert service.journal.refreshes == 2 and service.journal.releases == 0


def test_the_trainer_checks_key_and_job(served):
    scheme, secret, service, address = served
    with pytest.raises(KeyServiceError, match="holds"):
        RemoteKeyHolder(address, scheme, "0" * 32)
    with pytest.raises(KeyServiceError, match="made for job"):
        RemoteKeyHolder(address, scheme, secret.key_id, job={**service.spec.public(), "job_id": "someone-else"})
    with RemoteKeyHolder(address, scheme, secret.key_id, job=service.spec.public()) as remote:
        assert remote.job["job_id"] == service.spec.job_id


def test_an_unreachable_service_is_a_clear_error(tmp_path):
    scheme = he_core.get_scheme("plain")
    scheme.keygen()
    with pytest.raises(KeyServiceError, match="cannot reach"):
        RemoteKeyHolder(f"unix:{tmp_path / 'none' / 'k.sock'}", scheme, "0" * 32, timeout=2)


def test_a_dropped_connection_is_reopened_and_the_request_resent(served):
    scheme, secret, service, address = served
    values = np.array([[0.5, -1.0, 2.0], [0.0, 0.25, -3.0]])
    with RemoteKeyHolder(address, scheme, secret.key_id) as remote:
        remote._conn._sock.shutdown(2)  # the link breaks under the open connection (as a network would)
        fresh = remote.refresh(scheme.encrypt(values))
        assert remote.retries == 1 and remote.refresh_rounds == 1
    np.testing.assert_array_equal(scheme.decrypt_exact_local(fresh, secret), values)
    assert service.journal.refreshes == 1  # the resent request was answered once


def test_the_services_refusals_become_named_errors(tmp_path):
    scheme = he_core.get_scheme("plain")
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(2))
    spec = make_job(scheme, secret, tmp_path / "job", refreshes=1)
    service = KeyService(scheme, secret, spec, jobs.Journal(tmp_path / "job"))
    address = f"unix:{tmp_path / 'sock' / 'k.sock'}"
    with serving(service, address), RemoteKeyHolder(address, scheme, secret.key_id) as remote:
        with pytest.raises(KeyServiceError, match="the key service refused: .*does not allow"):
            remote.reencrypt(scheme.encrypt(np.ones((4, 3))))  # a shape the job never asked for
        remote.refresh(scheme.encrypt(np.ones(SHAPE)))
        with pytest.raises(BudgetExhausted, match="budget of 1 refreshes is spent"):  # known from the greeting
            remote.refresh(scheme.encrypt(np.ones(SHAPE)))
        with pytest.raises(BudgetExhausted, match="the key service refused: BudgetExhausted"):  # and from the service
            remote.reencrypt(scheme.encrypt(np.ones(SHAPE)))
        counters = remote.counters()
        assert counters["job_id"] == spec.job_id and counters["refresh_rounds"] == 1 and counters["retries"] == 0
        assert counters["bytes_exchanged"] > 0 and counters["seconds_waiting"] > 0
    service.journal.close()


def test_a_peer_that_is_not_a_henn_key_service_is_refused(tmp_path):
    path = str(tmp_path / "run" / "k.sock")
    scheme = he_core.get_scheme("plain")
    scheme.keygen()

    def impostor(listener):
        conn = listener.accept(5)
        conn.recv()
        conn.send(OK, b"<html>hello</html>")
        conn.recv()  # until the client hangs up
        conn.close()

    with listen(path) as listener:
        server = InThread(impostor, listener)
        with pytest.raises(KeyServiceError, match="is not a henn key service"):
            RemoteKeyHolder(f"unix:{path}", scheme, scheme.public_keys.key_id, timeout=5)
        server.result()


def test_close_is_idempotent_and_a_closed_holder_reconnects(served):
    scheme, secret, _service, address = served
    remote = RemoteKeyHolder(address, scheme, secret.key_id)
    remote.close()
    remote.close()
    assert remote._conn is None
    np.testing.assert_array_equal(scheme.decrypt_exact_local(remote.refresh(scheme.encrypt(np.ones(SHAPE))), secret),
                                  np.ones(SHAPE))
    remote.close()


def test_a_ckks_refresh_comes_back_seeded_at_half_size(tmp_path):
    """The service's answer is a fresh secret-key encryption: its uniform half crosses the wire as a 32-byte seed."""
    from he_core import serialization as ser

    scheme = he_core.get_scheme("ckks")
    secret, _public = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(1))
    keys = tmp_path / "job"
    spec = make_job(scheme, secret, keys, entries_per_refresh=scheme.params.poly_degree)  # a slot batch reads N
    service = KeyService(scheme, secret, spec, jobs.Journal(keys))
    values = np.array([[0.5, -1.25, 0.0], [3.0, -0.0625, 7.5]])
    ct = scheme.mul_plain(scheme.encrypt(values), 1.0)  # a computed ciphertext, one level down
    with serving(service, f"unix:{tmp_path / 'sock' / 'k.sock'}"), \
            RemoteKeyHolder(f"unix:{tmp_path / 'sock' / 'k.sock'}", scheme, secret.key_id) as remote:
        fresh = remote.refresh(ct)
        sent = remote.bytes_exchanged
    service.journal.close()
    whole = fresh.data.nbytes  # the trainer's unmasked copy: whole in memory
    # request (the masked ciphertext, whole) + answer (half of a fresh one) + framing and headers
    assert sent < len(ser.dumps(ct)) + 0.55 * whole + 4096
    assert np.max(np.abs(scheme.decrypt_exact_local(fresh, secret) - values)) < 2.0**-20 * 8
