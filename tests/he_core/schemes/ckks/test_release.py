"""he_core.schemes.ckks.release: flooded, rounded releases and sanitised ciphertexts.

The flood's size follows the key-dependent noise bound; the released error is checked
against the report's own standard deviation; sanitising floods the noise with a fresh
public encryption of zero while keeping the value.
"""
import math
import warnings

import numpy as np
import pytest

from he_core import Flooding, KeyRequirements, SeededRandom
from he_core.flooding import release_grid
from he_core.schemes.ckks import CkksParams, CkksScheme, noise


@pytest.fixture(scope="module")
def ctx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CkksScheme(CkksParams(poly_degree=1024, levels=2, allow_insecure=True))
    return s, s.keygen(KeyRequirements(sizes=(8,)), rng=SeededRandom(6)).secret


def test_the_flood_is_sized_from_the_key_dependent_noise_bound(ctx):
    s, _ = ctx
    ct = s.encrypt(np.ones((1, 8)))
    f = Flooding(queries=16)
    est = s.noise_estimate(ct)
    assert s._flood_sigma(ct, f) == pytest.approx(f.sigma(est["key_coeff_bound"]))
    report = s.release_report(ct, f)
    assert report["grid"] == release_grid(report["value_sigma"]) and report["flooded"]
    slot_sigma = math.sqrt(s._flood_sigma(ct, f) ** 2 + est["variance"]) * math.sqrt(s.ring.n / 2) / ct.scale
    assert report["value_sigma"] == pytest.approx(slot_sigma)


def test_released_errors_follow_the_reported_sigma(ctx):
    s, key = ctx
    x = np.random.default_rng(1).uniform(-1, 1, (64, 8))
    ct = s.encrypt(x)
    report = s.release_report(ct)
    errs = np.concatenate([(s.decrypt(ct, key, rng=SeededRandom(i)) - x).ravel() for i in range(4)])
    sigma = report["value_sigma"]
    # the measured spread is the reported one (within sampling error), and nothing is beyond the Gaussian tail
    assert 0.8 * sigma <= errs.std() <= 1.2 * sigma + report["grid"]
    assert np.abs(errs).max() <= noise.tail_factor(errs.size) * sigma + report["grid"]


def test_sanitising_keeps_the_value_floods_the_noise_and_records_the_flood(ctx):
    s, key = ctx
    x = np.linspace(-1, 1, 8)[None, :]
    ct = s.encrypt(x)
    out = s.sanitize(ct, rng=SeededRandom(2))
    assert out.meta["flood"] > 0 and out.meta["nvar"] > ct.meta["nvar"]
    assert s.noise_estimate(out)["key_variance"] < out.meta["nvar"]  # the flood is not key-dependent noise
    np.testing.assert_allclose(s.decrypt_exact_local(out, key), x, atol=s.noise_estimate(out)["slot_bound"])
    again = s.sanitize(out, rng=SeededRandom(3))
    assert again.meta["flood"] >= out.meta["flood"]


def test_a_declared_bound_never_raises_the_recorded_one(ctx):
    s, _ = ctx
    ct = s.encrypt(np.full((1, 8), 0.6))  # recorded: the power of two above, 1.0
    assert s._declare_bound(ct, 0.75).meta["vmax"] == 0.75
    assert s._declare_bound(ct, 100.0).meta["vmax"] == ct.meta["vmax"]
