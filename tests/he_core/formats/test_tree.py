"""he_core.formats.tree: payload trees to tagged JSON plus named arrays, and a decoder that takes that grammar only."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from he_core.errors import FormatError
from he_core.formats.tree import MAX_DEPTH, TreeDecoder, TreeEncoder

leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**80, 2**80), st.floats(allow_nan=False), st.text(max_size=6),
                   hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_dims=2, max_side=3)))
trees = st.recursive(leaves, lambda kids: st.one_of(
    st.lists(kids, max_size=3), st.lists(kids, max_size=3).map(tuple),
    st.dictionaries(st.text(max_size=6), kids, max_size=3)), max_leaves=12)


def same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def round_trip(tree):
    enc = TreeEncoder()
    node = json.loads(json.dumps(enc.encode(tree, "root")))  # through JSON, as in a file
    dec = TreeDecoder(dict(enc.arrays))
    out = dec.decode(node, "root")
    dec.check_all_used()
    return out, enc


@given(tree=trees)
@settings(max_examples=80, deadline=None)
def test_trees_round_trip_through_json_with_types_kept(tree):
    out, enc = round_trip(tree)
    assert same(out, tree)
    names = [name for name, _ in enc.arrays]
    assert len(set(names)) == len(names)


def test_numpy_scalars_become_python_numbers_and_dict_order_is_kept():
    out, _ = round_trip({"z": np.int32(3), "a": np.float64(0.5), "m": np.bool_(True)})
    assert out == {"z": 3, "a": 0.5, "m": True} and list(out) == ["z", "a", "m"]
    assert type(out["z"]) is int and type(out["m"]) is bool


@pytest.mark.parametrize("bad,error", [({1: 2}, "non-str key"), ({"a": {1.5}}, "holds a set"),
                                       (object(), "holds a object"), (b"bytes", "holds a bytes")])
def test_values_outside_the_grammar_are_refused_when_encoding(bad, error):
    with pytest.raises(TypeError, match=error):
        TreeEncoder().encode(bad, "root")


def nested(depth):
    tree = 0
    for _ in range(depth):
        tree = [tree]
    return tree


def test_depth_is_bounded_both_ways():
    TreeEncoder().encode(nested(MAX_DEPTH), "root")
    with pytest.raises(ValueError, match="nested deeper"):
        TreeEncoder().encode(nested(MAX_DEPTH + 1), "root")
    with pytest.raises(FormatError, match="nested deeper"):
        TreeDecoder({}).decode(nested(MAX_DEPTH + 1), "root")


@pytest.mark.parametrize("node", [{"$x": 1}, {"$a": 3}, {"$t": {}}, {"$d": []}, {"$a": "x", "$t": []}, {},
                                  {"plain": "dict"}])
def test_malformed_entries_are_refused_when_decoding(node):
    with pytest.raises(FormatError, match="malformed entry"):
        TreeDecoder({"x": np.zeros(1)}).decode(node, "root")


def test_arrays_are_used_exactly_once():
    arrays = {"a": np.zeros(1), "b": np.ones(1)}
    with pytest.raises(FormatError, match="does not hold"):
        TreeDecoder(arrays).decode({"$a": "missing"}, "root")
    with pytest.raises(FormatError, match="twice"):
        TreeDecoder(arrays).decode([{"$a": "a"}, {"$a": "a"}], "root")
    dec = TreeDecoder(arrays)
    dec.decode({"$a": "a"}, "root")
    with pytest.raises(FormatError, match="no field refers to"):
        dec.check_all_used()
