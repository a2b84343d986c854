"""he_core.refresh: mask plans, masks as two int64 words, the width a job needs, and the hiding it buys."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from he_core.errors import ParameterError
from he_core.refresh import MAX_MASK_BITS, Mask, MaskPlan, check_mask, hiding_log2, mask_width


def plan(n_read=3, bound_bits=20.0, room_bits=100.0, moduli=(97, 193), n_cts=1, n_entries=4):
    idx = np.arange(n_read, dtype=np.int64)
    return MaskPlan(read=(np.zeros(n_read, dtype=np.int64), idx), bound_bits=bound_bits, room_bits=room_bits,
                    moduli=moduli, n_cts=n_cts, n_entries=n_entries)


def mask_of(p, ints):
    high = np.array([v >> 63 for v in ints], dtype=np.int64)
    low = np.array([v & (2**63 - 1) for v in ints], dtype=np.int64)
    residues = None if not p.moduli else np.zeros((p.n_cts, len(p.moduli), p.n_entries), dtype=np.uint64)
    return Mask(plan=p, width_bits=MAX_MASK_BITS, high=high, low=low, residues=residues)


values = st.lists(st.integers(-2**MAX_MASK_BITS, 2**MAX_MASK_BITS - 1), min_size=3, max_size=3)


@given(ints=values)
def test_two_words_hold_every_entry_and_its_residues(ints):
    p = plan()
    m = mask_of(p, ints)
    assert m.as_ints() == ints
    assert np.all((m.low >= 0) & (m.low < 2**63))
    for q in (97, 193, 2**61 - 1):
        assert list(m.residues_of_bounded(q)) == [v % q for v in ints]
    assert list(m.mod_2_64()) == [v % 2**64 for v in ints]
    if all(-2**63 <= v < 2**63 for v in ints):
        assert m.as_int64().tolist() == ints
    else:
        with pytest.raises(OverflowError, match="64 bits"):
            m.as_int64()


@given(ints=st.lists(st.one_of(st.integers(-2**63, 2**63 - 1), st.sampled_from([-2**63, -1, 0, 2**63 - 1])),
                     min_size=3, max_size=3))
def test_int64_entries_come_back_exactly(ints):
    assert mask_of(plan(), ints).as_int64().tolist() == ints


@given(read=st.integers(0, 2**40), margin=st.floats(0, 200))
def test_hiding_is_a_union_bound_over_the_entries_read(read, margin):
    h = hiding_log2(read, margin)
    assert h == -math.inf if read == 0 else h == pytest.approx(math.log2(read) - margin)


@given(bound=st.floats(0, 60), lam=st.integers(30, 128), budget=st.integers(0, 2**40))
def test_the_width_covers_the_bound_plus_the_hiding_or_is_refused(bound, lam, budget):
    p = plan(bound_bits=bound, room_bits=200.0)
    need = math.ceil(bound + lam + math.log2(max(budget, 1)))
    if need <= min(p.max_width(), MAX_MASK_BITS):
        width = mask_width(p, lam, budget)
        assert width == need and hiding_log2(max(budget, 1), width - bound) <= -lam + 1e-9
    else:
        with pytest.raises(ParameterError, match="refresh at a higher level"):
            mask_width(p, lam, budget)


def test_the_modulus_room_limits_the_width():
    assert plan(room_bits=62.0).max_width() == 60.0
    with pytest.raises(ParameterError, match="does not fit"):
        mask_width(plan(bound_bits=40.0, room_bits=62.0), 30, 1)


def test_a_mask_must_be_drawn_for_its_plan_with_its_shapes():
    p = plan()
    good = mask_of(p, [1, 2, 3])
    check_mask(good, p)
    bad = [
        ("other plan", good, plan()),
        ("not a mask", None, p),
        ("count", Mask(plan=p, width_bits=8, high=np.zeros(2, np.int64), low=np.zeros(2, np.int64),
                       residues=good.residues), p),
        ("dtype", Mask(plan=p, width_bits=8, high=np.zeros(3, np.int32), low=np.zeros(3, np.int64),
                       residues=good.residues), p),
        ("no residues", Mask(plan=p, width_bits=8, high=good.high, low=good.low, residues=None), p),
        ("residue shape", Mask(plan=p, width_bits=8, high=good.high, low=good.low,
                               residues=np.zeros((1, 1, 4), np.uint64)), p),
    ]
    for what, mask, against in bad:
        with pytest.raises(ParameterError, match="cannot use the mask"):
            check_mask(mask, against)
