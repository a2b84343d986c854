"""Trained models from scikit-learn, torch and .npz files, as circuits: the accuracy change is reported."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer, load_wine  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from henn.deploy import DeployError, InferenceClient, InferenceServer, ServerBundle  # noqa: E402
from henn.importers import fit_activation, from_npz, from_sklearn, from_torch  # noqa: E402


def split(loader):
    X, y = loader(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    sc = StandardScaler().fit(Xtr)
    return sc.transform(Xtr), sc.transform(Xte), ytr, yte


@pytest.mark.parametrize("loader", [load_breast_cancer, load_wine])
def test_logistic_regression_imports_exactly(loader):
    Xtr, Xte, ytr, yte = split(loader)
    model = LogisticRegression(max_iter=2000).fit(Xtr, ytr)
    circuit, report = from_sklearn(model, Xtr, ytr)
    np.testing.assert_allclose(circuit.evaluate(Xte).reshape(len(Xte), -1),
                               model.decision_function(Xte).reshape(len(Xte), -1), atol=1e-9)
    assert report.agreement == 1.0 and report.circuit_accuracy == report.original_accuracy


def test_mlp_activations_are_refitted_and_the_change_reported():
    Xtr, Xte, ytr, yte = split(load_breast_cancer)
    model = MLPClassifier((16,), activation="tanh", max_iter=500, random_state=0).fit(Xtr, ytr)
    circuit, report = from_sklearn(model, Xtr, ytr)
    assert [k for k, *_ in circuit.layers] == ["linear", "poly", "linear"]
    act = report.activations[0]
    assert act["activation"] == "tanh" and act["interval"] > 1 and act["max_error"] > 0
    assert report.agreement >= 0.97 and report.original_accuracy - report.circuit_accuracy <= 0.02
    out = circuit.evaluate(Xte)
    assert ((out[:, 0] > 0).astype(int) == model.predict(Xte)).mean() >= 0.97
    # and it deploys: encrypted answers equal the circuit's
    bundle = ServerBundle.create(circuit, "vhe")
    server, client = InferenceServer(bundle, allow_insecure=True), InferenceClient(bundle.client_info())
    server.register(client.public)
    answers = np.vstack([client.decrypt(server.answer(q.ciphertext, q.count), q.rows) for q in client.encrypt(Xte)])
    np.testing.assert_allclose(answers, out, atol=5e-3)  # vhe 16-bit fixed point through a quartic: 1.2e-3 measured


def test_the_fit_follows_the_data():
    z = np.concatenate([np.random.default_rng(0).normal(0, 1, 5000), [40.0]])  # one outlier sets the range
    act = fit_activation("relu", z, 4)
    core = np.linspace(-2, 2, 101)
    assert np.abs(act.value(core) - np.maximum(core, 0)).max() < 0.6 < act.max_error
    with pytest.raises(DeployError, match="not one of"):
        fit_activation("gelu", z)


def test_npz_and_errors(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "m.npz"
    np.savez(path, W0=rng.normal(size=(3, 4)), b0=rng.normal(size=4), W1=rng.normal(size=(4, 2)), b1=np.zeros(2),
             activation=np.array("tanh"))
    X = rng.normal(size=(50, 3))
    circuit = from_npz(path, X)
    assert circuit.n_features == 3 and circuit.n_outputs == 2
    with pytest.raises(DeployError, match="needs data X"):
        from_npz(path)
    np.savez(tmp_path / "bad.npz", W0=np.ones((2, 2)))
    with pytest.raises(DeployError, match="W0 without b0"):
        from_npz(tmp_path / "bad.npz")
    with pytest.raises(DeployError, match="cannot import a SVC"):
        from_sklearn(type("SVC", (), {})(), X)


def test_torch_sequential():
    torch = pytest.importorskip("torch")
    Xtr, Xte, ytr, yte = split(load_wine)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(13, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    opt = torch.optim.Adam(net.parameters(), 0.05)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.tensor(Xtr, dtype=torch.float32)), torch.tensor(ytr)).backward()
        opt.step()
    circuit, report = from_torch(net, Xtr, ytr)
    assert report.agreement >= 0.95
