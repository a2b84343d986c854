"""henn.keyservice.service: the job-bound key service, in one process (the trainer's side: test_client.py).

The service runs in a thread on a Unix socket in a private directory; the
multi-process workflow through ``henn job create`` / ``henn serve-keys`` is tested in
``tests/henn/cli/sentiment/test_parties.py``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import he_core
from he_core import serialization as ser
from henn import jobs
from henn.keyholder import BudgetExhausted, RefreshTerms
from henn.keyservice import ERROR, HELLO, OK, REENCRYPT, RELEASE, KeyService, KeyServiceError, RemoteKeyHolder, protocol
from henn.keyservice.transport import connect

from .service_env import SHAPE, make_job, serving  # noqa: F401 - serving: tests/henn/training/test_fit.py imports it here



def test_remote_key_holder_cannot_decrypt_and_aggregates_go_to_the_owner(served):
    scheme, secret, service, address = served
    with RemoteKeyHolder(address, scheme, secret.key_id) as remote:
        assert not hasattr(remote, "decrypt") and not hasattr(remote, "release")
        assert remote.release_aggregate(scheme.encrypt([[12.5]]), 10) is None  # nothing comes back
        with pytest.raises(ValueError, match="at least 10"):  # the client does not even send it
            remote.release_aggregate(scheme.encrypt([[1.0]]), 9)
    for count, values, refusal in ((9, [[1.0]], "at least 10 samples"), (10, [[1.0, 2.0, 3.0]], "one value")):
        payload = protocol.pack({"request_id": protocol.new_request_id(), "count": count},
                                ser.dumps(scheme.encrypt(values)))
        with pytest.raises(KeyServiceError, match=refusal):  # nor would the service decrypt it
            service.handle(RELEASE, payload)
    for scale in (0.0, -0.5, 2.0, float("nan"), True, "0.1", None):
        payload = protocol.pack({"request_id": protocol.new_request_id(), "count": 10, "scale": scale},
                                ser.dumps(scheme.encrypt([[1.0]])))
        with pytest.raises(KeyServiceError, match="scale must be a number in"):  # refused before decrypting
            service.handle(RELEASE, payload)
    with RemoteKeyHolder(address, scheme, secret.key_id) as remote:
        with pytest.raises(ValueError, match="scale must be a number in"):
            remote.release_aggregate(scheme.encrypt([[1.0]]), 10, scale=1.5)
        remote.release_aggregate(scheme.encrypt([[0.25]]), 10, scale=0.1)
    assert service.journal.releases == 2
    assert [a["count"] for a in service.journal.aggregates] == [10, 10]
    assert service.journal.aggregates[0]["value"] == pytest.approx(12.5, abs=1e-3)  # the owner's log
    assert service.journal.aggregates[0]["scale"] == 1.0 and service.journal.aggregates[1]["scale"] == 0.1


def test_a_retried_request_spends_nothing_and_shows_no_second_view(served):
    scheme, secret, service, _address = served
    remote_like = RefreshTerms()  # masks do not matter for this check
    assert remote_like.refreshes > 0
    payload = protocol.pack({"request_id": "ab" * 16, "target": None}, ser.dumps(scheme.encrypt(np.ones(SHAPE))))
    op, first = service.handle(REENCRYPT, payload)
    calls = []
    real = scheme.reencrypt_masked
    scheme.reencrypt_masked = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        op2, second = service.handle(REENCRYPT, payload)
    finally:
        del scheme.reencrypt_masked
    assert op == op2 == OK and first == second and calls == []  # the cached answer: no decryption
    assert service.journal.refreshes == 1
    other = protocol.pack({"request_id": "ab" * 16, "target": None}, ser.dumps(scheme.encrypt(np.zeros(SHAPE))))
    with pytest.raises(KeyServiceError, match="used for another request"):
        service.handle(REENCRYPT, other)


def test_budget_survives_a_restart(served, tmp_path):
    scheme, secret, service, _address = served
    payloads = [protocol.pack({"request_id": f"{k:032x}", "target": None}, ser.dumps(scheme.encrypt(np.ones(SHAPE))))
                for k in range(3)]
    for payload in payloads:
        service.handle(REENCRYPT, payload)
    restarted = KeyService(scheme, secret, service.spec, jobs.Journal(tmp_path / "job"))
    assert restarted.journal.refreshes == 3
    with pytest.raises(KeyServiceError, match="no longer held"):  # answered before the restart: never again
        restarted.handle(REENCRYPT, payloads[0])
    restarted.journal.close()


def test_the_refresh_budget_is_enforced(tmp_path):
    scheme = he_core.get_scheme("vhe")
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)))
    spec = make_job(scheme, secret, tmp_path / "job", refreshes=2)
    service = KeyService(scheme, secret, spec, jobs.Journal(tmp_path / "job"))
    ct = ser.dumps(scheme.encrypt(np.ones(SHAPE)))
    for k in range(2):
        assert service.handle(REENCRYPT, protocol.pack({"request_id": f"{k:032x}", "target": None}, ct))[0] == OK
    with pytest.raises(BudgetExhausted, match="2 refreshes"):
        service.handle(REENCRYPT, protocol.pack({"request_id": f"{9:032x}", "target": None}, ct))


def test_targets_and_scales_outside_the_job_are_refused(served):
    scheme, secret, service, _address = served
    other_shape = ser.dumps(scheme.encrypt(np.ones((4, 3))))
    with pytest.raises(KeyServiceError, match="does not allow"):
        service.handle(REENCRYPT, protocol.pack({"request_id": "01" * 16, "target": None}, other_shape))
    ct = scheme.encrypt(np.ones(SHAPE))
    far = ct.replace(scale=ct.scale * 2.0**12) if scheme.name == "plain" else None
    if far is not None:
        with pytest.raises(KeyServiceError, match="job's scale"):
            service.handle(REENCRYPT, protocol.pack({"request_id": "02" * 16, "target": None}, ser.dumps(far)))
    assert service.journal.refreshes == 0


def test_a_closed_job_or_another_key_is_not_served(tmp_path):
    scheme = he_core.get_scheme("vhe")
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)))
    spec = make_job(scheme, secret, tmp_path / "job")
    spec.state = "closed"
    with pytest.raises(jobs.JobError, match="closed"):
        KeyService(scheme, secret, spec, jobs.Journal(tmp_path / "job"))
    spec.state = "open"
    other, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)))
    with pytest.raises(jobs.JobError, match="not the job's key"):
        KeyService(scheme, other, spec, jobs.Journal(tmp_path / "job"))


def test_garbage_gets_an_error_frame_and_the_service_survives(served):
    scheme, secret, service, address = served
    conn = connect(address, timeout=5)
    try:
        for op, payload in [(REENCRYPT, b"\x00\x00\x00\x05{oops"), (REENCRYPT, b"short"), (99, b""),
                            (RELEASE, protocol.pack({"request_id": "not-hex", "count": 10}, b""))]:
            conn.send(op, payload)
            reply, body = conn.recv()
            assert reply == ERROR and body
        conn.send(HELLO)
        assert conn.recv()[0] == OK
    finally:
        conn.close()
    assert service.errors == 4


@pytest.fixture(scope="module")
def ckks_job_run(tmp_path_factory):
    """The sentiment network trained on CKKS through a job's service (30 reviews, aggregates of 10)."""
    from he_core.schemes.ckks import CkksParams
    from henn.data.text import Vocabulary
    from henn.tasks import sentiment as T
    from henn.tasks.sentiment import SentimentConfig, init_weights

    from ..tasks.sentiment.test_training import reference_errors

    tmp_path = tmp_path_factory.mktemp("ckks_job")
    params = CkksParams(poly_degree=2048, levels=5, first_bits=60, scale_bits=54, special_bits=60, floor_levels=1,
                        floor_bits=61, allow_insecure=True)
    scheme = he_core.get_scheme("ckks", params)
    config = SentimentConfig(hidden=4, lr=0.05, init_scale=0.5)
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, 4)), rng=he_core.SeededRandom(2))
    W01, w12 = init_weights(40, config, he_core.SeededRandom(3))
    model = T.build_model(scheme, W01, w12)
    weights = T.weights(model)
    terms = T.terms_for(30, 1, 4, vocab=40, monitor_every=10, whole_entries=T.whole_entries(scheme))
    spec = jobs.JobSpec(job_id=jobs.new_job_id(), key_id=secret.key_id, scheme="ckks", params_id=scheme.params_id,
                        terms=terms,
                        targets=T.learn_targets(scheme, secret, weights["W01"].ct, weights["w12"].ct, config, terms),
                        scale_log2=math.log2(weights["W01"].ct.scale), model={"task": "sentiment"})
    keys = tmp_path / "job"
    keys.mkdir(mode=0o700)
    jobs.write_spec(keys, spec)
    service = KeyService(scheme, secret, spec, jobs.Journal(keys))
    choose = np.random.default_rng(4)
    ids = [np.sort(choose.choice(40, size=choose.integers(1, 8), replace=False)).astype(np.int64) for _ in range(30)]
    labels = [int(y) for y in choose.integers(0, 2, 30)]
    with serving(service, f"unix:{tmp_path / 'sock' / 'k.sock'}"):
        with RemoteKeyHolder(f"unix:{tmp_path / 'sock' / 'k.sock'}", scheme, secret.key_id) as remote:
            result = T.train(model, remote, ids, np.array(labels), config, monitor_every=10)
            out = T.outgoing_weights(model, remote)
    service.journal.close()
    vocab = Vocabulary([f"w{i}" for i in range(40)])
    errors = reference_errors(vocab, ids, labels, config, (W01, w12))
    ref = T.train_reference(T.Prepared(vocab, ids, np.array(labels), ids, np.array(labels)), config,
                            activation=config.make_activation().value, init=(W01, w12))
    return {"scheme": scheme, "secret": secret, "service": service, "model": model, "out": out, "result": result,
            "errors": errors, "ref": ref}


def test_ckks_training_through_the_service_releases_refreshed_aggregates_and_weights(ckks_job_run):
    """The sentiment step on CKKS through a job's service: the dry run's targets cover every refresh and the
    aggregates' (no request refused); three aggregates reach the owner's journal and none the trainer; the
    outgoing weights are fresh re-encryptions in their own layouts, with public metadata only."""
    from henn.tasks import sentiment as T

    run = ckks_job_run
    scheme, service, out = run["scheme"], run["service"], run["out"]
    assert service.errors == 0 and service.journal.releases == 3 and len(service.journal.aggregates) == 3
    assert [a["count"] for a in service.journal.aggregates] == [10, 10, 10]
    assert [r["reviews"] for r in run["result"].history] == [10, 20, 30]
    assert all(r["mae"] is None for r in run["result"].history)  # the trainer sees none of them
    for name, ct in out.items():
        assert ct.meta.get("fresh") and scheme.layout_of(ct) == scheme.layout_of(T.weights(run["model"])[name].ct)
        assert ct.meta["vmax"] == T.VALUE_BOUND  # the declared bound, not the data's
    np.testing.assert_allclose(scheme.decrypt_exact_local(out["W01"], run["secret"]), run["ref"]["W01"],
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(scheme.decrypt_exact_local(out["w12"], run["secret"])[0], run["ref"]["w12"],
                               rtol=0, atol=1e-6)


def test_the_owners_journal_holds_per_sample_means_that_match_the_clear_ones(ckks_job_run):
    """The journal's ``value / (scale * count)`` (what ``henn job status`` prints per sample) is the reference's
    mean of ``(1 - 2y)(p - y)`` over each block of 10 reviews (flooded: within 1e-3)."""
    errors = ckks_job_run["errors"]
    aggregates = ckks_job_run["service"].journal.aggregates
    assert [a["scale"] for a in aggregates] == [0.1] * 3  # each term was scaled by 1/k before the sum
    logged = [a["value"] / (a["scale"] * a["count"]) for a in aggregates]
    np.testing.assert_allclose(logged, [np.mean(errors[10 * k: 10 * (k + 1)]) for k in range(3)], rtol=0, atol=1e-3)
