"""EvalMod: the approximation against the exact reduction (plaintext), the ciphertext against its twin."""
from __future__ import annotations

import numpy as np
import pytest

from he_core import KeyRequirements, ParameterError, SeededRandom
from he_core.schemes.ckks.bootstrap.evalmod import (EvalModSpec, approximation_error, eval_mod,
                                                     interpolation_error, reference, spec_for_range)


@pytest.mark.parametrize("k", [10, 14, 33])
def test_the_chosen_spec_interpolates_the_scaled_sine_within_2_pow_40(k):
    spec = spec_for_range(k)
    assert interpolation_error(spec) <= 2.0**-40
    shallower = [EvalModSpec(k, d, r) for r in range(spec.double_angles + 1) for d in (15, 31, 63)
                 if EvalModSpec(k, d, r).depth < spec.depth]
    assert all(interpolation_error(s, 4001) > 2.0**-40 for s in shallower)  # nothing cheaper would do


def test_error_against_the_exact_reduction_is_the_sines_cubic_term():
    """|sin(2 pi x)/(2 pi) - delta| <= (2 pi)^2 |delta|^3 / 6, plus the interpolation error."""
    spec = spec_for_range(14)
    for delta_max in (2.0**-8, 2.0**-12):
        bound = (2 * np.pi) ** 2 * delta_max**3 / 6 + interpolation_error(spec)
        err = approximation_error(spec, delta_max)
        assert bound / 2 < err <= bound  # tight: the sine's own error, nothing else


def test_a_range_too_wide_for_the_approximations_is_refused():
    with pytest.raises(ParameterError, match="cannot approximate"):
        spec_for_range(4096)


def test_homomorphic_eval_mod_matches_its_plaintext_twin_and_the_reduction(sparse, bits):
    s, _ = sparse
    keys = s.keygen(KeyRequirements(minimal=True, multiply=True), rng=SeededRandom(2))
    spec = spec_for_range(14)
    rng = np.random.default_rng(8)
    ints = rng.integers(-13, 14, s.params.slots)
    delta = rng.uniform(-1, 1, s.params.slots) * 2.0**-12
    y = (ints + delta) / spec.K
    ct = s.encrypt(y[None, :])
    out = eval_mod(s.booter.roles, ct, spec)
    assert s.level(out) == s.level(ct) - spec.depth
    got = s.decrypt_exact_local(out, keys.secret)[0]
    # Against the twin: the ciphertext noise of depth 9 at a 2^58 scale (measured: 44 bits).
    assert bits(got, reference(y, spec)) >= 40
    # Against the exact reduction x - round(x) = delta: the sine's cubic term plus that noise.
    assert np.max(np.abs(got - delta)) <= (2 * np.pi) ** 2 * 2.0**-36 / 6 + 2.0**-36
