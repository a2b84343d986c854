"""The answer ledger: one count per bundle across the processes that answer for it (serve, predict --cluster)."""
from __future__ import annotations

import json
import multiprocessing

import numpy as np
import pytest

import he_core
from henn import serving
from henn.deploy import Circuit, DeployError, InferenceClient, InferenceServer, ServerBundle
from henn.serving import QUERY, AnswerLedger

pytestmark = pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")


def _reserve_many(path: str, times: int) -> None:
    ledger = AnswerLedger(path)
    for _ in range(times):
        ledger.reserve(1, 10_000)


def test_concurrent_reservations_from_processes_add_up(tmp_path):
    state = tmp_path / "model.bundle.answered"
    serving.write_answer_count(state, 7)
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_reserve_many, args=(str(state), 40)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * 4
    assert AnswerLedger(state).count() == 7 + 4 * 40  # an unlocked read-modify-write loses some of these


def test_a_reservation_past_the_budget_reserves_nothing(tmp_path):
    ledger = AnswerLedger(tmp_path / "b.answered")
    assert ledger.count() == 0 and ledger.reserve(3, 4) == 0
    with pytest.raises(DeployError, match="2 more batches would pass the 4"):
        ledger.reserve(2, 4)
    assert ledger.count() == 3
    assert ledger.reserve(1, 4) == 3 and ledger.count() == 4
    with pytest.raises(DeployError, match="expected a count"):
        ledger.reserve(-1, 4)


def test_a_damaged_ledger_is_an_error_not_a_reset(tmp_path):
    state = tmp_path / "b.answered"
    state.write_text("{not json")
    with pytest.raises(DeployError, match="must not be reset silently"):
        AnswerLedger(state).reserve(1, 10)
    assert state.read_text() == "{not json"


def test_serve_reserves_each_query_before_answering_it(tmp_path):
    rng = np.random.default_rng(1)
    bundle = ServerBundle.create(Circuit([("linear", rng.normal(0, 0.3, (3, 2)), rng.normal(0, 0.1, 2))], clip=2.0),
                                 "vhe", queries_per_key=2)
    server = InferenceServer(bundle, allow_insecure=True)
    client = InferenceClient(bundle.client_info())
    server.register(client.public)
    ledger = AnswerLedger(tmp_path / "b.answered")
    [query] = client.encrypt(np.ones((2, 3)))
    payload = serving._COUNT.pack(query.count) + he_core.serialization.dumps(query.ciphertext)
    reserving = serving.Reserving(server, ledger)  # what serve's sessions answer with when it has a state file
    answer = serving._handle(reserving, QUERY, payload, b"")
    assert he_core.serialization.loads(answer, expect_kind="ciphertext", allow_insecure=True).key_id == \
        client.public.key_id
    assert json.loads(ledger.state.read_text()) == {"answered": 1}
    serving.write_answer_count(ledger.state, 2)  # another process answered the last one meanwhile
    with pytest.raises(DeployError, match="would pass the 2"):
        serving._handle(reserving, QUERY, payload, b"")
    assert server.answered() == 1  # refused before evaluating
