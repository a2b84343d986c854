"""Packing constant terms into one ciphertext and expanding one into constants (he_core.schemes.ckks.coeff_moves).

The oracle of :meth:`CkksScheme.pack_constants` is each input's own phase: coefficient
``position`` of ``c0 + c1 s``, read with the secret key, whatever garbage the rest of the
polynomial holds. Bounds are for N = 1024 at scale 2^40 (measured maxima in the comments)
and are also checked against the results' own noise records.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from he_core import KeyRequirements, SeededRandom
from he_core.errors import AlignmentError, KeyMissingError
from he_core.schemes.ckks import CkksParams, CkksScheme
from he_core.schemes.ckks.coeff_layout import is_coeff
from he_core.schemes.ckks.coeff_moves import coefficient_move_elements
from he_core.serialization import dumps, loads

N = 1024
PACK_BOUND = 2e-7  # measured up to 4.6e-8 (B = 16): key switches early in the tree are doubled by later levels
EXPAND_BOUND = 2e-8  # measured up to 4.7e-9 (B = 16)


def _scheme(moves: bool = True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CkksScheme(CkksParams(poly_degree=N, levels=3, first_bits=60, scale_bits=40, special_bits=60,
                                  allow_insecure=True))
    keys = s.keygen(KeyRequirements(sizes=(1, 8), coefficient_moves=moves), rng=SeededRandom(1))
    return s, keys.secret


@pytest.fixture(scope="module")
def ctx():
    return _scheme()


def _phase(s, secret, ct) -> np.ndarray:
    return s._phases(ct, s.keyset.s_full(secret))[0] / ct.scale


@settings(max_examples=12, deadline=None)
@given(log_b=st.integers(0, 4), position=st.integers(0, N - 1), seed=st.integers(0, 2**16),
       zeros=st.booleans())
def test_pack_gathers_each_inputs_coefficient_and_clears_the_rest(ctx, log_b, position, seed, zeros):
    s, secret = ctx
    rng = np.random.default_rng(seed)
    count = 1 << log_b
    # slot-packed inputs: every coefficient holds something (garbage for the packing), zeros and negatives too
    cts = [s.encrypt(np.zeros((1, 8)) if zeros and b % 2 else rng.uniform(-3, 3, (1, 8))) for b in range(count)]
    want = np.array([_phase(s, secret, c)[position] for c in cts])
    packed = s.pack_constants(cts, position=position)
    assert packed.shape == (count, 1) and is_coeff(packed) and not packed.meta["dirty"]
    assert s.level(packed) == s.level(cts[0]) and packed.scale == cts[0].scale  # no level spent, the scale kept
    phase = _phase(s, secret, packed)
    at = np.arange(count) * (N // count)
    bound = s.noise_estimate(packed)["coeff_bound"] / packed.scale
    assert np.max(np.abs(phase[at] - want)) <= min(PACK_BOUND, bound)
    assert np.max(np.abs(np.delete(phase, at))) <= min(PACK_BOUND, bound)  # the garbage is gone
    np.testing.assert_allclose(s.decrypt_exact_local(packed, secret)[:, 0], want, rtol=0, atol=PACK_BOUND)


@settings(max_examples=12, deadline=None)
@given(log_b=st.integers(0, 4), fill=st.integers(0, 16), seed=st.integers(0, 2**16))
def test_expand_gives_one_constant_per_value(ctx, log_b, fill, seed):
    s, secret = ctx
    count = 1 << log_b
    rows = max(1, min(fill, count))  # fewer values than the count: the rest expand to zeros
    rng = np.random.default_rng(seed)
    values = rng.choice([0.0, -1.5, 2.0], (rows, 1)) * rng.uniform(0, 1, (rows, 1))
    ct = s.encrypt(values, layout="table")  # (rows, 1): coefficients 0 .. rows - 1, stride 1
    parts = s.expand_constants(ct, count)
    want = np.concatenate([values[:, 0], np.zeros(count - rows)])
    assert len(parts) == count
    for b, part in enumerate(parts):
        assert part.shape == (1, 1) and part.meta["rep"] and not is_coeff(part)
        assert s.level(part) == s.level(ct) and part.scale == ct.scale
        got = s.decrypt_exact_local(part, secret)
        assert abs(got[0, 0] - want[b]) <= min(EXPAND_BOUND, s.noise_estimate(part)["slot_bound"])


def test_pack_then_expand_round_trip_at_a_lower_level(ctx):
    """The pair the batched training step uses, one level down: constants -> one ciphertext -> constants."""
    s, secret = ctx
    values = np.array([0.5, -1.25, 0.0, 3.0])
    consts = [s.level_drop(s.encrypt(np.full((1, N // 2), v)), 2) for v in values]  # every slot: a constant
    packed = s.pack_constants(consts)
    np.testing.assert_allclose(s.decrypt_exact_local(packed, secret)[:, 0], values, atol=PACK_BOUND)
    # the packed values sit at stride N / 4; a fresh batch at stride 1 is what expand takes (a key holder's answer)
    fresh = s.level_drop(s.encrypt(s.decrypt_exact_local(packed, secret), layout="table"), 2)
    got = [s.decrypt_exact_local(c, secret)[0, 0] for c in s.expand_constants(fresh, 4)]
    np.testing.assert_allclose(got, values, atol=PACK_BOUND + EXPAND_BOUND)  # the packing's error carries over


@pytest.mark.parametrize("count", [0, 3, 6, N * 2, -4, 2.0, True])
def test_counts_that_are_not_powers_of_two_up_to_n_are_refused(ctx, count):
    s, _ = ctx
    ct = s.encrypt(np.ones((1, 1)), layout="table")
    with pytest.raises(ValueError, match="power of two"):
        s.expand_constants(ct, count)
    if isinstance(count, int) and not isinstance(count, bool) and 0 < count <= 8:
        with pytest.raises(ValueError, match="power of two"):
            s.pack_constants([s.encrypt(np.ones((1, 8)))] * count)


def test_misaligned_inputs_and_wrong_layouts_are_refused(ctx):
    s, _ = ctx
    a, b = s.encrypt(np.ones((1, 8))), s.level_drop(s.encrypt(np.ones((1, 8))), 1)
    with pytest.raises(AlignmentError, match="share one key, level and scale"):
        s.pack_constants([a, b])
    with pytest.raises(ValueError, match="clean coefficient-packed batch"):
        s.expand_constants(a, 2)  # slot-packed
    packed = s.pack_constants([a, a])
    with pytest.raises(ValueError, match="clean coefficient-packed batch"):
        s.expand_constants(packed, 2)  # stride N / 2, not 1
    with pytest.raises(ValueError, match="clean coefficient-packed batch"):
        s.expand_constants(s.encrypt(np.ones((4, 1)), layout="table"), 2)  # more values than the count


def test_without_the_keys_a_named_error():
    s, _ = _scheme(moves=False)
    with pytest.raises(KeyMissingError, match="coefficient_moves=True"):
        s.pack_constants([s.encrypt(np.ones((1, 8)))] * 2)


def test_the_requirement_makes_exactly_the_keys_and_survives_serialisation(ctx):
    s, _ = ctx
    wanted = {str(g) for g in coefficient_move_elements(N)}
    assert wanted == {str(2**k + 1) for k in range(1, 11)} and wanted <= set(s.public_keys.data["galois"])
    plain, _ = _scheme(moves=False)
    assert not wanted <= set(plain.public_keys.data["galois"])  # some are rotations' keys anyway (5 = 2^2 + 1)
    req = loads(dumps(s.public_keys), allow_insecure=True).requirements
    assert req.coefficient_moves
    assert not loads(dumps(plain.public_keys), allow_insecure=True).requirements.coefficient_moves
    assert KeyRequirements().merge(KeyRequirements(coefficient_moves=True)).coefficient_moves


def test_the_results_carry_their_parameter_set_and_serialise(ctx):
    """A packed batch goes to a key service: it must serialise like any ciphertext of the scheme."""
    s, _ = ctx
    packed = s.pack_constants([s.encrypt(np.ones((1, 8)))] * 2)
    parts = s.expand_constants(s.encrypt(np.ones((2, 1)), layout="table"), 2)
    for ct in (packed, parts[0]):
        back = loads(dumps(ct), allow_insecure=True)
        assert back.shape == ct.shape and np.array_equal(back.data, ct.data)
