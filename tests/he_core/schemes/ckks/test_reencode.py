"""he_core.schemes.ckks.reencode: exact maps between coefficient positions and replicated slots.

Three references: the float encoder and decoder (moderate values, where float64 is
accurate to far below one unit), a 120-digit ``decimal`` evaluation of the defining sums
(cosines by their series, pi by Gauss-Legendre; ~125-bit values), and the algebra the
protocol needs (round trip, linearity up to one rounding, determinism).
"""
import math
from decimal import Decimal, localcontext
from fractions import Fraction
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from he_core.errors import EncodingError, ParameterError
from he_core.schemes.ckks import encoder, reencode

# (n, B) with B <= n/2, from B in {1, 2, 8, 64} and n in {16, 64, 1024, 16384}
SHAPES = [(n, b) for n in (16, 64, 1024, 16384) for b in (1, 2, 8, 64) if b <= n // 2]
shapes = st.sampled_from(SHAPES)
BIG = 2**125
# scales: powers of two and arbitrary floats (the maps take a float as its exact rational)
log_scales = st.one_of(st.integers(0, 40).map(lambda k: 2.0**k), st.floats(1.0, 2.0**40))


def sparse(poly, n: int, batch: int) -> list[int]:
    """The 2B coefficients at multiples of n/(2B), the only ones the replicated packing uses."""
    return [int(c) for c in poly[:: n // (2 * batch)]]


# ---- 120-digit decimal reference -------------------------------------------------------

DIGITS = 120


@cache
def dec_pi() -> Decimal:
    with localcontext() as ctx:
        ctx.prec = DIGITS + 10
        a, b, t, p = Decimal(1), Decimal(2).sqrt() / 2, Decimal(1) / 4, Decimal(1)
        for _ in range(10):  # Gauss-Legendre doubles the correct digits each step
            a, b, t, p = (a + b) / 2, (a * b).sqrt(), t - p * ((a - b) / 2) ** 2, 2 * p
        return (a + b) ** 2 / (4 * t)


@cache
def dec_cos(u: int, batch: int) -> Decimal:
    """cos(pi u / 2B) by its Taylor series at DIGITS + 10 digits."""
    with localcontext() as ctx:
        ctx.prec = DIGITS + 10
        x2 = (dec_pi() * u / (2 * batch)) ** 2
        term = total = Decimal(1)
        k = 1
        while abs(term) > Decimal(10) ** -(DIGITS + 5):
            term = -term * x2 / ((2 * k - 1) * (2 * k))
            total += term
            k += 1
        return total


def dec(x) -> Decimal:
    f = Fraction(x)
    return Decimal(f.numerator) / Decimal(f.denominator)


def ref_slot_coeffs(values, scale_in, scale_out) -> list[Decimal]:
    """c_k = scale_out / (B scale_in) * sum_b values_b cos(pi 5^b k / 2B), k < 2B (the definition)."""
    batch = len(values)
    with localcontext() as ctx:
        ctx.prec = DIGITS
        ratio = dec(scale_out) / (dec(scale_in) * batch)
        return [ratio * sum(v * dec_cos(pow(5, b, 4 * batch) * k % (4 * batch), batch) for b, v in enumerate(values))
                for k in range(2 * batch)]


def ref_real_slots(coeffs, batch, scale_in, scale_out) -> list[Decimal]:
    """Re(slot b) * scale_out = scale_out / scale_in * sum_k c_k cos(pi 5^b k / 2B), all 2B coefficients."""
    with localcontext() as ctx:
        ctx.prec = DIGITS
        ratio = dec(scale_out) / dec(scale_in)
        return [ratio * sum(c * dec_cos(pow(5, b, 4 * batch) * k % (4 * batch), batch) for k, c in enumerate(coeffs))
                for b in range(batch)]


def assert_rounds(got, exact) -> None:
    """Each integer is its exact value rounded: within 1/2 (the table adds far below 1e-20 here)."""
    assert len(got) == len(exact)
    assert all(isinstance(g, int) for g in got)
    worst = max(abs(Decimal(g) - e) for g, e in zip(got, exact))
    assert worst <= Decimal("0.5") + Decimal("1e-20"), worst


# ---- agreement with the float encoder and decoder --------------------------------------


@given(data=st.data(), shape=shapes, scale_in=st.floats(2.0**10, 2.0**20), log_out=st.integers(0, 32))
@settings(max_examples=60, deadline=None)
def test_coeffs_to_slots_is_the_float_encoding_of_the_replicated_vector(data, shape, scale_in, log_out):
    """|exact - float| <= 1 per coefficient, all n of them.

    |values / scale_in| <= 2^10 and scale_out <= 2^32 keep every coefficient below 2^42;
    the float FFT's error is then about log2(n) * 2^-53 * 2^42 << 1/2, so the two
    roundings of nearly the same number differ by at most one (at a half-integer).
    """
    n, batch = shape
    values = data.draw(st.lists(st.integers(-(2**20), 2**20), min_size=batch, max_size=batch))
    got = reencode.coeffs_to_slots(values, n, scale_in, 2.0**log_out)
    expect = encoder.encode(np.tile(np.array(values, dtype=np.float64) / scale_in, n // (2 * batch)), n, 2.0**log_out)
    assert len(got) == n and all(isinstance(c, int) for c in got)
    assert np.abs(np.array(got, dtype=np.int64) - expect).max() <= 1
    off = np.ones(n, dtype=bool)
    off[:: n // (2 * batch)] = False
    assert not np.any(np.array(got)[off])  # sparse: nothing off the multiples of n/(2B)


@given(shape=shapes, seed=st.integers(0, 2**32 - 1), bits=st.sampled_from((0, 1, 10, 20)),
       only_sparse=st.booleans(), log_in=st.integers(20, 40), log_drop=st.integers(0, 20))
@settings(max_examples=60, deadline=None)
def test_slots_to_coeffs_is_the_replica_mean_of_the_float_decoding(shape, seed, bits, only_sparse, log_in, log_drop):
    """|exact - rint(mean_j Re(decode)_j * scale_out)| <= 1, j over the replicas of b.

    Coefficients below 2^20 and scale_out <= scale_in keep the float decoding's error at
    about log2(n) * 2^-53 * sqrt(n) * ||m||_2 << 1/2. The coefficients off the sparse
    positions (random here unless ``only_sparse``) cancel in the mean.
    """
    n, batch = shape
    poly = np.random.default_rng(seed).integers(-(2**bits), 2**bits, n, endpoint=True)
    if only_sparse:
        keep = np.zeros(n, dtype=bool)
        keep[:: n // (2 * batch)] = True
        poly[~keep] = 0
    scale_in, scale_out = 2.0**log_in, 2.0**(log_in - log_drop)
    got = reencode.slots_to_coeffs(sparse(poly, n, batch), n, batch, scale_in, scale_out)
    slots = encoder.decode(poly, scale_in).real.reshape(n // (2 * batch), batch).mean(axis=0)
    assert len(got) == batch and all(isinstance(c, int) for c in got)
    assert np.abs(np.array(got) - np.rint(slots * scale_out)).max() <= 1


# ---- exact values far beyond float64 ---------------------------------------------------

big_ints = st.integers(-BIG, BIG)


@given(data=st.data(), shape=st.sampled_from([s for s in SHAPES if s[0] <= 1024]),
       scale_in=log_scales, scale_out=log_scales)
@settings(max_examples=30, deadline=None)
def test_coeffs_to_slots_rounds_the_exact_sum_with_125_bit_values(data, shape, scale_in, scale_out):
    n, batch = shape
    values = data.draw(st.lists(big_ints, min_size=batch, max_size=batch))
    got = reencode.coeffs_to_slots(values, n, scale_in, scale_out)
    assert_rounds(sparse(got, n, batch), ref_slot_coeffs(values, scale_in, scale_out))


@given(data=st.data(), batch=st.sampled_from((1, 2, 8, 64)), scale_in=log_scales, scale_out=log_scales)
@settings(max_examples=30, deadline=None)
def test_slots_to_coeffs_rounds_the_exact_sum_with_125_bit_values(data, batch, scale_in, scale_out):
    coeffs = data.draw(st.lists(big_ints, min_size=2 * batch, max_size=2 * batch))
    got = reencode.slots_to_coeffs(coeffs, 16384, batch, scale_in, scale_out)
    assert_rounds(got, ref_real_slots(coeffs, batch, scale_in, scale_out))


def test_zeros_map_to_zeros():
    assert reencode.coeffs_to_slots([0] * 8, 64, 2.0**40, 2.0**40) == [0] * 64
    assert reencode.slots_to_coeffs([0] * 16, 64, 8, 2.0**40, 2.0**40) == [0] * 8


# ---- the protocol's algebra ------------------------------------------------------------


def round_trip_bound(batch: int, ratio: float) -> int:
    """|x' - x| after coeffs_to_slots (scale_in -> scale_mid) and slots_to_coeffs back.

    Each middle coefficient is off by at most 1/2 and, folded (c_{2B-k} = -c_k), enters
    Re(slot b) as delta_0 + 2 sum_{0<k<B} delta_k cos(pi e_b k / 2B); as k runs over
    0 < k < B, e_b k mod 2B meets each pair {u, 2B - u} once, so that is at most
    1/2 + sum_{0<u<B} cos(pi u / 2B) = cot(pi / 4B) / 2 in absolute value. It comes back
    scaled by ratio = scale_in / scale_mid; the last rounding adds 1/2; the result and x
    are integers. With scale_mid >= B scale_in the bound is 1 (cot(pi/4B)/(2B) < 2/pi).
    """
    return math.floor(0.5 + ratio * 0.5 / math.tan(math.pi / (4 * batch)) + 1e-9)


@given(data=st.data(), shape=shapes, scale_in=log_scales, log_up=st.integers(0, 8))
@settings(max_examples=60, deadline=None)
def test_round_trip_is_within_the_rounding_bound(data, shape, scale_in, log_up):
    n, batch = shape
    x = data.draw(st.lists(st.one_of(big_ints, st.integers(-100, 100)), min_size=batch, max_size=batch))
    scale_mid = scale_in * 2.0**log_up
    back = reencode.slots_to_coeffs(sparse(reencode.coeffs_to_slots(x, n, scale_in, scale_mid), n, batch),
                                    n, batch, scale_mid, scale_in)
    bound = round_trip_bound(batch, 2.0**-log_up)
    assert max(abs(a - b) for a, b in zip(back, x)) <= bound
    if 2**log_up >= batch:
        assert bound <= 1  # the regime the brief asks for (+-2), with room to spare


def maps(shape, scale_in, scale_out):
    """Both maps as functions of a list of ints (the 2B-long input of slots_to_coeffs is built from the first B)."""
    n, batch = shape
    return [lambda v: reencode.coeffs_to_slots(v[:batch], n, scale_in, scale_out),
            lambda v: reencode.slots_to_coeffs(v[:2 * batch], n, batch, scale_in, scale_out)]


@given(data=st.data(), shape=shapes, scale_in=log_scales, scale_out=log_scales)
@settings(max_examples=60, deadline=None)
def test_masked_difference_is_the_map_of_the_difference_up_to_one(data, shape, scale_in, scale_out):
    """map(M) - map(m) - map(M - m) is in {-1, 0, 1}: the map is exactly linear before its one rounding."""
    batch = shape[1]
    mask = data.draw(st.lists(big_ints, min_size=2 * batch, max_size=2 * batch))
    value = data.draw(st.lists(st.integers(-(2**40), 2**40), min_size=2 * batch, max_size=2 * batch))
    masked = [v + m for v, m in zip(value, mask)]
    for f in maps(shape, scale_in, scale_out):
        diff = [a - b - c for a, b, c in zip(f(masked), f(mask), f(value))]
        assert max(abs(d) for d in diff) <= 1


@given(data=st.data(), shape=shapes, scale_in=log_scales, scale_out=log_scales)
@settings(max_examples=20, deadline=None)
def test_same_inputs_give_the_same_outputs(data, shape, scale_in, scale_out):
    """Twice, with the cosine table rebuilt in between: the key holder and the trainer must agree bit for bit."""
    batch = shape[1]
    v = data.draw(st.lists(big_ints, min_size=2 * batch, max_size=2 * batch))
    first = [f(v) for f in maps(shape, scale_in, scale_out)]
    reencode._cos_table.cache_clear()
    assert [f(v) for f in maps(shape, scale_in, scale_out)] == first


def test_numpy_integers_are_taken_as_their_values():
    v = [3, -7, 0, 2**40]
    assert reencode.coeffs_to_slots(np.array(v, dtype=np.int64), 64, 2.0**20, 2.0**30) == \
        reencode.coeffs_to_slots(v, 64, 2.0**20, 2.0**30)


# ---- refusals --------------------------------------------------------------------------

GOOD = 2.0**40


@pytest.mark.parametrize("values, n, scale_in, scale_out, err", [
    ([1, 2, 3], 64, GOOD, GOOD, EncodingError),            # B = 3 not a power of two
    ([], 64, GOOD, GOOD, EncodingError),                   # B = 0
    ([1] * 16, 16, GOOD, GOOD, EncodingError),             # B > n/2
    ([1] * 4, 12, GOOD, GOOD, ParameterError),             # n not a power of two
    ([1] * 4, 16.0, GOOD, GOOD, ParameterError),           # n not an int
    ([1, 2.0, 3, 4], 64, GOOD, GOOD, EncodingError),       # float entry
    ([1, np.float64(2), 3, 4], 64, GOOD, GOOD, EncodingError),
    ([1, True, 3, 4], 64, GOOD, GOOD, EncodingError),      # bool entry
    ("abcd", 64, GOOD, GOOD, EncodingError),
    (5, 64, GOOD, GOOD, EncodingError),                    # not a sequence
    ([1] * 4, 64, 0.0, GOOD, EncodingError),
    ([1] * 4, 64, GOOD, -1.0, EncodingError),
    ([1] * 4, 64, float("nan"), GOOD, EncodingError),
    ([1] * 4, 64, GOOD, float("inf"), EncodingError),
    ([1] * 4, 64, "2", GOOD, EncodingError),
    ([1] * 4, 64, GOOD, True, EncodingError),
])
def test_coeffs_to_slots_refuses(values, n, scale_in, scale_out, err):
    with pytest.raises(err, match="cannot re-encode"):
        reencode.coeffs_to_slots(values, n, scale_in, scale_out)


@pytest.mark.parametrize("coeffs, n, batch, scale_in, scale_out, err", [
    ([1] * 6, 64, 3, GOOD, GOOD, EncodingError),           # batch not a power of two (2B entries)
    ([1] * 8, 64, 0, GOOD, GOOD, EncodingError),
    ([1] * 8, 64, 4.0, GOOD, GOOD, EncodingError),         # batch not an int
    ([1] * 32, 16, 16, GOOD, GOOD, EncodingError),         # batch > n/2
    ([1] * 7, 64, 4, GOOD, GOOD, EncodingError),           # 2B - 1 coefficients
    ([1] * 9, 64, 4, GOOD, GOOD, EncodingError),           # 2B + 1 coefficients
    ([1] * 4, 64, 4, GOOD, GOOD, EncodingError),           # B coefficients, not 2B
    ([1] * 8, 48, 4, GOOD, GOOD, ParameterError),
    ([1] * 7 + [0.5], 64, 4, GOOD, GOOD, EncodingError),
    ([1] * 8, 64, 4, float("-inf"), GOOD, EncodingError),
    ([1] * 8, 64, 4, GOOD, 0, EncodingError),
    ([1] * 8, 64, 4, GOOD, None, EncodingError),
])
def test_slots_to_coeffs_refuses(coeffs, n, batch, scale_in, scale_out, err):
    with pytest.raises(err, match="cannot re-encode"):
        reencode.slots_to_coeffs(coeffs, n, batch, scale_in, scale_out)


def test_refusals_are_value_errors():
    with pytest.raises(ValueError):
        reencode.coeffs_to_slots([1.5], 16, GOOD, GOOD)
