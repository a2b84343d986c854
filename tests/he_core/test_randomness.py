"""Randomness sources: uniform without bias, OS CSPRNG by default, seeded only on request."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from he_core import ParameterError
from he_core.randomness import OsRandom, SeededRandom, resolve


@given(low=st.integers(-(2**62), 2**62), width=st.integers(0, 2**62))
@settings(max_examples=200, deadline=None)
def test_integers_stay_in_range(low, width):
    high = min(low + width, 2**63 - 1)
    x = SeededRandom(1).integers(low, high, 64)
    assert x.dtype == np.int64
    assert int(x.min()) >= low and int(x.max()) <= high


def test_full_int64_range_and_extremes():
    x = OsRandom().integers(-(2**63), 2**63 - 1, 1000)
    assert x.min() < -(2**61) and x.max() > 2**61


def test_uniformity_small_range():
    x = SeededRandom(7).integers(-1, 1, 30000)
    counts = np.bincount(x + 1)
    assert np.all(np.abs(counts - 10000) < 400)  # ~4 standard deviations


def test_gaussian_moments_and_clipping():
    z = SeededRandom(3).gaussian(3.2, 50000)
    assert abs(z.mean()) < 0.1
    assert abs(z.std() - 3.2) < 0.1
    assert np.abs(z).max() <= 6 * 3.2


def test_bad_ranges():
    with pytest.raises(ParameterError):
        OsRandom().integers(3, 2, 1)
    with pytest.raises(ParameterError):
        OsRandom().integers(0, 2**63, 1)


def test_resolve():
    assert isinstance(resolve(None), OsRandom) and resolve(None).secure
    src = SeededRandom(1)
    assert resolve(src) is src
    with pytest.raises(TypeError):
        resolve("seed")
    with pytest.raises(TypeError):
        resolve(True)


def test_an_integer_seed_is_refused_everywhere_keys_are_made():
    """A bare int used to switch key generation to a non-cryptographic PRNG silently."""
    import he_core

    with pytest.raises(TypeError, match="SeededRandom"):
        resolve(5)
    scheme = he_core.get_scheme("plain")
    with pytest.raises(TypeError, match="SeededRandom"):
        scheme.keygen(rng=5)
    keys = scheme.keygen(rng=SeededRandom(5))  # explicit: allowed, and says it is not secure
    assert not SeededRandom(5).secure and keys.public.key_id


def test_normal_draws_are_standard():
    z = SeededRandom(3).normal(20000)
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    assert OsRandom().normal((2, 3)).shape == (2, 3)


def test_seeded_is_reproducible_and_os_is_not():
    assert (SeededRandom(9).integers(0, 10**9, 8) == SeededRandom(9).integers(0, 10**9, 8)).all()
    assert not (OsRandom().integers(0, 2**62, 8) == OsRandom().integers(0, 2**62, 8)).all()


def test_os_random_does_not_touch_numpy_global_state():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    OsRandom().integers(0, 100, 100)
    OsRandom().gaussian(3.2, 100)
    assert (np.random.get_state()[1] == before).all()


@pytest.mark.parametrize("sigma", [-1.0, float("nan"), float("inf"), 2.0**49, 2.0**64])
def test_gaussians_too_wide_for_random_low_bits_are_refused(sigma):
    with pytest.raises(ParameterError, match="standard deviation"):
        SeededRandom(1).gaussian(sigma, 8)


def test_the_widest_gaussian_still_has_random_low_bits():
    z = SeededRandom(2).gaussian(2.0**48, 4000, bound=2.0**52)
    assert set(np.unique(z % 16)) == set(range(16))  # every residue shows up: the low bits are not stuck
