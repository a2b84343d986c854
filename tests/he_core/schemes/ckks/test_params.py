"""CKKS parameter sets: security table, refusal of insecure sets, prime choice, the chooser."""
import math
import warnings

import numpy as np
import pytest

from he_core.errors import EncodingError, InsecureParametersError, ParameterError, SecurityWarning
from he_core.schemes.ckks import CkksParams, choose_parameters, named
from he_core.schemes.ckks import encoder, reference
from he_core.schemes.ckks.params import HE_STANDARD_MAX_LOGQP, NAMED


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_sets_meet_128_bits(name):
    p = named(name)
    assert p.security_bits >= 128
    assert math.ceil(p.log_qp) <= HE_STANDARD_MAX_LOGQP[128][p.poly_degree]
    n = p.poly_degree
    assert all((q - 1) % (2 * n) == 0 for q in p.q_primes + p.p_primes)
    assert len(set(p.q_primes + p.p_primes)) == len(p.q_primes) + len(p.p_primes)
    assert p.q_primes[0].bit_length() == p.first_bits
    # Middle primes are the nearest to 2^scale_bits (39 of them at N=65536 spread to ~2^-14),
    # so rescaled scales stay near 2^scale_bits.
    assert all(abs(q / 2**p.scale_bits - 1) < 2**-12 for q in p.q_primes[1:])


def test_security_levels_reported():
    assert CkksParams(poly_degree=8192, levels=1, first_bits=40, scale_bits=25, special_bits=40).security_bits >= 192
    assert CkksParams(poly_degree=32768, levels=8).security_bits == 256  # 60+320+60 = 440 <= 476


def test_insecure_sets_are_refused_unless_asked_for():
    with pytest.raises(InsecureParametersError, match="128-bit"):
        CkksParams(poly_degree=2048, levels=2)
    with pytest.raises(InsecureParametersError):
        CkksParams(poly_degree=8192, levels=4)  # 60 + 160 + 60 = 280 > 218
    with pytest.warns(SecurityWarning):
        p = CkksParams(poly_degree=2048, levels=2, allow_insecure=True)
    assert p.security_bits == 0


@pytest.mark.parametrize("bad", [dict(poly_degree=1000), dict(poly_degree=512), dict(levels=0),
                                 dict(scale_bits=60), dict(special_bits=50), dict(dnum=5),
                                 dict(secret="gaussian"), dict(sigma=0.0), dict(first_bits=62)])
def test_malformed_parameters_are_refused(bad):
    with pytest.raises(ParameterError):
        CkksParams(**{"allow_insecure": True, **bad})


def test_parameters_are_values():
    a, b = named("N8192"), named("N8192")
    assert a == b and a.param_id == b.param_id
    assert CkksParams.from_dict(a.to_dict()) == a
    with pytest.raises(Exception):
        a.levels = 3


@pytest.mark.parametrize("depth,slots", [(1, 10), (3, 4096), (6, 100), (12, 8192)])
def test_choose_parameters_is_secure_and_deep_enough(depth, slots):
    p = choose_parameters(depth, precision_bits=20, slots=slots)
    assert p.levels >= depth and p.slots >= slots and p.security_bits >= 128


def test_choose_parameters_refuses_impossible_requests():
    with pytest.raises(ParameterError):
        choose_parameters(100, 30)
    with pytest.raises(ParameterError):
        choose_parameters(2, 20, security=100)


# ---------------------------------------------------------------------------- encoder
@pytest.mark.parametrize("n", [64, 2048])
def test_encode_decode_round_trip_and_reference(n):
    z = np.random.default_rng(n).uniform(-100, 100, n // 2)
    m = encoder.encode(z, n, 2.0**40)
    assert np.max(np.abs(encoder.decode(m, 2.0**40) - z)) < 2**-25
    if n == 64:
        assert np.max(np.abs(reference.decode(m, 2.0**40) - encoder.decode(m, 2.0**40))) < 1e-9


def test_encoder_refuses_bad_input():
    with pytest.raises(EncodingError, match="slots"):
        encoder.encode(np.zeros(31), 64, 2.0**40)
    with pytest.raises(EncodingError, match="NaN"):
        encoder.encode(np.array([np.nan] + [0.0] * 31), 64, 2.0**40)
    with pytest.raises(EncodingError, match="2\\^62"):
        encoder.encode(np.full(32, 2.0**30), 64, 2.0**40)
    with pytest.raises(EncodingError, match="scale"):
        encoder.encode(np.zeros(32), 64, -1.0)


def test_hamming_weight_secret_has_that_weight():
    from he_core import SeededRandom
    from he_core.schemes.ckks.keys import sample_secret

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = CkksParams(poly_degree=2048, levels=1, secret="hamming", hamming_weight=64, allow_insecure=True)
    s = sample_secret(p, SeededRandom(1))
    assert np.count_nonzero(s) == 64 and set(np.unique(s)) <= {-1, 0, 1}


def test_protocol_sets_keep_a_wide_floor_below_the_computation():
    from he_core.schemes.ckks.params import REFRESH_FLOOR_BITS, REFRESH_FLOOR_LEVELS, for_protocol

    p = for_protocol(4)
    assert p.poly_degree == 16384 and p.security_bits == 128 and p.levels == 4 + REFRESH_FLOOR_LEVELS
    sizes = [q.bit_length() for q in p.q_primes]
    assert sizes[1:1 + REFRESH_FLOOR_LEVELS] == [REFRESH_FLOOR_BITS] * REFRESH_FLOOR_LEVELS
    assert all(abs(math.log2(q) - p.scale_bits) < 1 for q in p.q_primes[1 + REFRESH_FLOOR_LEVELS:])
    assert len(set(p.q_primes + p.p_primes)) == len(p.q_primes) + len(p.p_primes)
    assert all((q - 1) % (2 * p.poly_degree) == 0 for q in p.q_primes)
    assert CkksParams.from_dict(p.to_dict()) == p


def test_a_set_without_floor_keeps_its_identifier_fields():
    p = CkksParams(poly_degree=8192, levels=2)
    assert "floor_levels" not in p.to_dict() and "floor_bits" not in p.to_dict()


@pytest.mark.parametrize("bad", [dict(floor_levels=2), dict(floor_levels=-1), dict(floor_levels=1, floor_bits=62),
                                 dict(floor_levels=1, floor_bits=30)])
def test_malformed_floors_are_refused(bad):
    with pytest.raises(ParameterError, match="floor"):
        CkksParams(poly_degree=8192, levels=2, **bad)


def test_a_filled_protocol_set_takes_every_level_its_ring_holds():
    from he_core.errors import ParameterError
    from he_core.schemes.ckks.params import for_protocol, for_protocol_filled

    base, filled = for_protocol(4), for_protocol_filled(4)
    assert filled.poly_degree == base.poly_degree and filled.levels >= base.levels
    try:
        deeper = for_protocol(filled.levels - (base.levels - 4) + 1)
    except ParameterError:
        return
    assert deeper.poly_degree > filled.poly_degree  # one level more needs a larger ring

