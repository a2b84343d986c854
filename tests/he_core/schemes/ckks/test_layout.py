"""he_core.schemes.ckks.layout: where row r of a (rows, size) batch lives in the slots."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from he_core.schemes.ckks import layout

SLOTS = st.sampled_from([8, 16, 64, 512])


@given(x=st.integers(0, 2**20))
def test_next_pow2_is_the_smallest_power_of_two_at_least_x(x):
    p = layout.next_pow2(x)
    assert p & (p - 1) == 0 and p >= max(x, 1)
    assert p == 1 or p // 2 < x


@given(data=st.data(), slots=SLOTS)
@settings(max_examples=60, deadline=None)
def test_pack_places_row_r_at_slot_of_r_and_unpack_inverts_it(data, slots):
    size = data.draw(st.integers(1, slots))
    stride = data.draw(st.sampled_from([s for s in (1, 2, 4, 8, 16, 64, 512) if size <= s <= slots]))
    rows = data.draw(st.integers(1, 3 * slots // stride))
    x = np.arange(1, rows * size + 1, dtype=np.float64).reshape(rows, size)
    packed = layout.pack(x, slots, stride)
    assert packed.shape == (layout.count_cts(rows, slots, stride), slots)
    for r in range(rows):
        ct, first = layout.slot_of(r, slots, stride)
        np.testing.assert_array_equal(packed[ct, first: first + size], x[r])
    # everything else is zero: the layout is clean
    assert np.count_nonzero(packed) == x.size
    np.testing.assert_array_equal(layout.unpack(packed, rows, size, stride), x)


@given(data=st.data(), slots=SLOTS)
@settings(max_examples=30, deadline=None)
def test_rep_tiles_the_first_row_into_every_block(data, slots):
    size = data.draw(st.integers(1, slots))
    stride = layout.next_pow2(size)
    x = np.arange(1, size + 1, dtype=np.float64)[None, :]
    packed = layout.pack(x, slots, stride, rep=True)
    assert packed.shape == (1, slots)
    blocks = packed.reshape(slots // stride, stride)
    assert np.all(blocks[:, :size] == x) and not np.any(blocks[:, size:])


@given(rows=st.integers(0, 10**6), slots=st.sampled_from([512, 4096]), log_stride=st.integers(0, 9))
def test_count_cts_is_the_ceiling_of_rows_over_rows_per_ciphertext(rows, slots, log_stride):
    stride = 2**log_stride
    rpc = layout.rows_per_ct(slots, stride)
    assert rpc == slots // stride
    n = layout.count_cts(rows, slots, stride)
    assert n * rpc >= rows and (n - 1) * rpc < rows or rows == n == 0


def test_meta_and_cleanliness():
    m = layout.meta(3, 8)
    assert m == {"level": 3, "stride": 8, "dirty": False, "rep": False}

    class Ct:
        def __init__(self, meta):
            self.meta = meta

    assert layout.is_clean(Ct(m))
    assert not layout.is_clean(Ct(layout.meta(0, 8, dirty=True)))
    assert not layout.is_clean(Ct(layout.meta(0, 8, rep=True)))
