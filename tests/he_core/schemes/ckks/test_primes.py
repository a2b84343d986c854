"""he_core.schemes.ckks.primes: NTT-friendly primes and primitive roots, against sympy-free references."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from he_core.errors import ParameterError
from he_core.schemes.ckks.primes import is_prime, ntt_primes, primitive_root_2n

SMALL_PRIMES = [p for p in range(2, 5000) if all(p % d for d in range(2, int(p**0.5) + 1))]


def test_is_prime_agrees_with_trial_division_below_5000():
    assert [n for n in range(5000) if is_prime(n)] == SMALL_PRIMES


@given(a=st.sampled_from(SMALL_PRIMES[10:]), b=st.sampled_from(SMALL_PRIMES[10:]))
def test_products_of_primes_are_composite(a, b):
    assert not is_prime(a * b)


@pytest.mark.parametrize("n", [2**61 - 1, 2**31 - 1, 1152921504606584833])  # Mersenne primes, an NTT prime
def test_known_large_primes(n):
    assert is_prime(n)


@pytest.mark.parametrize("n", [3215031751, 2152302898747, 3474749660383, 341550071728321,
                               3825123056546413051])  # strong pseudoprimes to the first bases
def test_strong_pseudoprimes_are_caught(n):
    assert not is_prime(n)


@given(bits=st.integers(30, 61), log_n=st.integers(10, 15), count=st.integers(1, 4), around=st.booleans())
@settings(max_examples=30, deadline=None)
def test_ntt_primes_are_distinct_primes_1_mod_2n_of_the_asked_size(bits, log_n, count, around):
    n = 2**log_n
    primes = ntt_primes(bits, n, count, around=around)
    assert len(primes) == count == len(set(primes))
    for q in primes:
        assert is_prime(q) and q % (2 * n) == 1 and q < 2**61
        assert q < 2**bits if not around else abs(q.bit_length() - bits) <= 1
    assert ntt_primes(bits, n, count, around=around) == primes  # deterministic
    others = ntt_primes(bits, n, 2, frozenset(primes), around=around)
    assert not set(others) & set(primes)


def test_around_alternates_so_products_stay_near_powers_of_two():
    primes = ntt_primes(40, 2**13, 6, around=True)
    assert any(q > 2**40 for q in primes) and any(q < 2**40 for q in primes)
    prod = 1
    for q in primes[:2]:
        prod *= q
    assert abs(prod / 2**80 - 1) < 2**-20


@pytest.mark.parametrize("bits", [19, 62])
def test_sizes_out_of_range_are_refused(bits):
    with pytest.raises(ParameterError, match="outside"):
        ntt_primes(bits, 1024, 1)


def test_running_out_of_primes_is_refused():
    with pytest.raises(ParameterError, match="not enough"):
        ntt_primes(20, 2**15, 50)


@given(log_n=st.integers(1, 12), data=st.data())
@settings(max_examples=30, deadline=None)
def test_primitive_roots_have_order_exactly_2n(log_n, data):
    n = 2**log_n
    q = data.draw(st.sampled_from(ntt_primes(40, max(n, 1024), 3)))
    psi = primitive_root_2n(q, n)
    assert pow(psi, 2 * n, q) == 1 and pow(psi, n, q) == q - 1


def test_a_modulus_not_1_mod_2n_is_refused():
    with pytest.raises(ParameterError, match="not 1 mod"):
        primitive_root_2n(2**61 - 1, 1024)
