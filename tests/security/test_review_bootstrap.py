"""Review of refresh="bootstrap" (commit 57d67bc): what reaches the key holder, what a release shows,
the relaxed encryption range, the row-sum bound and a bootstrap's vouched value bound.

Written as the attacker would run it: a passing test is a claim that holds; a test marked
``xfail(strict=True)`` is an attack that works on the current code (its reason says what happens
and the fix). All on small insecure rings (N = 1024). Run:
``python -m pytest -q tests/security/test_review_bootstrap.py``.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import he_core
from he_core import HEOverflowError, KeyRequirements, SeededRandom
from he_core.flooding import Flooding
from he_core.schemes.ckks import CkksParams, CkksScheme
from henn.keyholder import KeyHolder, RefreshTerms

from .attacks import SpyKeyHolder
from henn.losses import MSELoss
from henn.tasks import xor
from henn.tensor import EncTensor
from henn.training.bootstrap import BootstrapRefresh, bootstrap_keys
from henn.training.fit import fit, predict
from henn.training.predict import release_outputs
from henn.training.refresh import RefreshPolicy

pytestmark = [pytest.mark.filterwarnings("ignore::he_core.SecurityWarning"),
              pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")]
RING = 1024
SLOTS = 32  # XOR's bootstraps: its four parameters side by side (xor.bootstrap_slots_for)
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


_BOOTED: dict[int, tuple] = {}


def _booted(slots: int) -> tuple:
    """(scheme, secret) of the bootstrappable XOR set at N = 1024 for ``slots``, made once per slot count."""
    if slots not in _BOOTED:
        cls = he_core.scheme_class("ckks")
        scheme = he_core.get_scheme("ckks", cls.params_for_bootstrapping(xor.STEP_DEPTH, slots=slots, ring=RING))
        _BOOTED[slots] = scheme, bootstrap_keys(scheme, KeyRequirements(sizes=(1, 4)), slots,
                                                rng=SeededRandom(1)).secret
    return _BOOTED[slots]


@pytest.fixture(scope="module")
def booted():
    """(scheme, secret): the bootstrappable XOR set at N = 1024, its keys and bootstrapping's for 32 slots."""
    assert xor.bootstrap_slots_for(xor.XorConfig()) == SLOTS
    return _booted(SLOTS)


def _protocol_like() -> tuple[CkksScheme, object]:
    """for_protocol's prime shape (60-bit q_0, one 61-bit floor prime, 54-bit scaling primes) at N = 1024."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        s = CkksScheme(CkksParams(poly_degree=RING, levels=3, first_bits=60, scale_bits=54, special_bits=60,
                                  floor_levels=1, floor_bits=61, allow_insecure=True))
    secret, _ = s.keygen(KeyRequirements(sizes=(512,), multiply=True), rng=SeededRandom(2))
    return s, secret


@pytest.fixture(scope="module")
def protocol_like():
    return _protocol_like()


def _error(s, ct, x, secret) -> np.ndarray:
    """phase(ct) - phase(fresh encryption of x at ct's scale): ct's error vector in coefficient units (the
    reference's own error, a few units, is negligible next to a bootstrap's)."""
    ref = s.encrypt(x, scale=ct.scale, rng=SeededRandom(9))
    sk = s._s_full(secret)
    return s._phases(ct, sk)[0] - s._phases(ref, sk)[0]


# ---------------------------------------------------------------- 1. what leaves the trainer
def test_bootstrap_training_sends_nothing_and_the_release_is_one_decryption(booted):
    scheme, secret = booted
    kh = SpyKeyHolder(scheme, secret, terms=RefreshTerms(min_aggregate=4), rng=SeededRandom(5))
    model = xor.build_xor(scheme, xor.XorConfig(seed=4))
    history = fit(model, xor.X, xor.Y, keyholder=kh, lr=4.0, epochs=2, batch_size=4, loss=MSELoss(), shuffle=False,
                  value_bound=16.0, refresh="bootstrap")
    assert history.policy["bootstraps"] > 0
    assert kh.calls == {} and kh.refresh_rounds == 0 and kh.releases == 0 and kh.bytes_exchanged == 0
    assert all(r["loss"] is None for r in history.records) and history.aggregates == []
    # The owner's release of the predictions: one flooded decryption, no refresh (the key holder re-encrypts
    # the outputs itself; nothing goes back to the trainer), and the bytes of the predictions' one ciphertext.
    out = predict(model, xor.X, keyholder=kh, policy=RefreshPolicy(BootstrapRefresh(scheme, SLOTS), value_bound=16.0))
    before = kh.bytes_exchanged
    xor.evaluate(model, kh, 16.0, RefreshPolicy(BootstrapRefresh(scheme, SLOTS), value_bound=16.0))
    assert kh.calls == {"release": 1} and kh.refresh_rounds == 0 and kh.releases == 1
    assert kh.bytes_exchanged - before == out.ct.nbytes


def test_the_final_release_is_flooded_for_the_fresh_reencryption_not_the_bootstrap_record(booted):
    """release_outputs re-encrypts first: the decrypted ciphertext is the key holder's own fresh encryption, so
    its flood is sized from a fresh noise bound, never from a bootstrap's restarted record."""
    scheme, secret = booted
    kh = KeyHolder(scheme, secret, terms=RefreshTerms(min_aggregate=4), rng=SeededRandom(6))
    x = np.random.default_rng(3).uniform(-1, 1, (4, 1))
    boot = scheme.bootstrap(scheme.encrypt(x), slots=SLOTS, clean=True, value_bound=16.0)
    released = release_outputs(kh, EncTensor(scheme, boot))
    report = kh.reports[-1]
    fresh = scheme.release_report(scheme.encrypt(np.zeros((4, 1))), kh.terms.flooding)["noise_bound_log2"]
    assert report["noise_bound_log2"] <= fresh + 1.0
    assert report["sigma_log2"] == pytest.approx(math.log2(kh.terms.flooding.sigma(2.0 ** report["noise_bound_log2"])))
    assert np.max(np.abs(released - x)) < 2.0**-20


_INFO_BELOW_GRID = ("INFO: with one level per transform (16 slots) the released value carries the last bootstrap's "
                    "error above the release's rounding grid (2^-23.7..2^-25.1 against sigma 2^-26.9 at N = 1024): the "
                    "owner reads ~2-3 bits per value of an error that depends on how it was computed (the scale the "
                    "trainer set, EvalMod's distortion, the key switches); an ordinary computation's error sits below "
                    "the grid. Fix: flood the release for max(fresh bound, the bootstrap pipeline's measured error), "
                    "or accept and document")


@pytest.mark.parametrize("slots, readable_bits", [(16, 3.0), (SLOTS, 0.0)])
def test_the_owner_reads_nothing_of_the_bootstrap_in_a_released_value(slots, readable_bits):
    # 16 slots: _INFO_BELOW_GRID, at most ~3 bits (near the release's sigma since the weights cover the switching keys)
    """XOR's packed set (32 slots: two levels per transform) bootstraps to 2^-28..2^-30, below the release's sigma."""
    scheme, secret = _booted(slots)
    kh = KeyHolder(scheme, secret, terms=RefreshTerms(min_aggregate=4), rng=SeededRandom(7))
    x = np.random.default_rng(3).uniform(-1, 1, (4, 1))
    boot = scheme.bootstrap(scheme.encrypt(x), slots=slots, clean=True, value_bound=16.0)
    e_boot = float(np.max(np.abs(scheme.decrypt_exact_local(boot, secret) - x)))
    release_outputs(kh, EncTensor(scheme, boot))
    assert e_boot <= kh.reports[-1]["value_sigma"] * 2.0**readable_bits


def test_a_masked_refresh_launders_its_inputs_error_too_and_it_stays_below_the_grid(booted):
    """The comparison point: an ordinary computed ciphertext's error joins the value at the re-encryption as a
    bootstrap's does, and is far below the release's grid (0 bits visible)."""
    scheme, secret = booted
    kh = KeyHolder(scheme, secret, terms=RefreshTerms(min_aggregate=4), rng=SeededRandom(8))
    x = np.random.default_rng(4).uniform(-1, 1, (4, 1))
    ct = scheme.mul_plain(scheme.mul(scheme.encrypt(x), scheme.encrypt(x)), 0.5)
    e_in = float(np.max(np.abs(scheme.decrypt_exact_local(ct, secret) - 0.5 * x * x)))
    release_outputs(kh, EncTensor(scheme, ct))
    assert e_in < kh.reports[-1]["value_sigma"] * 2.0**-8


@pytest.mark.parametrize("slots, short_bits", [(16, 20.0), (SLOTS, 15.0)])
def test_release_to_the_bootstrapped_ciphertexts_holder_would_be_under_flooded_as_with_a_masked_refresh(slots,
                                                                                                        short_bits):
    """Li-Micciancio-Schultz-Sorrell sizing protects the ciphertext that is decrypted. The flood after the refresh
    is far short of what the trainer's bootstrapped ciphertext would need (measured on the L2 norm of the released
    values' error: 24.0-24.8 bits with one level per transform, 16 slots; 20.4-20.7 with two, XOR's packed 32):
    the release must never reach its holder (SECURITY.md: releases
    only to parties trusted with the key)."""
    scheme, secret = _booted(slots)
    kh = KeyHolder(scheme, secret, terms=RefreshTerms(min_aggregate=4), rng=SeededRandom(6))
    x = np.random.default_rng(3).uniform(-1, 1, (4, 1))
    boot = scheme.bootstrap(scheme.encrypt(x), slots=slots, clean=True, value_bound=16.0)
    release_outputs(kh, EncTensor(scheme, boot))
    report = kh.reports[-1]  # the flood, integer units at the released (fresh) ciphertext's scale
    error = float(np.linalg.norm(scheme.decrypt_exact_local(boot, secret) - x)) * 2.0 ** report["log2_scale"]
    used, needed = 2.0 ** report["sigma_log2"], kh.terms.flooding.sigma(error)
    assert math.log2(needed / used) > short_bits
    # The bootstrap's own record does bound its true error (the record is loose, not unsound, here).
    assert float(np.max(np.abs(_error(scheme, boot, x, secret)))) <= scheme.noise_estimate(boot)["key_coeff_bound"]
    assert float(np.linalg.norm(_error(scheme, boot, x, secret))) <= scheme.noise_estimate(boot)["key_l2_bound"]


# ---------------------------------------------------------------- 2. the relaxed range and the drop check
@SETTINGS
@given(u=st.floats(-0.999, 0.999), start=st.integers(0, 3), drops=st.lists(st.booleans(), min_size=3, max_size=3),
       extra=st.floats(-0.45, 0.45))
def test_a_value_accepted_at_any_level_comes_back_right_at_level_0_or_is_refused(protocol_like, u, start, drops, extra):
    """Encrypt near the new limit at level ``start`` (by dropping), add a plaintext within the limit there, then
    go down to level 0 by unit products or drops: the result is right (vs numpy) or a named error, never wrong."""
    s, secret = protocol_like
    rng = np.random.default_rng(abs(hash((u, start, extra))) % 2**32)
    limit = s._max_value(s.params.default_scale)
    x = rng.uniform(-1, 1, (1, 8)) * abs(u) * limit
    x[0, 0] = u * limit
    try:
        ct = s.encrypt(x)
        ct = s.level_drop(ct, start)
        plain = np.full((1, 8), extra * s._max_value(ct.scale, s.level(ct)))
        ct, want = s.add_plain(ct, plain), x + plain
        for d in drops:
            if s.level(ct) == 0:
                break
            ct = s.level_drop(ct, s.level(ct) - 1) if d else s.mul_plain(ct, np.ones((1, 8)))
        got = s.decrypt_exact_local(ct, secret)
    except HEOverflowError as exc:
        # refused up front (a drop, or the rescale into a level that cannot hold the record), never caught
        # (or missed) at decryption
        assert "cannot drop" in str(exc) or "would wrap" in str(exc)
        return
    assert np.max(np.abs(got - want)) < 1e-6 * limit


@SETTINGS
@given(u=st.floats(0.01, 0.999), level=st.integers(0, 2))
def test_a_drop_is_refused_exactly_when_the_values_would_not_fit(protocol_like, u, level):
    s, secret = protocol_like
    x = np.full((1, 8), u * s._max_value(s.params.default_scale))
    ct = s.encrypt(x)
    room = math.log2(s.ring.q[0]) + sum(math.log2(q) for q in s.ring.q[1: level + 1])
    fits = math.log2(ct.scale * ct.meta["vmax"]) < room - 2.0
    if not fits:
        with pytest.raises(HEOverflowError, match="would not fit"):
            s.level_drop(ct, level)
        return
    assert np.max(np.abs(s.decrypt_exact_local(s.level_drop(ct, level), secret) - x)) < 1e-6


def test_the_mask_plan_does_not_read_the_encryption_range(protocol_like):
    """The masked refresh sizes its mask from the declared bound and the modulus; widening _max_value changes
    neither, nor the release's flood (both are the same under the old, 2^7 times smaller top limit)."""
    s, _secret = protocol_like
    ct = s.level_drop(s.encrypt(np.full((1, 8), 3.0)), 1)
    flooding = Flooding(30, 64)
    plan, report = s._refresh_plan(ct, None, 16.0), s._release_report(ct, flooding)
    s._max_value = lambda scale, level=None: s.ring.q[0] / (4.0 * scale)  # the range before 57d67bc
    try:
        again, report_again = s._refresh_plan(ct, None, 16.0), s._release_report(ct, flooding)
    finally:
        del s._max_value
    assert (plan.bound_bits, plan.room_bits) == (again.bound_bits, again.room_bits)
    assert report == report_again  # the flood's sigma and grid


def test_the_new_limit_on_the_sets_it_changes_and_those_it_does_not():
    """for_protocol's 128-bit training set: the top-level limit went from q_0 / (4 * 2^54) = 16 to 2^11 (its
    level 0 sits at 2^47 after the 61-bit floor prime); a named set (no floor) keeps q_0 / (4 * scale)."""
    from he_core.schemes.ckks import params as ckks_params
    proto = CkksScheme(ckks_params.for_protocol(3))
    assert proto._scale_at(0) == pytest.approx(2.0**47, rel=1e-2)
    assert proto._max_value(proto.params.default_scale) == pytest.approx(2.0**11, rel=2e-2)
    assert proto._max_value(proto._scale_at(0), 0) == pytest.approx(proto.ring.q[0] / (4 * proto._scale_at(0)))
    named = CkksScheme(ckks_params.named("N8192"))
    assert named._max_value(named.params.default_scale) == pytest.approx(
        named.ring.q[0] / (4 * named.params.default_scale), rel=1e-3)


@pytest.mark.parametrize("top", [0.5, 0.999])
def test_a_value_at_the_bootstrappable_sets_new_top_limit_bootstraps_right(booted, top):
    """The top-level limit of the bootstrappable set (1024 at 2^58) with no vouched bound: the tracked bound
    sets the input's scale, so the sine sees delta = 2^-12 and the result is right to 2^-16 relative."""
    scheme, secret = booted
    limit = scheme._max_value(scheme.params.default_scale)
    x = np.linspace(-1, 1, 4).reshape(4, 1) * top * limit
    out = scheme.bootstrap(scheme.encrypt(x), slots=SLOTS, clean=True)
    got = scheme.decrypt_exact_local(out, secret)
    assert np.max(np.abs(got - x)) < 2.0**-16 * limit


def test_a_wrap_at_level_0_is_never_silent(protocol_like):
    """Was MEDIUM (correctness, predates 57d67bc; fixed 2026-12-07): a rescale into level 0 never compared the
    recorded bound with q_0, and a full-slot constant wraps as one coefficient, which the decryption's range and
    imaginary-part checks cannot see: 6400 decrypted (and was released) as -1792 while the record said up to
    8192 against a level-0 range of 2048. A rescale whose recorded values would not fit the smaller modulus
    now refuses, as a drop does."""
    s, secret = protocol_like
    x = np.full((1, 512), 200.0)  # every slot: the plaintext is one coefficient
    ct, want = s.encrypt(x), x.copy()
    for _ in range(5):
        ct, want = s.add(ct, ct), 2.0 * want
    try:
        for _ in range(3):
            ct = s.mul_plain(ct, np.ones((1, 512)))
        got = s.decrypt_exact_local(ct, secret)
    except HEOverflowError as exc:
        assert "would wrap" in str(exc) or "outgrew the modulus" in str(exc)
        return
    assert np.max(np.abs(got - want)) < 1e-6


# ---------------------------------------------------------------- 3. the row-sum bound
@SETTINGS
@given(rows=st.integers(1, 8), size=st.integers(1, 8), weights=st.booleans(), dirty=st.booleans(),
       seed=st.integers(0, 1000))
def test_a_row_sums_recorded_bound_covers_its_values(protocol_like, rows, size, weights, dirty, seed):
    """Sampled rows (``rows=`` with repeats), dirty inputs (a rotation leaves values in other slots) and
    replicated ones (a row sum fed to another): the tightened vmax stays >= the true |value|."""
    s, secret = protocol_like
    rng = np.random.default_rng(seed)
    x = rng.choice([-1.0, 1.0], (rows, size)) * rng.uniform(0.5, 1.0, (rows, size))
    ct = s.encrypt(x)
    if dirty:
        ct = s.rotate(ct, 1)
        assert ct.meta["dirty"]
        x = s.decrypt_exact_local(ct, secret)
    idx = rng.integers(0, rows, rng.integers(1, 2 * rows + 1)) if weights else None
    out = s.row_sum(ct, idx) if idx is not None else s.row_sum(ct)
    want = x[idx].sum(axis=0, keepdims=True) if idx is not None else x.sum(axis=0, keepdims=True)
    got = s.decrypt_exact_local(out, secret)
    assert np.max(np.abs(got - want)) < 1e-6
    assert np.max(np.abs(got)) <= out.meta["vmax"] * (1 + 1e-9) + 1e-6
    again = s.row_sum(out)  # a replicated input
    assert np.max(np.abs(s.decrypt_exact_local(again, secret))) <= again.meta["vmax"] * (1 + 1e-9) + 1e-6


@pytest.mark.parametrize("rows, size", [(100, 8), (130, 4), (3, 300)])
def test_a_row_sums_bound_covers_batches_of_several_ciphertexts(protocol_like, rows, size):
    """Rows spread over 2-3 ciphertexts (one row per ciphertext at width 300), all rows or 50 sampled ones."""
    s, secret = protocol_like
    rng = np.random.default_rng(rows)
    x = rng.uniform(0.9, 1.0, (rows, size))  # one sign: the sum reaches rows x vmax
    ct = s.encrypt(x)
    assert ct.data.shape[0] > 1
    for idx in (None, rng.integers(0, rows, 50)):
        out = s.row_sum(ct) if idx is None else s.row_sum(ct, idx)
        want = (x if idx is None else x[idx]).sum(axis=0, keepdims=True)
        got = s.decrypt_exact_local(out, secret)
        assert np.max(np.abs(got - want)) < 1e-6 and np.max(np.abs(got)) <= out.meta["vmax"]


# ---------------------------------------------------------------- 4. a wrong value_bound
def _vouched(scheme, secret, factor: float):
    x = np.random.default_rng(1).uniform(-1, 1, (4, 1))
    x[0, 0] = 1.0
    x = x * factor
    out = scheme.bootstrap(scheme.encrypt(x), slots=SLOTS, clean=True, value_bound=1.0)
    return np.max(np.abs(scheme.decrypt_exact_local(out, secret) - x)), scheme.noise_estimate(out)["slot_bound"]


@pytest.mark.parametrize("factor", [2.0, 16.0])
def test_values_a_little_above_the_vouched_bound_stay_within_the_record(booted, factor):
    scheme, secret = booted
    err, bound = _vouched(scheme, secret, factor)
    assert err <= bound and err / factor < 2.0**-16


@pytest.mark.xfail(strict=True, reason="MEDIUM: values 256-1000x the vouched value_bound come back silently wrong "
                   "(errors 0.16 at 256x, 0.26 at 300x here, 42 = 4 % at 1000x: beyond the output's recorded error of "
                   "0.065, no exception, and the output records vmax = value_bound). The trainer cannot detect it "
                   "without the key. Fix: set the input's scale from a sound bound (the tracked one is ~1e4x loose in "
                   "XOR training), or clip the values homomorphically before the bootstrap")
@pytest.mark.parametrize("factor", [256.0, 300.0])
def test_values_far_above_the_vouched_bound_are_refused_or_right(booted, factor):
    scheme, secret = booted
    err, bound = _vouched(scheme, secret, factor)
    assert err <= bound


@pytest.mark.xfail(strict=True, reason="MEDIUM: under refresh='bootstrap' a diverging run (lr 64: the twin's weights "
                   "reach 3.5e4 in 3 epochs, past the declared 16) finishes without TrainingDiverged; its weights "
                   "are off the twin by up to 81-162 and a recorded bound is below its values (1272 for 34756): "
                   "every bootstrap resets vmax to the declared bound. Fix: as for value_bound above (a sound or "
                   "enforced bound); the policy cannot use the tracked bound to detect it (1e5 for weights of 1.6)")
def test_a_diverging_bootstrapped_run_raises_or_matches_the_twin(booted):
    scheme, secret = booted
    lr, epochs = 64.0, 3
    config = xor.XorConfig(seed=3, lr=lr)
    plain = he_core.get_scheme("plain")
    psecret, _ = plain.keygen(KeyRequirements(sizes=(1, config.hidden)))
    twin = xor.build_xor(plain, config)
    fit(twin, xor.X, xor.Y, keyholder=None, lr=lr, epochs=epochs, batch_size=4, shuffle=False, value_bound=16.0)
    model = xor.build_xor(scheme, config)
    try:
        fit(model, xor.X, xor.Y, keyholder=None, lr=lr, epochs=epochs, batch_size=4, loss=MSELoss(), shuffle=False,
            value_bound=16.0, refresh="bootstrap")
    except Exception as exc:  # noqa: BLE001 - any named refusal is acceptable
        assert isinstance(exc, he_core.HEError)
        return
    for p, q in zip(model.parameters(), twin.parameters()):
        got, want = scheme.decrypt_exact_local(p.value.ct, secret), q.value.decrypt(psecret)
        assert np.max(np.abs(got - want)) <= 1e-3 * max(1.0, float(np.max(np.abs(want))))
        assert float(np.max(np.abs(got))) <= p.value.ct.meta["vmax"]


def test_a_parameter_past_the_declared_bound_disturbs_every_parameter_in_its_pack():
    """Packed bootstrapping (bootstrap_many) shares one sine range: EvalMod acts on the packed polynomial's
    coefficients, which mix every slot, so a tensor 16x past the declared bound puts its error on its neighbour
    too (measured: 3.8e-5 against 1.3e-9 bootstrapped alone; SECURITY.md, "Training by bootstrapping")."""
    scheme, secret = _booted(SLOTS)
    good, big = np.array([[0.5, -0.25, 1.0, 0.1]]), np.full((1, 4), 256.0)
    alone = scheme.bootstrap(scheme.encrypt(good), slots=SLOTS, clean=True, value_bound=16.0)
    packed = scheme.bootstrap_many([scheme.encrypt(good), scheme.encrypt(big)], slots=SLOTS, clean=True,
                                   value_bound=16.0)
    e_alone = float(np.max(np.abs(scheme.decrypt_exact_local(alone, secret) - good)))
    e_packed = float(np.max(np.abs(scheme.decrypt_exact_local(packed[0], secret) - good)))
    assert e_packed > 100 * e_alone
    within = scheme.bootstrap_many([scheme.encrypt(good), scheme.encrypt(big / 16)], slots=SLOTS, clean=True,
                                   value_bound=16.0)
    assert float(np.max(np.abs(scheme.decrypt_exact_local(within[0], secret) - good))) < 2.0**-20
