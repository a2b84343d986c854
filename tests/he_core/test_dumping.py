"""he_core.dumping: what the writer refuses (objects without a known parameter set, mixed bundles, bad
scales, dtypes and payload values) and how it stores what it accepts (canonical arrays, carried parameters).
Round trips of every kind are in test_serialization.py; what the reader refuses in test_loading.py."""
from __future__ import annotations

import numpy as np
import pytest

import he_core
from he_core import serialization as ser
from he_core.schemes.plain import PlainParams


def loads(blob, **kw):
    """``ser.loads`` opting in to insecure sets: these files are all of the (cleartext) plain scheme."""
    return ser.loads(blob, **{"allow_insecure": True, **kw})


def test_bundle_of_two_parameter_sets_is_refused():
    a = he_core.get_scheme("plain")
    b = he_core.get_scheme("plain", precision_bits=10)
    with pytest.raises(ValueError, match="one scheme and parameter set"):
        ser.dumps(ser.Bundle({"a": a.encrypt([1.0], a.keygen().secret), "b": b.encrypt([1.0], b.keygen().secret)}))


def test_objects_carry_their_parameters_and_constructing_a_scheme_records_nothing():
    """A scheme's objects are saved through the parameters they carry, not through a process-wide table."""
    scheme = he_core.get_scheme("plain", precision_bits=11)
    ct = scheme.encrypt([[1.5]], scheme.keygen().secret)
    assert ct.params is scheme.params and scheme.add(ct, ct).params is scheme.params
    assert loads(ser.dumps(ct)).params == scheme.params
    he_core.get_scheme("plain", precision_bits=13)  # made, never used: nothing about it is kept
    bare = he_core.Ciphertext("plain", PlainParams(precision_bits=13).param_id, "k" * 32, (1, 1), 1.0,
                              np.zeros((1, 1)))
    with pytest.raises(ValueError, match="unknown here: the object does not carry it"):
        ser.dumps(bare)
    assert loads(ser.dumps(bare, params=PlainParams(precision_bits=13))).params == PlainParams(precision_bits=13)


def test_unknown_parameter_set_needs_params():
    ct = he_core.Ciphertext("plain", "plain-000000000000", "k" * 32, (1, 1), 1.0, np.zeros((1, 1)))
    with pytest.raises(ValueError, match="unknown here"):
        ser.dumps(ct)
    with pytest.raises(ValueError, match="parameter set"):
        ser.dumps(ct, params=PlainParams())


def test_bad_bundle_entries_and_scales_are_refused():
    with pytest.raises(TypeError, match="str -> Ciphertext"):
        ser.dumps(ser.Bundle({"w": np.zeros(3)}))
    ct = he_core.Ciphertext("plain", PlainParams().param_id, "k" * 32, (1, 1), float("inf"), np.zeros((1, 1)))
    with pytest.raises(ValueError, match="scale is inf"):
        ser.dumps(ct)


@pytest.mark.parametrize("bad", [np.zeros(2, np.float32), np.zeros(2, np.complex128), np.array([object()]),
                                 np.zeros(2, np.int16), np.array(["a"])])
def test_disallowed_dtypes_are_refused_on_save(bad):
    key = he_core.SecretKey("plain", PlainParams().param_id, "k" * 32, {"x": bad})
    with pytest.raises(TypeError, match="not allowed"):
        ser.dumps(key)


@pytest.mark.parametrize("bad", [{1: 2}, {"x": {1.5}}, {"f": lambda: 0}, {"b": b"raw"}])
def test_unsupported_payload_values_are_refused(bad):
    key = he_core.SecretKey("plain", PlainParams().param_id, "k" * 32, bad)
    with pytest.raises(TypeError, match="cannot serialise"):
        ser.dumps(key)


def test_unusual_array_layouts_are_stored_canonically():
    base = np.arange(24, dtype=np.int64).reshape(4, 6)
    data = {"f": np.asfortranarray(base), "view": base[::2, 1::3], "be": base.astype(">i8"),
            "scalar": np.array(5, np.uint64), "empty": np.zeros((0, 3), np.int32)}
    key = he_core.SecretKey("plain", PlainParams().param_id, "k" * 32, data)
    back = loads(ser.dumps(key)).data
    for name, arr in data.items():
        np.testing.assert_array_equal(back[name], arr)
        assert back[name].shape == arr.shape and back[name].dtype == arr.dtype.newbyteorder("=")
        assert back[name].flags.writeable and back[name].flags.c_contiguous
