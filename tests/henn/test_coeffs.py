"""The coeffs deploy layout (henn.coeffs): sklearn models answered exactly, public keys only, refusals by name."""
from __future__ import annotations

import numpy as np
import pytest

import he_core
from henn import activations
from henn.bundle import MAX_ANSWER_ERROR
from henn.deploy import Circuit, DeployError, InferenceClient, InferenceServer, ServerBundle, bytes_of

from .test_deploy import secret_keys_held_by

pytestmark = pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")


def fitted(name: str):
    """scikit-learn's logistic regression on a standardised split, its henn circuit and the test rows."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_breast_cancer, load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from henn.importers import from_sklearn
    X, y = (load_breast_cancer if name == "breast_cancer" else load_wine)(return_X_y=True)
    Xtr, Xte, ytr, _ = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    scaler = StandardScaler().fit(Xtr)
    Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
    model = LogisticRegression(max_iter=2000).fit(Xtr, ytr)
    circuit, _ = from_sklearn(model, Xtr, ytr)
    return model, circuit, Xte


def roles(circuit):
    created = ServerBundle.create(circuit, "ckks", layout="coeffs")
    assert created.trial_error <= MAX_ANSWER_ERROR / 4  # what the owner's export checked
    bundle = ServerBundle.from_bytes(created.to_bytes())
    server, client = InferenceServer(bundle), InferenceClient(bundle.client_info(), rng=he_core.SeededRandom(9))
    server.register(client.public_bytes())
    return bundle, server, client


def ask(server, client, X):
    return np.vstack([client.decrypt(server.answer(q.ciphertext, q.count), q.rows) for q in client.encrypt(X)])


@pytest.mark.parametrize("name", ["breast_cancer", "wine"])
def test_predictions_are_the_clear_models_and_answers_within_the_bound(name):
    model, circuit, Xte = fitted(name)
    bundle, server, client = roles(circuit)
    assert bundle.layout == "coeffs" and bundle.params.poly_degree == 4096 and bundle.params.security_bits >= 128
    out = ask(server, client, Xte)
    logits = model.decision_function(Xte).reshape(len(Xte), -1)
    assert np.max(np.abs(out - logits)) <= MAX_ANSWER_ERROR
    labels = (out[:, 0] > 0).astype(int) if out.shape[1] == 1 else out.argmax(1)
    assert np.array_equal(model.classes_[labels], model.predict(Xte))
    assert server.answered() == -(-len(Xte) // bundle.batch)  # a batch per ciphertext, not per query


def test_the_client_holds_a_public_key_only_and_the_server_no_secret_key():
    _, circuit, Xte = fitted("breast_cancer")
    _, server, client = roles(circuit)
    assert "relin" not in client.public.data and client.public.data["galois"] == {}
    assert bytes_of(client.public) < 200_000  # b and a over the three primes of N = 4096
    server.answer(*_one(client, Xte[:1]))
    assert secret_keys_held_by(server) == 0
    server.leak = {"kept": [client._secret]}  # the check finds one where there is one
    assert secret_keys_held_by(server) == 1


def _one(client, X):
    (query,) = client.encrypt(X)
    return query.ciphertext, query.count


def test_malformed_queries_are_refused_by_name():
    _, circuit, Xte = fitted("wine")
    bundle, server, client = roles(circuit)
    query, count = _one(client, Xte[:3])
    with pytest.raises(DeployError, match=r"a coeffs batch of 2 queries has 2 rows, got \(3, 39\)"):
        server.answer(query, 2)
    with pytest.raises(DeployError, match="count must lie"):
        server.answer(query, bundle.batch + 1)
    slots = client.scheme.encrypt(np.zeros((3, 39)), client._secret)
    table = client.scheme.encrypt(np.zeros((3, 39)), client._secret, layout="table")
    lowered = query.replace(data=np.ascontiguousarray(query.data[:, :, :1]), meta={**query.meta, "level": 0})
    for bad in (slots, table, lowered, query.replace(scale=query.scale / 2)):
        with pytest.raises(DeployError, match="not a fresh coefficient-packed query"):
            server.answer(bad, count)
    other = InferenceClient({**bundle.client_info(), "features": 12}, rng=he_core.SeededRandom(3))
    server.register(other.public)
    with pytest.raises(DeployError, match="not a fresh coefficient-packed query of 13 features"):
        server.answer(*_one(other, Xte[:3, :12]))
    assert server.answered() == 0  # nothing refused was counted
    with pytest.raises(DeployError, match="beyond the server's input bound 16"):
        client.encrypt(np.full((1, 13), 16.5))  # unclipped: the server sizes the weights' scale for 16


def test_a_circuit_of_more_than_one_layer_is_refused_for_the_layout():
    rng = np.random.default_rng(0)
    deep = Circuit([("linear", rng.normal(0, 0.3, (30, 4)), np.zeros(4)), ("poly", activations.square()),
                    ("linear", rng.normal(0, 0.3, (4, 1)), np.zeros(1))], clip=2.0)
    with pytest.raises(DeployError, match="single linear layer"):
        ServerBundle.create(deep, "ckks", layout="coeffs")
    with pytest.raises(DeployError, match="single linear layer"):
        ServerBundle(deep, "ckks", None, 1, layout="coeffs")


def test_a_scheme_without_coefficient_answers_is_refused():
    circuit = Circuit([("linear", np.ones((3, 1)), np.zeros(1))], clip=1.0)
    with pytest.raises(DeployError, match="cannot deploy the coeffs layout on vhe"):
        ServerBundle.create(circuit, "vhe", layout="coeffs")
