"""The key holder and the masked refresh: masks, releases, budgets, counters."""
from __future__ import annotations

import math

import numpy as np
import pytest

import he_core
from henn.keyholder import BudgetExhausted, KeyHolder, MaskedRefresh, RefreshTerms
from henn.tensor import EncTensor


def test_release_returns_the_values_and_counts(env):
    x = np.array([[1.5, -2.0, 0.0]])
    t = EncTensor.encrypt(env.scheme, x)
    kh = KeyHolder(env.scheme, env.secret)
    # exact schemes: nothing to flood; CKKS: the flooding the scheme reports for this release
    np.testing.assert_allclose(kh.release(t), x, atol=env.release_tol(t, kh), rtol=0)
    np.testing.assert_allclose(kh.release(t.ct), x, atol=env.release_tol(t, kh), rtol=0)
    assert kh.releases == 2 and kh.bytes_exchanged == 2 * t.ct.nbytes


def test_release_result_is_one_release_and_no_refresh(env):
    """The owner's results: one released decryption, nothing back to the trainer, the bytes of what it sent."""
    x = np.array([[0.75, -3.25, 0.0, 2.5]])
    t = EncTensor.encrypt(env.scheme, x) * 0.5 + EncTensor.encrypt(env.scheme, x)  # a computed ciphertext
    kh = KeyHolder(env.scheme, env.secret, rng=he_core.SeededRandom(4))
    released = kh.release_result(t)
    np.testing.assert_allclose(released, 1.5 * x, atol=env.release_tol(env.scheme.encrypt(1.5 * x), kh)
                               + env.tol(3, 4.0), rtol=0)
    assert kh.refresh_rounds == 0 and kh.releases == 1 and kh.entries_read == 0
    assert kh.bytes_exchanged == t.ct.nbytes


def test_release_result_floods_for_a_fresh_encryption_whatever_the_computation_left(env):
    """A ciphertext whose record is far above a fresh one's (many products) is released at a fresh one's
    flood: its plain release would keep fewer bits (CKKS), the re-encrypted one as many as a fresh value."""
    if not env.approximate:
        pytest.skip("exact schemes release without flooding: release_result is release")
    x = np.array([[0.5, -0.25, 0.125, 0.0]])
    ct = env.scheme.encrypt(x)
    for _ in range(3):
        ct = env.scheme.mul(ct, env.scheme.encrypt(np.ones_like(x)))
    kh = KeyHolder(env.scheme, env.secret, rng=he_core.SeededRandom(5))
    kh.release_result(ct)
    fresh_sigma = env.scheme.release_report(env.scheme.encrypt(x), kh.terms.flooding)["sigma_log2"]
    own_sigma = env.scheme.release_report(ct, kh.terms.flooding)["sigma_log2"]
    assert kh.reports[-1]["sigma_log2"] <= fresh_sigma + 0.5 < own_sigma


def test_release_result_refuses_past_the_release_budget_before_decrypting(env):
    kh = KeyHolder(env.scheme, env.secret, terms=RefreshTerms(releases=1))
    t = EncTensor.encrypt(env.scheme, np.array([[1.0]]))
    kh.release_result(t)
    seen = []
    kh.scheme = _Spy(env.scheme, seen)
    with pytest.raises(BudgetExhausted, match="released decryptions is spent"):
        kh.release_result(t)
    assert seen == [] and kh.releases == 1


class _Spy:
    """A scheme stand-in recording any key use (decryption or re-encryption) it is asked for."""

    def __init__(self, scheme, seen):
        self._scheme, self._seen = scheme, seen

    def supports(self, capability):
        return self._scheme.supports(capability)

    def reencrypt_masked(self, *args, **kwargs):
        self._seen.append("reencrypt")
        return self._scheme.reencrypt_masked(*args, **kwargs)

    def decrypt(self, *args, **kwargs):
        self._seen.append("decrypt")
        return self._scheme.decrypt(*args, **kwargs)


def test_refresh_keeps_values_and_the_key_holder_sees_only_masked_ones(env):
    x = np.array([[0.75, -3.25, 0.0, 2.5], [1.0, 1.0, -1.0, 0.125]])
    t = EncTensor.encrypt(env.scheme, x)
    kh = KeyHolder(env.scheme, env.secret, rng=he_core.SeededRandom(0))
    seen = []
    real_reencrypt = kh.reencrypt

    def spy(masked, layout=None):
        try:
            seen.append(env.scheme.decrypt_exact_local(masked, env.secret))
        except he_core.HEOverflowError:  # CKKS: the mask fills the modulus, no valid encoding of anything
            assert env.scheme.supports(he_core.Capability.APPROXIMATE)
            seen.append(None)
        return real_reencrypt(masked, layout)

    kh.reencrypt = spy
    fresh = kh.refresh(t)
    assert isinstance(fresh, EncTensor) and fresh.shape == t.shape
    # masks are integers in the encoding's units, so mask-then-unmask is exact; CKKS's
    # re-encryption adds one fresh encryption's error
    np.testing.assert_allclose(env.decrypt(fresh), env.decrypt(t), atol=env.tol(int(env.approximate), 4.0), rtol=0)
    assert kh.refresh_rounds == 1
    if env.scheme.name != "plain":  # the twin has nothing to hide and masks nothing
        assert seen[0] is None or np.all(np.abs(seen[0] - x) > env.tol(2, 4.0))
    assert isinstance(kh.refresh(t.ct), he_core.Ciphertext)


def test_masks_are_uniform_integers_of_the_planned_width(env):
    kh = KeyHolder(env.scheme, env.secret, rng=he_core.SeededRandom(3))
    ct = env.scheme.encrypt(np.zeros((50, 4)))
    plan = env.scheme.refresh_plan(ct)
    if env.scheme.name == "plain":  # the plaintext twin has nothing to hide: its plan reads no entries
        assert plan.n_read == 0
        return
    mask = kh.draw_mask(plan)
    values = np.array(mask.as_ints(), dtype=np.float64)
    # vhe reads the 200 entries; CKKS the N coefficients of the one ciphertext holding them
    assert values.size == plan.n_read == (env.scheme.params.poly_degree if env.approximate else 200)
    assert np.abs(values).max() <= 2.0 ** mask.width_bits
    assert values.min() < -(2.0 ** (mask.width_bits - 2)) and values.max() > 2.0 ** (mask.width_bits - 2)
    assert len(np.unique(values)) > 0.95 * plan.n_read  # draws from 2^27+ values: essentially no repeats
    assert kh.entries_read == plan.n_read


def test_hiding_report_is_honest_about_an_insecure_scheme():
    scheme = he_core.get_scheme("vhe")  # insecure by design, whatever the parameters
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(1))
    kh = KeyHolder(scheme, secret)
    kh.refresh(scheme.encrypt(np.full((1, 3), 2.5)))
    report = kh.hiding()
    # vhe's range leaves masks only ~10 bits above the values: far from 2^-30 over the job
    assert report["worst_mask_margin_bits"] < 30 and report["statistical_distance_log2"] > -30


def test_refresh_budget_is_enforced(env):
    t = EncTensor.encrypt(env.scheme, np.ones((1, 3)))
    per_refresh = max(256, env.scheme.refresh_plan(t.ct).n_read)  # CKKS reads all N coefficients
    kh = KeyHolder(env.scheme, env.secret, terms=RefreshTerms(refreshes=2, entries_per_refresh=per_refresh))
    kh.refresh(t)
    kh.refresh(t)
    with pytest.raises(BudgetExhausted, match="2 refreshes"):
        kh.refresh(t)


def test_release_budget_and_aggregate_rules(env):
    kh = KeyHolder(env.scheme, env.secret, terms=RefreshTerms(releases=2, min_aggregate=10))
    one = EncTensor.encrypt(env.scheme, np.array([[4.0]]))
    with pytest.raises(ValueError, match="at least 10"):
        kh.release_aggregate(one, 9)  # never a per-sample value
    with pytest.raises(ValueError, match="one value"):
        kh.release_aggregate(EncTensor.encrypt(env.scheme, np.ones((1, 2))), 10)
    assert kh.release_aggregate(one, 10) == pytest.approx(4.0, abs=env.release_tol(one, kh))
    kh.release(one)
    with pytest.raises(BudgetExhausted, match="released"):
        kh.release(one)


def test_keyholder_refuses_bad_input(env):
    with pytest.raises(TypeError, match="expected a SecretKey"):
        KeyHolder(env.scheme, "not a key")
    with pytest.raises(ValueError, match="refreshes"):
        RefreshTerms(refreshes=0)
    with pytest.raises(ValueError, match="statistical_bits"):
        RefreshTerms(statistical_bits=20)
    kh = KeyHolder(env.scheme, env.secret)
    with pytest.raises(TypeError, match="cannot release"):
        kh.release(np.ones(3))
    assert "SecretKey" not in repr(kh) and env.secret.key_id[:12] in repr(kh)
    assert not hasattr(kh, "decrypt")  # the only way out is a release


def test_wrong_key_is_refused(env):
    other = he_core.get_scheme(env.scheme.name, env.scheme.params)
    other.keygen(he_core.KeyRequirements(sizes=(1, 3)))
    t = EncTensor.encrypt(other, np.ones((1, 3)))
    with pytest.raises(he_core.MismatchError):
        KeyHolder(env.scheme, env.secret).release(t)


def test_refresh_restores_the_noise_budget(env):
    """After products the budget shrinks; a refresh brings it back to the fresh level (vhe)."""
    t = EncTensor.encrypt(env.scheme, np.array([[0.5, -1.0, 1.5]]))
    fresh_budget = t.budget()["remaining"]
    worn = (t * t) * t
    assert worn.budget()["remaining"] <= fresh_budget
    refreshed = env.keyholder.refresh(worn)
    assert refreshed.budget()["remaining"] >= fresh_budget - 1
    np.testing.assert_allclose(env.decrypt(refreshed), env.decrypt(worn), atol=env.tol(int(env.approximate), 4.0),
                               rtol=0)


def test_masked_refresh_needs_a_reencrypt():
    scheme = he_core.get_scheme("plain")
    scheme.keygen()
    with pytest.raises(NotImplementedError):
        MaskedRefresh(scheme, RefreshTerms()).refresh(scheme.encrypt([1.0]))


def test_levels_reserved_is_zero_without_a_modulus_chain(env):
    kh = KeyHolder(env.scheme, env.secret)
    ct = env.scheme.encrypt(np.ones((1, 3)))
    if env.scheme.supports(he_core.Capability.LEVELS):  # a chain: the levels below the mask's room
        moduli = env.scheme.refresh_plan(ct).moduli
        assert 0 < kh.levels_reserved(ct) < len(moduli)
    else:
        assert kh.levels_reserved(ct) == 0
    assert math.isfinite(kh.terms.flooding.sigma(1.0))


def test_a_key_holder_on_a_guessable_randomness_source_warns():
    """Its masks, floods and fresh encryptions' seeds all come from it (the seeded-ciphertext review's INFO)."""
    import warnings as _w

    import he_core
    from he_core import KeyRequirements, SecurityWarning, SeededRandom

    s = he_core.get_scheme("plain")
    secret, _ = s.keygen(KeyRequirements(sizes=(1,)))
    with _w.catch_warnings(record=True) as seen:
        _w.simplefilter("always")
        KeyHolder(s, secret)
    assert not [w for w in seen if issubclass(w.category, SecurityWarning)]
    with pytest.warns(SecurityWarning, match="not cryptographically secure"):
        KeyHolder(s, secret, rng=SeededRandom(1))
