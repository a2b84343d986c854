"""The key holder: decryption, masked refresh, counters."""
from __future__ import annotations

import numpy as np
import pytest

import he_core
from henn.keyholder import KeyHolder
from henn.tensor import EncTensor


def test_decrypt_tensor_and_ciphertext(env):
    x = np.array([[1.5, -2.0, 0.0]])
    t = EncTensor.encrypt(env.scheme, x)
    kh = KeyHolder(env.scheme, env.secret)
    np.testing.assert_allclose(kh.decrypt(t), x, atol=env.tol(1))
    np.testing.assert_allclose(kh.decrypt(t.ct), x, atol=env.tol(1))
    assert kh.decrypt_calls == 2 and kh.bytes_exchanged == 2 * t.ct.nbytes


def test_refresh_keeps_values_and_only_sees_masked_ones(env):
    x = np.array([[0.75, -3.25, 0.0, 2.5], [1.0, 1.0, -1.0, 0.125]])
    t = EncTensor.encrypt(env.scheme, x)
    kh = KeyHolder(env.scheme, env.secret, mask_bound=8.0)
    seen = []
    real_reencrypt = kh.reencrypt

    def spy(masked, layout=None):
        seen.append(env.scheme.decrypt(masked, env.secret))
        return real_reencrypt(masked, layout)

    kh.reencrypt = spy
    fresh = kh.refresh(t, rng=he_core.SeededRandom(0))
    assert isinstance(fresh, EncTensor) and fresh.shape == t.shape
    # masks lie on the fixed-point grid, so mask-then-unmask is exact: only the encoding error remains
    np.testing.assert_allclose(kh.decrypt(fresh), kh.decrypt(t), atol=env.tol(0))
    assert kh.refresh_rounds == 1
    # what the key holder saw is the masked value, not x
    assert np.all(np.abs(seen[0] - x) > 0) and np.all(np.abs(seen[0] - x) <= 8.0 + 1e-9)
    ct_fresh = kh.refresh(t.ct)
    assert isinstance(ct_fresh, he_core.Ciphertext)


def test_masks_are_uniform_on_the_grid(env):
    kh = KeyHolder(env.scheme, env.secret, mask_bound=4.0)
    ct = env.scheme.encrypt(np.zeros((50, 4)))
    mask = kh.draw_mask(ct, he_core.SeededRandom(3))
    grid = ct.scale if ct.scale >= 2 else 2.0 ** 30
    assert mask.shape == (50, 4)
    np.testing.assert_array_equal(mask * grid, np.rint(mask * grid))
    assert np.abs(mask).max() <= 4.0 and mask.min() < -2 and mask.max() > 2  # spread over the range
    assert len(np.unique(mask)) > 190  # 200 draws from ~2^19+ values: essentially no repeats


def test_keyholder_refuses_bad_input(env):
    with pytest.raises(TypeError, match="expected a SecretKey"):
        KeyHolder(env.scheme, "not a key")
    with pytest.raises(ValueError, match="mask_bound"):
        KeyHolder(env.scheme, env.secret, mask_bound=0)
    kh = KeyHolder(env.scheme, env.secret)
    with pytest.raises(TypeError, match="cannot decrypt"):
        kh.decrypt(np.ones(3))
    assert "SecretKey" not in repr(kh) and env.secret.key_id[:12] in repr(kh)


def test_wrong_key_is_refused(env):
    other = he_core.get_scheme(env.scheme.name, env.scheme.params)
    other_secret, _ = other.keygen(he_core.KeyRequirements(sizes=(1, 3)))
    t = EncTensor.encrypt(other, np.ones((1, 3)))
    with pytest.raises(he_core.MismatchError):
        KeyHolder(env.scheme, env.secret).decrypt(t)


def test_refresh_restores_the_noise_budget(env):
    """After products the budget shrinks; a refresh brings it back to the fresh level (vhe)."""
    t = EncTensor.encrypt(env.scheme, np.array([[0.5, -1.0, 1.5]]))
    fresh_budget = t.budget()["remaining"]
    worn = (t * t) * t
    assert worn.budget()["remaining"] <= fresh_budget
    refreshed = env.keyholder.refresh(worn)
    assert refreshed.budget()["remaining"] >= fresh_budget - 1
    np.testing.assert_allclose(env.keyholder.decrypt(refreshed), env.keyholder.decrypt(worn), atol=env.tol(0))
