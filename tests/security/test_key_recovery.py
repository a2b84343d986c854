"""Li-Micciancio: a released CKKS decryption plus its ciphertext gives the secret key; flooding stops it.

Before (the unprotected configuration: what ``decrypt-model`` wrote until flooding,
``decrypt_exact_local`` now): the attacker reads the exact phase ``c0 + c1 s`` from the
released values and divides, recovering every coefficient of ``s``. After (the real
``decrypt``, noise-flooded for the release budget and rounded): the same attack gets
no more coefficients right than a guess.
"""
from __future__ import annotations

import numpy as np
import pytest

import he_core
from he_core.schemes.ckks import CkksParams

from .attacks import agreement, phase_from_coefficients, phase_from_slots, secret_from_phase, times_monomial

PARAMS = CkksParams(poly_degree=2048, levels=2, first_bits=60, scale_bits=45, special_bits=60, allow_insecure=True)


@pytest.fixture(scope="module")
def owner():
    scheme = he_core.get_scheme("ckks", PARAMS)
    keys = scheme.keygen(he_core.KeyRequirements(sizes=(1, 8)), rng=he_core.SeededRandom(11))
    secret = np.asarray(keys.secret.data["s"], dtype=np.int64)
    return scheme, keys.secret, secret


def _table(scheme):
    rows = scheme.ring.n // 8  # a full table: every coefficient holds a weight
    values = he_core.SeededRandom(3).normal((rows, 8)) * 0.5
    return scheme.encrypt(values, layout="table"), values


def test_a_released_table_gives_the_key_away_without_flooding(owner):
    scheme, key, s = owner
    ct, _ = _table(scheme)
    released = scheme.decrypt_exact_local(ct, key)  # the old release: value + noise, full precision
    recovered = secret_from_phase(scheme, ct, phase_from_coefficients(scheme, ct, released))
    assert agreement(recovered, s) == 1.0


def test_a_flooded_release_of_the_table_gives_nothing(owner):
    scheme, key, s = owner
    ct, values = _table(scheme)
    released = scheme.decrypt(ct, key, flooding=he_core.Flooding(queries=1))
    assert np.max(np.abs(released - values)) < 2.0**-16 * np.max(np.abs(values)) * 8  # still a usable model
    recovered = secret_from_phase(scheme, ct, phase_from_coefficients(scheme, ct, released))
    assert agreement(recovered, s) < 0.01  # a ternary guess at random would get ~1/q of them: none


def test_two_released_slot_vectors_give_the_key_away_without_flooding(owner):
    scheme, key, s = owner
    values = he_core.SeededRandom(5).normal((1, scheme.params.slots)) * 0.1  # |v| < 0.5: decrypts after * i too
    ct = scheme.encrypt(values)
    turned = times_monomial(scheme, ct, scheme.ring.n // 2)  # every slot times i: a public operation
    first, second = scheme.decrypt_exact_local(ct, key), scheme.decrypt_exact_local(turned, key)
    phase = phase_from_slots(scheme, first[0], second[0], ct.scale)
    assert agreement(secret_from_phase(scheme, ct, phase), s) == 1.0


def test_flooded_slot_releases_give_nothing(owner):
    scheme, key, s = owner
    values = he_core.SeededRandom(5).normal((1, scheme.params.slots)) * 0.1  # |v| < 0.5: decrypts after * i too
    ct = scheme.encrypt(values)
    turned = times_monomial(scheme, ct, scheme.ring.n // 2)
    flooding = he_core.Flooding(queries=2, min_precision_bits=0)
    first, second = scheme.decrypt(ct, key, flooding=flooding), scheme.decrypt(turned, key, flooding=flooding)
    phase = phase_from_slots(scheme, first[0], second[0], ct.scale)
    assert agreement(secret_from_phase(scheme, ct, phase), s) < 0.01


def test_released_values_are_rounded_to_the_flooding_grid(owner):
    scheme, key, _s = owner
    ct, _ = _table(scheme)
    report = scheme.release_report(ct, he_core.Flooding())
    released = scheme.decrypt(ct, key)
    grid = report["grid"]
    assert grid > 0 and np.all(np.abs(released / grid - np.rint(released / grid)) < 1e-9)
    assert report["sigma_log2"] > report["noise_bound_log2"] + 16  # flooding far above the noise it hides
