"""The estimators' shared contract: the three fhe modes, pipelines, checkpoints, the one-party warning, ckks."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import he_core  # noqa: E402
from henn.sklearn import EncryptedLogisticRegression, EncryptedMLPClassifier  # noqa: E402
from henn.training.fit import SinglePartyWarning  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::henn.training.fit.SinglePartyWarning"),
              pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")]


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
    # vhe rounds each rescale to 2^-16 and the rounding follows the encryptions' randomness; since vhe forecasts
    # each product's noise from its operands' tracked bounds (72e142b), the refresh points follow it too (91 or 92
    # refreshes): 0 or 18 units apart over six runs, so 32 units; a run stopped after 2 epochs differs by > 1e-2
    np.testing.assert_allclose(resumed.decision_function(Xte[:10], fhe="execute"),
                               straight.decision_function(Xte[:10], fhe="execute"), atol=32 * 2.0 ** -16, rtol=0)
    two = est(2).fit(Xtr, ytr).decision_function(Xte[:10], fhe="execute")
    assert np.max(np.abs(two - straight.decision_function(Xte[:10], fhe="execute"))) > 1e-2
    with pytest.raises(ValueError, match="pass keyholder="):
        EncryptedMLPClassifier((4,), scheme="plain", checkpoint=str(path)).fit(Xtr, ytr)


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
