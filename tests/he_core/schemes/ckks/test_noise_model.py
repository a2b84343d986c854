"""he_core.schemes.ckks.noise_model: the noise formulas bound to a parameter set."""
import math
import warnings

import pytest

from he_core.schemes.ckks import CkksParams, noise
from he_core.schemes.ckks.noise_model import NoiseModel


@pytest.fixture(scope="module")
def model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = CkksParams(poly_degree=2048, levels=4, dnum=2, allow_insecure=True)
    return params, NoiseModel(params)


def test_the_constants_come_from_the_parameters(model):
    params, m = model
    assert (m.n, m.sigma, m.alpha) == (2048, params.sigma, params.alpha)
    assert m.q_log2[-1] == pytest.approx(sum(math.log2(q) for q in params.q_primes))
    assert m.s_norm2 == noise.secret_norm2(2048, params.secret, params.hamming_weight)


def test_fresh_public_noise_exceeds_secret_noise(model):
    _, m = model
    assert m.fresh(True) > m.fresh(False) == noise.fresh_secret_var(m.sigma)
    assert m.fresh(True, over_qp=False) >= m.fresh(True)


def test_key_switch_noise_is_the_formula_for_the_digits_present_and_is_cached(model):
    params, m = model
    for level in range(params.levels + 1):
        primes = params.q_primes[: level + 1]
        digits = [primes[i: i + params.alpha] for i in range(0, len(primes), params.alpha)]
        assert m.keyswitch(level) == noise.keyswitch_var(m.n, m.sigma, m.s_norm2, digits, params.p_primes)
        assert level in m._ks
    assert m.keyswitch(params.levels) >= m.keyswitch(0)


def test_rescale_divides_by_the_dropped_prime(model):
    params, m = model
    var = 2.0**80
    out = m.rescale(var, 3)
    assert out == pytest.approx(var / params.q_primes[3] ** 2 + noise.rounding_var(m.s_norm2, 2), rel=1e-12)
    assert m.rescale(var, 3, parts=3) >= out


def test_unknown_metadata_is_filled_pessimistically_and_known_fields_kept(model):
    _, m = model
    meta = {"vmax": 4.0}
    m.fill_unknown(meta, 3, 2.0**40)
    assert meta["vmax"] == 4.0
    cap = float(noise.modulus_cap(noise.FLOAT_LIMIT, m.q_log2[1]))
    assert meta["nvar"] == meta["nslot"] == meta["nspec"] == cap
    full = {"nvar": 1.0, "nslot": 1.0, "nspec": 1.0, "vmax": 1.0}
    m.fill_unknown(full, 0, 2.0**40)
    assert full == {"nvar": 1.0, "nslot": 1.0, "nspec": 1.0, "vmax": 1.0}
    empty = {}
    m.fill_unknown(empty, 0, 2.0**40)
    assert empty["vmax"] == pytest.approx(2.0 ** (m.q_log2[0] - 1) / 2.0**40)
