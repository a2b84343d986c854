"""he_core.schemes.ckks.refresh: the CKKS side of the masked refresh, step by step with explicit masks.

Parameters: N = 2048 (explicitly insecure, for speed), 4 levels at scale 2^32 (44-bit first and special
primes), as in test_coeff.py. A refresh's answer is compared with the decryption of what was refreshed:
it re-encrypts afresh (a fresh encryption's noise) after both sides rounded their scaled values (one unit
per coefficient). Measured over 20 seeds: at worst 2^-21.2 for a product's slots, 2^-26.3 for a table
row's coefficients; the bound, 2^-19, leaves a margin of 3.5x.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from he_core import KeyRequirements, SeededRandom
from he_core.errors import EncodingError
from he_core.refresh import Mask
from he_core.schemes.ckks import CkksParams, CkksScheme

BOUND = 2.0**-19


@pytest.fixture(scope="module")
def ctx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=2048, levels=4, scale_bits=32, first_bits=44, special_bits=44,
                                       allow_insecure=True))
    keys = scheme.keygen(KeyRequirements(sizes=(1, 8), multiply=True), rng=SeededRandom(5))
    return scheme, keys.secret


def draw(plan, seed: int, margin_bits: int = 30) -> Mask:
    """A mask for ``plan``: bounded entries ``margin_bits`` above the plan's bound, uniform residues elsewhere."""
    width = int(math.ceil(plan.bound_bits)) + margin_bits
    assert width <= plan.max_width()
    gen = np.random.default_rng(seed)
    values = [int(v) for v in gen.integers(-2**62, 2**62, plan.n_read)]
    values = [v << (width - 62) if width > 62 else v >> (62 - width) for v in values]
    high = np.array([v >> 63 for v in values], dtype=np.int64)
    low = np.array([v & (2**63 - 1) for v in values], dtype=np.int64)
    residues = np.stack([np.stack([gen.integers(0, q, plan.n_entries, dtype=np.uint64) for q in plan.moduli])
                         for _ in range(plan.n_cts)])
    return Mask(plan, width, high, low, residues)


def refresh(scheme, secret, ct, target=None, value_bound=None, seed=1):
    """The whole round: plan, mask (trainer), re-encryption (key holder), unmask (trainer)."""
    plan = scheme.refresh_plan(ct, target, value_bound=value_bound)
    mask = draw(plan, seed)
    masked = scheme.apply_mask(ct, mask, rng=SeededRandom(seed))
    fresh = scheme.reencrypt_masked(masked, target, secret, rng=SeededRandom(seed + 1))
    return masked, scheme.remove_mask(fresh, mask, target, ct, value_bound=value_bound)


def close(got, want, bound=BOUND):
    assert got.shape == want.shape
    err = float(np.max(np.abs(got - want), initial=0.0))
    assert err <= bound, f"error {err:.3e} (2^{math.log2(err):.1f}) above 2^{math.log2(bound):.0f}"


def test_a_refresh_restores_every_level_and_keeps_the_values(ctx):
    scheme, secret = ctx
    x = np.random.default_rng(0).uniform(-1.4, 1.4, (3, 8))
    ct = scheme.mul(scheme.encrypt(x, rng=SeededRandom(2)), scheme.encrypt(x, rng=SeededRandom(3)))
    assert scheme.level(ct) < scheme.params.levels
    masked, out = refresh(scheme, secret, ct)
    assert scheme.level(out) == scheme.params.levels and out.scale == scheme._scale_at(scheme.params.levels)
    close(scheme.decrypt_exact_local(out, secret), scheme.decrypt_exact_local(ct, secret))
    close(scheme.decrypt_exact_local(out, secret), x * x, 2 * BOUND)  # and the product's own error (2^-20.9)
    assert not np.array_equal(masked.data[:, 1], scheme._relin(ct).data[:, 1])  # c1 re-randomised
    # what the key holder decrypts is masked: every coefficient of the phase c0 + c1 s has moved
    relin = scheme._relin(ct)
    for i in range(ct.data.shape[0]):
        before, after = (scheme._phase_limbs(c, scheme._s_full(secret))[i] for c in (relin, masked))
        assert np.mean(np.all(before != after, axis=0)) > 0.999


def test_the_plan_reads_every_coefficient_at_the_ciphertexts_level(ctx):
    scheme, _ = ctx
    ct = scheme.mul(scheme.encrypt(np.full((2, 8), 1.5)), scheme.encrypt(np.full((2, 8), 1.5)))
    plan = scheme.refresh_plan(ct)
    nct = ct.data.shape[0]
    assert plan.n_read == nct * scheme.ring.n and (plan.n_cts, plan.n_entries) == (nct, scheme.ring.n)
    assert plan.moduli == tuple(scheme.ring.q[: scheme.level(ct) + 1])
    assert plan.room_bits == pytest.approx(sum(math.log2(q) for q in plan.moduli) - 1.0)
    assert plan.bound_bits < plan.room_bits
    # a declared bound is used as it is: smaller than the tracked one shrinks the plan, larger grows it
    tight, loose = (scheme.refresh_plan(ct, value_bound=v).bound_bits for v in (0.01, 1e6))
    assert tight < plan.bound_bits < loose


def test_a_gathered_table_row_refreshes_into_a_reversed_row_and_a_constant(ctx):
    scheme, secret = ctx
    x = np.random.default_rng(1).uniform(-1, 1, (40, 8))
    table = scheme.encrypt(x, layout="table")
    row = scheme.row_sum(table, [3, 7, 30])
    want = x[[3, 7, 30]].sum(axis=0, keepdims=True)
    target = scheme.coeff_target(row, rev=True)
    assert scheme.refresh_plan(row, target).n_read == 8  # only the row's coefficients are read
    _, out = refresh(scheme, secret, row, target)
    assert out.meta["rev"] and not out.meta["dirty"] and scheme.level(out) == target["level"]
    close(scheme.decrypt_exact_local(out, secret), scheme.decrypt_exact_local(row, secret))
    close(scheme.decrypt_exact_local(out, secret), want)
    one = scheme.row_sum(scheme.encrypt(x[:, :1], layout="table"), [0, 5])
    constant = {"layout": "constant", "level": 2, "scale": scheme._scale_at(2)}
    _, c = refresh(scheme, secret, one, constant)
    close(scheme.decrypt_exact_local(c, secret), scheme.decrypt_exact_local(one, secret))
    assert scheme.refresh_target_signature(one, constant)["layout"] == "constant"


@pytest.mark.parametrize("target, message", [
    ({"layout": "rows"}, "a refresh target is None or a layout dict"),
    ("slots", "a refresh target is None or a layout dict"),
    ({"layout": "slots", "level": 9, "scale": 2.0**32}, "target level 9"),
    ({"layout": "slots", "level": 2, "scale": 2.0**31}, "not the working scale"),
    ({"layout": "coeff", "level": 2, "scale": None, "stride": 8, "rev": False}, "not the working scale"),
])
def test_bad_targets_are_refused(ctx, target, message):
    scheme, _ = ctx
    ct = scheme.encrypt(np.ones((1, 8)))
    with pytest.raises(EncodingError, match=message):
        scheme.refresh_plan(ct, target)


def test_only_the_two_exact_moves_cross_between_slot_and_coefficient_packing(ctx):
    scheme, _ = ctx
    slots = scheme.encrypt(np.ones((1, 8)))  # not replicated: its coefficients are not a sparse packing
    table = scheme.encrypt(np.ones((4, 8)), layout="table")
    level = scheme.params.levels
    with pytest.raises(EncodingError, match="between slot and coefficient packing only"):
        scheme.refresh_plan(slots, {"layout": "coeff", "level": level, "scale": scheme._scale_at(level), "stride": 1,
                                    "rev": False})
    with pytest.raises(EncodingError, match="between slot and coefficient packing only"):
        scheme.refresh_plan(table, {"layout": "slots", "level": level, "scale": scheme._scale_at(level)})
    column = scheme.encrypt(np.ones((4, 1)), layout="table")  # stride 1, not N / 4
    with pytest.raises(EncodingError, match="between slot and coefficient packing only"):
        scheme.refresh_plan(column, {"layout": "slots", "level": level, "scale": scheme._scale_at(level), "batch": 4})
    with pytest.raises(EncodingError, match="holds \\(4, 8\\) values"):
        scheme.refresh_plan(table, {"layout": "constant", "level": level, "scale": scheme._scale_at(level)})


def test_an_answer_at_the_wrong_level_is_not_unmasked(ctx):
    scheme, secret = ctx
    ct = scheme.encrypt(np.ones((1, 8)))
    plan = scheme.refresh_plan(ct)
    mask = draw(plan, 4)
    wrong = scheme.mul(scheme.encrypt(np.ones((1, 8))), scheme.encrypt(np.ones((1, 8))))  # one level down
    assert scheme.level(wrong) < scheme.level(ct)
    with pytest.raises(EncodingError, match="cannot unmask"):
        scheme.remove_mask(wrong, mask, None, ct)


def test_what_leaves_the_trainer_carries_no_data_dependent_metadata(ctx):
    """Two ciphertexts with different values and histories, at one level: their masked metadata is equal."""
    scheme, _ = ctx
    a = scheme.mul(scheme.encrypt(np.full((1, 8), 0.01)), scheme.encrypt(np.full((1, 8), 0.02)))
    b = scheme.mul(scheme.add(scheme.encrypt(np.full((1, 8), 1.9)), scheme.encrypt(np.full((1, 8), 1.9))),
                   scheme.encrypt(np.full((1, 8), 1.3)))
    assert scheme.level(a) == scheme.level(b) and a.meta != b.meta
    outs = [scheme.apply_mask(ct, draw(scheme.refresh_plan(ct), 6)) for ct in (a, b)]
    assert outs[0].meta == outs[1].meta
    assert scheme.refresh_target_signature(a) == scheme.refresh_target_signature(b)


@pytest.fixture(scope="module")
def moves():
    """A chain with room for the moves (as the batched step uses them) and the packing keys."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=1024, levels=5, first_bits=60, scale_bits=40, special_bits=60,
                                       floor_levels=1, floor_bits=61, allow_insecure=True))
    keys = scheme.keygen(KeyRequirements(sizes=(1, 8), coefficient_moves=True), rng=SeededRandom(1))
    return scheme, keys.secret


MOVE_BOUND = 2e-6  # measured at most 6.3e-7 (N = 1024, scale 2^40): a packing doubles early key switches' noise up
# to N / 2 times, and the squaring below multiplies that error by up to 2 |v| = 9


@pytest.mark.parametrize("count, seed", [(1, 0), (4, 1), (8, 2), (32, 3)])
def test_packed_constants_move_into_slots_and_back_through_masked_refreshes(moves, count, seed):
    """Constants -> packed (B, 1) -> B replicated slots (one refresh) -> squared -> (B, 1) at stride 1 (one
    refresh) -> B constants: each step against NumPy, zeros and negatives included."""
    scheme, secret = moves
    n, top = scheme.params.poly_degree, scheme.params.levels
    values = np.random.default_rng(seed).choice([0.0, -4.5, 3.0, 0.25], count)
    consts = [scheme.level_drop(scheme.encrypt(np.full((1, n // 2), v)), 1) for v in values]
    packed = scheme.pack_constants(consts)
    to_slots = {"layout": "slots", "level": top, "scale": scheme._scale_at(top), "batch": count}
    masked, slots = refresh(scheme, secret, packed, to_slots, value_bound=8.0, seed=seed)
    assert slots.shape == (1, count) and slots.meta["rep"] and scheme.level(slots) == top
    assert masked.shape == (count, 1)  # what the key holder received: the packed batch, masked
    close(scheme.decrypt_exact_local(slots, secret)[0], values, MOVE_BOUND)
    squared = scheme.mul(slots, slots)
    to_coeffs = {"layout": "coeff", "level": 2, "scale": scheme._scale_at(2), "stride": 1, "rev": False}
    _, column = refresh(scheme, secret, squared, to_coeffs, value_bound=32.0, seed=seed + 7)
    assert column.shape == (count, 1) and column.meta["stride"] == 1 and scheme.level(column) == 2
    close(scheme.decrypt_exact_local(column, secret)[:, 0], values ** 2, MOVE_BOUND)
    got = [scheme.decrypt_exact_local(c, secret)[0, 0] for c in scheme.expand_constants(column, count)]
    close(np.array(got), values ** 2, MOVE_BOUND)


def test_a_move_is_described_by_its_answers_shape_and_refused_when_malformed(moves):
    scheme, secret = moves
    n, top = scheme.params.poly_degree, scheme.params.levels
    packed = scheme.pack_constants([scheme.encrypt(np.full((1, n // 2), 1.0))] * 4)
    target = {"layout": "slots", "level": top, "scale": scheme._scale_at(top), "batch": 4}
    sig = scheme.refresh_target_signature(packed, target)
    assert sig["shape"] == [4, 1] and sig["shape_out"] == [1, 4] and sig["layout"] == "slots"
    with pytest.raises(EncodingError, match="between slot and coefficient packing only"):
        scheme.refresh_plan(packed, {**target, "batch": 8})  # the batch must be the packed count
    slots = scheme.encrypt(np.full((1, n // 2), 2.0))  # replicated, but with stride N/2, not a batch of 4
    with pytest.raises(EncodingError, match="between slot and coefficient packing only"):
        scheme.refresh_plan(slots, {"layout": "coeff", "level": 2, "scale": scheme._scale_at(2), "stride": 1,
                                    "rev": True})
    plan = scheme.refresh_plan(packed, target, value_bound=1.0)
    assert plan.n_read == 4  # the key holder reads the four packed values, nothing else
