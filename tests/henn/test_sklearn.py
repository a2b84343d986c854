"""The scikit-learn estimators: the estimator contract, the three fhe modes, encrypted training."""
from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits  # noqa: E402
from sklearn.model_selection import cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import he_core  # noqa: E402
from henn.sklearn import EncryptedLogisticRegression, EncryptedMLPClassifier  # noqa: E402
from henn.training.fit import SinglePartyWarning, TrainingDiverged  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::henn.training.fit.SinglePartyWarning"),
              pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")]


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    y = np.where(y == 1, "benign", "malignant")  # any label values
    return train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)


def test_mlp_classifier_on_plain_follows_the_estimator_contract(cancer):
    Xtr, Xte, ytr, yte = cancer
    est = EncryptedMLPClassifier((8,), scheme="plain", epochs=10, random_state=0)
    assert est.get_params()["hidden_layer_sizes"] == (8,)
    assert clone(est).set_params(epochs=3).epochs == 3
    est.fit(Xtr, ytr)
    assert list(est.classes_) == ["benign", "malignant"] and est.n_features_in_ == 30
    assert est.score(Xte, yte) >= 0.9  # learned: the majority class alone scores 0.63
    proba = est.predict_proba(Xte)
    assert proba.shape == (len(Xte), 2) and np.allclose(proba.sum(axis=1), 1.0) and proba.min() >= 0
    assert set(est.predict(Xte)) <= set(est.classes_)
    assert len(est.history_.records) == 10


def test_fhe_modes_agree(cancer):
    """On vhe: "execute" runs encrypted; "simulate" rounds like the scheme; "disable" is the clear model."""
    Xtr, Xte, ytr, _ = cancer
    est = EncryptedMLPClassifier((4,), scheme="vhe", epochs=2, random_state=0).fit(Xtr, ytr)
    outs = {f: est.decision_function(Xte[:20], fhe=f) for f in ("disable", "simulate", "execute")}
    # vhe's 16-bit fixed point through ~6 roundings of values below 4: within 2^-10
    np.testing.assert_allclose(outs["simulate"], outs["execute"], atol=2.0 ** -10, rtol=0)
    np.testing.assert_allclose(outs["disable"], outs["execute"], atol=2.0 ** -10, rtol=0)
    with pytest.raises(ValueError, match="fhe must be one of"):
        est.predict(Xte, fhe="gpu")


def test_estimators_work_in_pipelines_and_cross_validation(cancer):
    Xtr, _, ytr, _ = cancer
    pipe = Pipeline([("scale", StandardScaler()), ("lr", EncryptedLogisticRegression(scheme="plain", random_state=0))])
    scores = cross_val_score(pipe, Xtr, ytr, cv=3)
    assert scores.shape == (3,) and scores.min() >= 0.88


def test_a_checkpointed_fit_resumes_where_it_stopped(cancer, tmp_path):
    """2 epochs, then a fresh estimator with 4 and the same checkpoint: as 4 in one go, under one key holder."""
    from henn.keyholder import RefreshTerms
    from henn.training.fit import in_process_keyholder

    Xtr, Xte, ytr, _ = cancer
    _, holder = in_process_keyholder("vhe", [1, 2, 4, 30], terms=RefreshTerms(min_aggregate=100),
                                     rng=he_core.SeededRandom(4))
    path = tmp_path / "mlp.ckpt"

    def est(epochs, checkpoint=None):
        return EncryptedMLPClassifier((4,), scheme="vhe", epochs=epochs, random_state=0, keyholder=holder,
                                      checkpoint=checkpoint)

    straight = est(4).fit(Xtr, ytr)
    est(2, path).fit(Xtr, ytr)
    resumed = est(4, path).fit(Xtr, ytr)
    assert [r["epoch"] for r in resumed.history_.records] == [0, 1, 2, 3]
    # vhe rounds each rescale to 2^-16 and the rounding follows the encryptions' randomness: a few units apart
    # (a run restarted from scratch, or stopped after 2 epochs, differs by more than 1e-2)
    np.testing.assert_allclose(resumed.decision_function(Xte[:10], fhe="execute"),
                               straight.decision_function(Xte[:10], fhe="execute"), atol=8 * 2.0 ** -16, rtol=0)
    two = est(2).fit(Xtr, ytr).decision_function(Xte[:10], fhe="execute")
    assert np.max(np.abs(two - straight.decision_function(Xte[:10], fhe="execute"))) > 1e-2
    with pytest.raises(ValueError, match="pass keyholder="):
        EncryptedMLPClassifier((4,), scheme="plain", checkpoint=str(path)).fit(Xtr, ytr)


def test_logistic_regression_multiclass_and_errors():
    X, y = load_digits(return_X_y=True)
    est = EncryptedLogisticRegression(scheme="plain", epochs=4, random_state=0).fit(X[:600], y[:600])
    assert est.classes_.size == 10 and est.score(X[600:900], y[600:900]) >= 0.8  # chance: 0.1
    with pytest.raises(ValueError, match="expected 64 features"):
        est.predict(X[:3, :10])
    with pytest.raises(ValueError, match="at least two classes"):
        EncryptedLogisticRegression(scheme="plain").fit(X[:5], np.zeros(5))
    with pytest.raises(ValueError, match="loss must be"):
        EncryptedMLPClassifier(scheme="plain", loss="hinge").fit(X[:50], y[:50])


def test_without_a_key_service_the_estimator_warns_it_is_one_party(cancer):
    Xtr, _, ytr, _ = cancer
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        EncryptedMLPClassifier((2,), scheme="plain", epochs=1, random_state=0).fit(Xtr[:40], ytr[:40])
    assert any(issubclass(w.category, SinglePartyWarning) for w in seen)


@pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")
def test_a_small_fit_on_ckks_releases_its_weights_and_answers_all_three_modes(cancer):
    """The whole path on 128-bit CKKS at a toy size: encrypted training, the owner's release, three fhe modes."""
    Xtr, Xte, ytr, _ = cancer
    est = EncryptedMLPClassifier((2,), scheme="ckks", epochs=1, batch_size=16, random_state=0, monitor=False)
    est.fit(Xtr[:32], ytr[:32])
    assert est.keyholder_.scheme.params.security_bits >= 128 and est.keyholder_.refresh_rounds > 0
    outs = {f: est.decision_function(Xte[:8], fhe=f) for f in ("disable", "simulate", "execute")}
    # simulate rounds to the release grid (3.4e-7 measured); execute adds its own releases' flooding
    # (3.1e-5 measured, outputs up to 17): bounds about ten times those
    np.testing.assert_allclose(outs["simulate"], outs["disable"], atol=5e-6)
    np.testing.assert_allclose(outs["execute"], outs["disable"], atol=3e-4)


@pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")
def test_logistic_regression_on_ckks_releases_its_monitoring_aggregate(cancer):
    """A polynomial sigmoid spends levels before the monitored sum: the aggregate must still have room to be masked."""
    Xtr, _, ytr, _ = cancer
    est = EncryptedLogisticRegression(scheme="ckks", epochs=1, random_state=0).fit(Xtr, ytr)  # the failing case: 455
    record = est.history_.records[0]
    assert record["releases"] == 1 and 0.0 <= record["loss"] <= 1.0  # the Brier score of all 455 rows


@pytest.mark.slow
@pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")
def test_digits_mlp_trains_encrypted_on_ckks_within_budget():
    """The issue's bar: load_digits, (32,), every weight encrypted, >= 0.90 and within 1 point of plain, <= 15 min.

    Run: python -m pytest -m slow -s tests/henn/test_sklearn.py -k digits
    """
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    results = {}
    for scheme in ("plain", "ckks"):
        start = time.perf_counter()
        est = EncryptedMLPClassifier((32,), scheme=scheme, random_state=0, progress=bool(os.environ.get("HENN_PROGRESS")))
        est.fit(Xtr, ytr)
        seconds = time.perf_counter() - start
        results[scheme] = {"seconds": seconds, "disable": est.score(Xte, yte),
                           "refreshes": est.keyholder_.refresh_rounds, "releases": est.keyholder_.releases}
        if scheme == "ckks":
            results[scheme]["execute"] = float((est.predict(Xte, fhe="execute") == yte).mean())
    print(results)
    assert results["ckks"]["disable"] >= 0.90
    assert abs(results["ckks"]["disable"] - results["plain"]["disable"]) <= 0.01
    assert results["ckks"]["seconds"] <= 15 * 60


@pytest.mark.slow
@pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")
def test_breast_cancer_mlp_on_ckks_matches_the_plain_twin(cancer):
    """Full breast-cancer training (monitoring on): a partial last batch once added monitor terms
    at scales a realignment could not reach, and the release failed (he_core's alignment test).

    Run: python -m pytest -m slow tests/henn/test_sklearn.py -k breast_cancer_mlp
    """
    Xtr, Xte, ytr, yte = cancer
    scores = {s: EncryptedMLPClassifier((32,), scheme=s, random_state=0).fit(Xtr, ytr).score(Xte, yte)
              for s in ("plain", "ckks")}
    assert abs(scores["ckks"] - scores["plain"]) <= 1.0 / len(yte) + 1e-12, scores


def test_logistic_regression_trains_by_bootstrapping_with_no_key_holder_round(cancer):
    """Two epochs on a trial ring (the first needs no bootstrap): the weights equal the plain twin's; the key holder
    only releases the two trained tensors at the end (no refresh at all)."""
    X_train, X_test, y_train, y_test = cancer
    kwargs = dict(epochs=2, batch_size=128, random_state=0)
    plain = EncryptedLogisticRegression(scheme="plain", **kwargs).fit(X_train, y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SinglePartyWarning)
        booted = EncryptedLogisticRegression(scheme="ckks", refresh="bootstrap", insecure_ring=1024,
                                             **kwargs).fit(X_train, y_train)
    assert booted.get_params()["refresh"] == "bootstrap"
    assert booted.history_.policy["bootstraps"] > 0
    assert all(r["refreshes"] == 0 and r["loss"] is None for r in booted.history_.records)
    assert booted.keyholder_.refresh_rounds == 0 and booted.keyholder_.releases == 2  # W and b, at the end
    for got, want in zip(booted.weights_, plain.weights_):
        assert np.max(np.abs(got - want)) < 1e-5
    assert np.array_equal(booted.predict(X_test), plain.predict(X_test))
    with pytest.raises(ValueError, match="refresh must be one of"):
        EncryptedLogisticRegression(scheme="plain", refresh="never", epochs=1).fit(X_train, y_train)


def test_a_bootstrapped_fit_past_its_declared_bound_is_refused_when_the_owner_reads_it(cancer):
    """lr 4 drives a weight to about 196 in one epoch (the twin), past the bound of 16 bootstrapping relies on."""
    X_train, _X_test, y_train, _y_test = cancer
    est = EncryptedLogisticRegression(scheme="ckks", refresh="bootstrap", insecure_ring=1024, epochs=1,
                                      batch_size=128, lr=4.0, weight_decay=0.0, random_state=0)
    with pytest.raises(TrainingDiverged, match="declared bound"):
        est.fit(X_train, y_train)


def _fixed_hessian_newton(Xs, y, steps, ridge, weight_decay, sigmoid):
    """The fixed-Hessian Newton iteration in numpy, in the original coordinates (bias as a last column)."""
    rows = np.hstack([Xs, np.ones((Xs.shape[0], 1))])
    hessian = rows.T @ rows / (4.0 * len(y)) + ridge * np.eye(rows.shape[1])
    w = np.zeros(rows.shape[1])
    for _ in range(steps):
        # weight decay acts on the whitened weights v = H^1/2 w: -wd v there is -wd w here
        w = (1.0 - weight_decay) * w - np.linalg.solve(hessian, rows.T @ (sigmoid(rows @ w) - y) / len(y))
    return w


@pytest.fixture(scope="module")
def cancer_numeric():
    """The benchmark's split (benchmarks/peers/lr_time_to_accuracy.py): sklearn's 0/1 labels, stratified, seed 0."""
    X, y = load_breast_cancer(return_X_y=True)
    return train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)


def test_the_newton_solver_takes_the_fixed_hessian_step_and_reaches_the_clear_model(cancer_numeric):
    """Whitened gradient descent is the fixed-Hessian Newton method (numpy, to 1e-9), and it reaches the clear
    model's accuracy to one sample of 114 in six full-batch steps, where SGD at its defaults does not in 12 epochs."""
    from sklearn.linear_model import LogisticRegression
    X_train, X_test, y_train, y_test = cancer_numeric
    n = len(y_train)
    newton = dict(batch_size=n, lr=1.0, weight_decay=0.01, solver="newton", ridge=0.01, random_state=0)
    est = EncryptedLogisticRegression(scheme="plain", epochs=3, **newton).fit(X_train, y_train)
    target = (np.searchsorted(est.classes_, y_train)).astype(float)
    Xs = est._standardised(X_train)
    want = _fixed_hessian_newton(Xs, target, 3, 0.01, 0.01, lambda z: est._sigmoid().value(z[:, None]).ravel())
    (_, w, b), = est.export_circuit().layers
    assert np.max(np.abs(np.append(w.ravel(), b) - want)) < 1e-9
    scaler = StandardScaler().fit(X_train)
    clear = LogisticRegression().fit(scaler.transform(X_train), y_train).score(scaler.transform(X_test), y_test)
    six = EncryptedLogisticRegression(scheme="plain", epochs=6, **newton).fit(X_train, y_train)
    assert six.score(X_test, y_test) >= clear - 1.0 / len(y_test) - 1e-12
    sgd = EncryptedLogisticRegression(scheme="plain", epochs=12, random_state=0).fit(X_train, y_train)
    assert sgd.score(X_test, y_test) < clear - 1.0 / len(y_test)
    # The exported circuit (whitening folded in) answers as the estimator does.
    (_, w6, b6), = six.export_circuit().layers
    z = six._standardised(X_test) @ w6 + b6
    assert np.array_equal(six.classes_[(six._sigmoid().value(z) > 0.5).astype(int).ravel()], six.predict(X_test))


def test_the_newton_solver_trains_by_bootstrapping_like_its_twin(cancer_numeric):
    """Six steps on a trial ring (the first ones fit its levels): one weight tensor (the bias is a whitened column),
    no refresh, one release."""
    X_train, X_test, y_train, _y_test = cancer_numeric
    kwargs = dict(epochs=6, batch_size=len(y_train), lr=1.0, weight_decay=0.01, solver="newton", random_state=0)
    plain = EncryptedLogisticRegression(scheme="plain", **kwargs).fit(X_train, y_train)
    booted = EncryptedLogisticRegression(scheme="ckks", refresh="bootstrap", insecure_ring=2048,
                                         **kwargs).fit(X_train, y_train)
    assert booted.history_.policy["bootstraps"] > 0
    assert booted.keyholder_.refresh_rounds == 0 and booted.keyholder_.releases == 1
    assert np.max(np.abs(booted.weights_[0] - plain.weights_[0])) < 1e-5
    assert np.array_equal(booted.predict(X_test), plain.predict(X_test))


def test_the_solver_and_ridge_are_checked(cancer):
    X_train, _X_test, y_train, _y_test = cancer
    with pytest.raises(ValueError, match="solver must be one of"):
        EncryptedLogisticRegression(scheme="plain", solver="lbfgs", epochs=1).fit(X_train, y_train)
    for ridge in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="ridge must be a positive number"):
            EncryptedLogisticRegression(scheme="plain", solver="newton", ridge=ridge, epochs=1).fit(X_train, y_train)
