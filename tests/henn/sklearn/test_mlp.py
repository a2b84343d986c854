"""EncryptedMLPClassifier: the estimator contract and encrypted training on ckks."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import he_core  # noqa: E402
from henn.sklearn import EncryptedMLPClassifier  # noqa: E402
from henn.training.fit import TrainingDiverged  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::henn.training.fit.SinglePartyWarning"),
              pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")]


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


@pytest.mark.slow
@pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")
def test_digits_mlp_trains_encrypted_on_ckks_within_budget():
    """The issue's bar: load_digits, (32,), every weight encrypted, >= 0.90 and within 1 point of plain, <= 15 min.

    Run: python -m pytest -m slow -s tests/henn/sklearn/test_mlp.py -k digits
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
def test_breast_cancer_mlp_on_ckks_matches_the_plain_twin(cancer_numeric):
    """Full breast-cancer training (monitoring on): a partial last batch once added monitor terms
    at scales a realignment could not reach, and the release failed (he_core's alignment test).
    sklearn's own 0/1 labels, as when the test was written: with the classes in the other order
    the defaults diverge (below).

    Run: python -m pytest -m slow tests/henn/sklearn/test_mlp.py -k breast_cancer_mlp
    """
    Xtr, Xte, ytr, yte = cancer_numeric
    scores = {s: EncryptedMLPClassifier((32,), scheme=s, random_state=0).fit(Xtr, ytr).score(Xte, yte)
              for s in ("plain", "ckks")}
    assert abs(scores["ckks"] - scores["plain"]) <= 1.0 / len(yte) + 1e-12, scores


@pytest.mark.xfail(strict=True, raises=TrainingDiverged,
                   reason="known: the defaults (square activation, lr 0.3) diverge on breast cancer when the "
                          "classes come in the other order (seed 0); a clear error, not a wrong model")
def test_breast_cancer_defaults_train_whichever_order_the_classes_come_in(cancer):
    Xtr, Xte, ytr, yte = cancer  # "benign" / "malignant": benign is class 0, where sklearn's own labels make it 1
    assert EncryptedMLPClassifier((32,), scheme="plain", random_state=0).fit(Xtr, ytr).score(Xte, yte) > 0.9
