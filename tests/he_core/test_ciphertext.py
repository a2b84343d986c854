"""he_core.ciphertext: the container every scheme shares (shape, payload size, copies, descriptions)."""
from __future__ import annotations

import numpy as np

from he_core import Ciphertext


def _ct(data, **kw):
    fields = dict(scheme="vhe", params_id="vhe-0123", key_id="abcdef0123456789", shape=(3, 4), scale=2.0 ** 16,
                  data=data)
    fields.update(kw)
    return Ciphertext(**fields)


def test_shape_accessors():
    ct = _ct(np.zeros((3, 5), dtype=np.int64))
    assert (ct.rows, ct.size, len(ct)) == (3, 4, 3)
    assert ct.meta == {} and ct.params is None


def test_nbytes_counts_every_payload_array():
    assert _ct(np.zeros((3, 5), dtype=np.int64)).nbytes == 3 * 5 * 8
    two = (np.zeros((2, 8), dtype=np.uint64), np.zeros(8, dtype=np.float32))
    assert _ct(two).nbytes == 2 * 8 * 8 + 8 * 4
    assert _ct((np.zeros(4), "not an array")).nbytes == 4 * 8  # only arrays count


def test_replace_copies_meta_but_shares_the_payload():
    data = np.arange(6.0)
    ct = _ct(data, meta={"level": 3})
    other = ct.replace(shape=(1, 4), scale=2.0)
    assert other is not ct and other.data is data and other.shape == (1, 4) and other.scale == 2.0
    assert (other.scheme, other.params_id, other.key_id) == (ct.scheme, ct.params_id, ct.key_id)
    other.meta["level"] = 0
    assert ct.meta == {"level": 3}  # the bookkeeping is the copy's own


def test_describe_names_where_it_belongs():
    ct = _ct(np.zeros(1))
    assert ct.describe() == "vhe ciphertext (params vhe-0123, key abcdef012345, shape (3, 4), scale 2^16.00)"
    assert repr(ct) == f"<{ct.describe()}>"
    assert "scale 0" in _ct(np.zeros(1), scale=0).describe()  # no log of a zero scale
