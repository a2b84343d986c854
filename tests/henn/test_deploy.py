"""Inference on encrypted data: bundle files, client keys, a server that cannot read, sanitised answers."""
from __future__ import annotations

import gc
import inspect
import warnings

import numpy as np
import pytest

import he_core
from henn import activations
from henn.deploy import Circuit, DeployError, InferenceClient, InferenceServer, ServerBundle, bytes_of

pytestmark = pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")


def _pair(queries):
    """The one query of a batch as (ciphertext, count) (the count the client sends, which hides its rows)."""
    (query,) = queries
    return query.ciphertext, query.count


@pytest.fixture(scope="module")
def circuit():
    """A breast-cancer-sized MLP (30 -> 16 -> 2, square activation) with its standardisation."""
    rng = np.random.default_rng(0)
    return Circuit([("linear", rng.normal(0, 0.3, (30, 16)), rng.normal(0, 0.1, 16)), ("poly", activations.square()),
                    ("linear", rng.normal(0, 0.3, (16, 2)), rng.normal(0, 0.1, 2))],
                   shift=rng.normal(0, 1, 30), scale=rng.uniform(1, 3, 30), clip=2.0)


@pytest.fixture(scope="module")
def queries():
    return np.random.default_rng(1).normal(0, 2, (114, 30))


def roles(circuit, scheme, layout="columns"):
    bundle = ServerBundle.from_bytes(ServerBundle.create(circuit, scheme, layout=layout).to_bytes())
    server = InferenceServer(bundle, allow_insecure=scheme == "vhe")
    client = InferenceClient(bundle.client_info())
    server.register(client.public_bytes())
    return bundle, server, client


def ask(server, client, X):
    return np.vstack([client.decrypt(server.answer(q.ciphertext, q.count), q.rows) for q in client.encrypt(X)])


SCHEMES = ["vhe", pytest.param("ckks", marks=pytest.mark.skipif("ckks" not in he_core.available_schemes(),
                                                                  reason="the ckks scheme is not built"))]


@pytest.mark.parametrize("layout", ["columns", "rows"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_encrypted_answers_match_the_clear_model(circuit, queries, scheme, layout):
    if (scheme, layout) == ("vhe", "rows"):  # its matvec needs a key the key holder makes for each matrix
        with pytest.raises(DeployError, match="cannot run the rows layout with a client's keys alone"):
            ServerBundle.create(circuit, scheme, layout=layout)
        return
    bundle, server, client = roles(circuit, scheme, layout)
    assert bundle.layout == layout
    clear = circuit.evaluate(queries)
    out = ask(server, client, queries)
    # vhe: 16-bit fixed point; ckks: the answers' flood, sized from the L2 norm of the noise of outputs
    # up to ~20 here: 4.1e-3 (columns) and 4.8e-3 (rows) measured on the floored set at scale 2^58
    # (at the protocol's 2^54 the flood over every coefficient left 0.07)
    np.testing.assert_allclose(out, clear, atol=1e-2, rtol=0)
    assert (out.argmax(1) == clear.argmax(1)).mean() >= 113 / 114


@pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")
def test_ckks_client_keys_hold_only_what_the_circuit_needs(circuit):
    bundle, server, client = roles(circuit, "ckks")
    assert bundle.params.security_bits >= 128
    assert client.public.data["galois"] == {}  # no rotation key: the batch layout needs none
    assert bytes_of(client.public) < 898e6 / 10  # the bar: 10x below all-rotation keys
    query, count = _pair(client.encrypt(np.zeros((3, 30)), hide_count=False))
    answer = server.answer(query, count)
    assert answer.shape == (2, bundle.batch)
    # slots past the 3 asked hold no answer to a zero query (flooded zeros only)
    raw = client.scheme.decrypt_exact_local(answer, client._secret)
    assert np.abs(raw[:, 3:]).max() < 1e-2 < np.abs(circuit.evaluate(np.zeros((1, 30)))).max()


def secret_keys_held_by(root) -> int:
    """Secret keys reachable from ``root`` through instance data (not modules or functions, which reach every
    cache of the process, the tests' own keys included)."""
    seen, stack, found = set(), [root], 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, np.ndarray, type)) \
                or inspect.ismodule(obj) or inspect.isroutine(obj):
            continue
        seen.add(id(obj))
        found += isinstance(obj, he_core.SecretKey)
        stack.extend(gc.get_referents(obj))
    return found


def test_the_server_holds_no_secret_key(circuit):
    _, server, client = roles(circuit, "vhe")
    assert secret_keys_held_by(server) == 0
    server.leak = {"kept": [client._secret]}  # the check finds one where there is one
    assert secret_keys_held_by(server) == 1


def test_budget_and_bad_queries_are_refused(circuit):
    bundle = ServerBundle.create(circuit, "vhe", queries_per_key=2)
    server = InferenceServer(bundle, allow_insecure=True)
    client = InferenceClient(bundle.client_info())
    q, n = _pair(client.encrypt(np.zeros((2, 30))))
    with pytest.raises(DeployError, match="registered key"):
        server.answer(q, n)
    server.register(client.public)
    with pytest.raises(DeployError, match="count must lie"):
        server.answer(q, 0)
    server.answer(q, n), server.answer(q, n)
    with pytest.raises(DeployError, match="batches the answers' flooding is sized for are spent"):
        server.answer(q, n)
    other = InferenceClient({**bundle.client_info(), "batch": bundle.batch // 2})
    with pytest.raises(DeployError, match="do not cover the circuit.s columns batches"):
        server.register(other.public)
    with pytest.raises(DeployError, match=r"expected finite \(n, 30\)"):
        client.encrypt(np.zeros((2, 29)))


def test_bundles_are_checked_when_read(circuit):
    data = bytearray(ServerBundle.create(circuit, "plain").to_bytes())
    data[-40] ^= 1
    with pytest.raises(he_core.FormatError):
        ServerBundle.from_bytes(bytes(data))
    with pytest.raises(DeployError, match="takes 3 inputs"):
        Circuit([("linear", np.ones((2, 4)), np.ones(4)), ("linear", np.ones((3, 1)), np.ones(1))])
    with pytest.raises(DeployError, match="scale must be positive"):
        Circuit([("linear", np.ones((2, 1)), np.ones(1))], scale=np.array([1.0, 0.0]))


def test_a_trained_estimator_deploys(recwarn):
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_breast_cancer
    from henn.sklearn import EncryptedMLPClassifier
    warnings.simplefilter("ignore")
    X, y = load_breast_cancer(return_X_y=True)
    est = EncryptedMLPClassifier((8,), scheme="plain", epochs=4, random_state=0).fit(X[:400], y[:400])
    circuit = est.export_circuit()
    np.testing.assert_allclose(circuit.evaluate(X[400:]), est.decision_function(X[400:]), atol=1e-9)
    _, server, client = roles(circuit, "vhe")
    assert (ask(server, client, X[400:]).argmax(1) == est.predict(X[400:])).mean() >= 0.99


@pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")
def test_a_rows_query_costs_one_small_ciphertext_and_keys_for_its_width_only(circuit, queries):
    """One query is one (1, 32) row; the keys hold the rotations of one 32-wide matvec and nothing else."""
    bundle, server, client = roles(circuit, "ckks", "rows")
    assert (bundle.row_width, bundle.batch) == (32, client.scheme.natural_size // 32)
    assert bundle.params.security_bits >= 128
    # one 32-wide baby-step / giant-step matvec: the start shift, 7 baby and 7 giant steps
    assert len(client.public.data["galois"]) == 15
    (query,) = client.encrypt(queries[:1])
    assert query.ciphertext.shape == (1, 32) and query.count == 1
    answer = server.answer(query.ciphertext, query.count)
    assert answer.shape == (1, 2)
    np.testing.assert_allclose(client.decrypt(answer, 1), circuit.evaluate(queries[:1]), atol=1e-2, rtol=0)
    # the columns layout pays a whole batch for the same query
    columns, _, other = roles(circuit, "ckks", "columns")
    assert bytes_of(query.ciphertext) * 8 < bytes_of(other.encrypt(queries[:1])[0].ciphertext)


@pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")
def test_rows_queries_hide_their_count_and_reject_a_wrong_shape(circuit, queries):
    bundle, server, client = roles(circuit, "ckks", "rows")
    (hidden,) = client.encrypt(queries[:3], hide_count=True)
    assert hidden.ciphertext.shape == (bundle.batch, 32) and hidden.count == bundle.batch
    out = client.decrypt(server.answer(hidden.ciphertext, hidden.count), hidden.rows)
    np.testing.assert_allclose(out, circuit.evaluate(queries[:3]), atol=1e-2, rtol=0)
    (query,) = client.encrypt(queries[:3])
    with pytest.raises(DeployError, match=r"expected a \(2, 32\) query"):
        server.answer(query.ciphertext, 2)  # the count must be the rows the query declares


@pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")
def test_a_circuit_whose_flood_drowns_its_answers_is_refused_at_export():
    """An imported tanh MLP (its quartic refitted on about +-25) needs a flood its scale cannot hold: the owner is
    told when making the bundle, not a client at decryption; henn's own square-activation MLP passes the same check."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler
    from henn.importers import from_sklearn

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = MLPClassifier((8,), activation="tanh", max_iter=2000, random_state=0).fit(X, y)
    circuit, _ = from_sklearn(model, X, y)
    for layout in ("columns", "rows"):
        with pytest.raises(DeployError, match="asks for more flooding than its scale holds"):
            ServerBundle.create(circuit, "ckks", layout=layout)


@pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")
def test_a_single_output_rows_bundle_answers_at_the_last_level_of_the_smaller_ring():
    """A logistic regression (30 -> 1) never refreshes, so its answer may live in q_0 alone: N = 8192 at 128-bit
    security (no refresh floor), within 2^-5 of the clear model."""
    rng = np.random.default_rng(3)
    circuit = Circuit([("linear", rng.normal(0, 0.5, (30, 1)), rng.normal(0, 0.1, 1))], clip=3.0)
    bundle = ServerBundle.create(circuit, "ckks", layout="rows")
    assert bundle.params.poly_degree == 8192 and bundle.params.security_bits >= 128
    assert bundle.trial_error is not None and bundle.trial_error <= 2.0**-5
    bundle = ServerBundle.from_bytes(bundle.to_bytes())
    server, client = InferenceServer(bundle), InferenceClient(bundle.client_info())
    server.register(client.public_bytes())
    X = np.random.default_rng(4).normal(0, 2, (8, 30))
    np.testing.assert_allclose(ask(server, client, X), circuit.evaluate(X), atol=2.0**-5, rtol=0)


CKKS = pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")


@pytest.mark.parametrize("scheme, layout, layer, part", [
    *[pytest.param(scheme, "columns", layer, part, marks=CKKS if scheme == "ckks" else ())
      for scheme in ("vhe", "ckks") for layer, part in ((0, 1), (0, 2), (2, 1))],
    pytest.param("ckks", "rows", 0, 1, marks=CKKS),  # one case: the rows layout's rotation keys take seconds
])
def test_weights_too_large_for_the_parameters_are_refused_naming_the_layer(scheme, layout, layer, part):
    """Weights (or a bias) of 1e12 fit no parameter set: a DeployError names the layer and what to do, where the
    scheme alone would raise an EncodingError that names a value but not the layer it came from."""
    rng = np.random.default_rng(5)
    layers = [["linear", rng.normal(size=(4, 3)), rng.normal(size=3)], ["poly", activations.square()],
              ["linear", rng.normal(size=(3, 2)), rng.normal(size=2)]]
    layers[layer][part] = layers[layer][part] * 1e12
    circuit = Circuit([tuple(entry) for entry in layers], clip=1.0)
    with pytest.raises(DeployError, match=rf"layer {layer}'s weights and bias \(linear .*\) are too large for its "
                                          r"parameters \(.*\); refit the model with smaller weights"):
        ServerBundle.create(circuit, scheme, layout=layout)
