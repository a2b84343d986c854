"""henn.lifecycle.plain_model: the owner-only plaintext .npz, read without trusting its bytes."""
from __future__ import annotations

import os
import stat
import struct

import numpy as np
import pytest

import he_core
from henn import lifecycle as lc

from .conftest import (
    toy_model,
)


def test_plain_model_round_trip_is_owner_only(tmp_path):
    path = lc.write_plain_model(tmp_path / "m.npz", toy_model())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    back = lc.read_plain_model(path)
    assert back.meta == toy_model().meta
    for name, array in toy_model().arrays.items():
        np.testing.assert_array_equal(back.arrays[name], array)


def test_plain_model_in_a_new_directory_gets_an_owner_only_one(tmp_path):
    path = lc.write_plain_model(tmp_path / "owner" / "init.npz", toy_model())
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700 and lc.read_plain_model(path).meta == toy_model().meta


def test_plain_model_of_integers_is_read_as_float(tmp_path):
    np.savez(tmp_path / "m.npz", w=np.array([[1, -2]], dtype=np.int32))
    model = lc.read_plain_model(tmp_path / "m.npz")
    assert model.arrays["w"].dtype == np.float64 and model.meta == {}


@pytest.mark.parametrize("arrays,match", [
    ({"w": np.array([object(), 1], dtype=object)}, "dtype object are not weights"),
    ({"w": np.array([1.0, np.nan])}, "NaN"),
    ({"w": np.array(["a", "b"])}, "real numbers"),
    ({"w": np.array([1 + 2j])}, "real numbers"),
    ({"w": np.array([True])}, "real numbers"),
    ({"__meta__": np.frombuffer(b"[1]", np.uint8)}, "no weight arrays|JSON object"),
    ({"w": np.ones(2), "__meta__": np.frombuffer(b"{bad", np.uint8)}, "bad __meta__ JSON"),
    ({"w": np.ones(2), "__meta__": np.array([1.0])}, "UTF-8 JSON bytes"),
])
def test_bad_plain_models_are_format_errors(tmp_path, arrays, match):
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(he_core.FormatError, match=match):
        lc.read_plain_model(tmp_path / "m.npz")


def test_npy_header_claiming_more_than_the_data_allocates_nothing(tmp_path):
    import io
    import tracemalloc
    import zipfile
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (2**40,)})
    with zipfile.ZipFile(tmp_path / "m.npz", "w") as archive:
        archive.writestr("w.npy", header.getvalue() + b"\0" * 64)  # the header includes the magic
    tracemalloc.start()
    try:
        with pytest.raises(he_core.FormatError, match="header claims 8796093022208 bytes"):
            lc.read_plain_model(tmp_path / "m.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000


@pytest.mark.parametrize("header", [b"{'descr': '|u1', 'fortran_order': False, 'shape': (15,9, }",
                                    b"{'descr': '<f8', 'fortran_order': False, 'shape': (2,)",
                                    b"__import__('os').system('echo pwned')"])
def test_malformed_npy_headers_are_format_errors(tmp_path, header):
    # The first one was found by fuzz/run_loaders.py: numpy raised tokenize.TokenError.
    import zipfile
    padded = header + b" " * (-(len(header) + 11) % 64) + b"\n"
    member = np.lib.format.magic(1, 0) + struct.pack("<H", len(padded)) + padded + b"\0" * 16
    with zipfile.ZipFile(tmp_path / "m.npz", "w") as archive:
        archive.writestr("w.npy", member)
    with pytest.raises(he_core.FormatError, match="cannot read plaintext model"):
        lc.read_plain_model(tmp_path / "m.npz")


def test_fortran_order_and_unusual_members(tmp_path):
    np.savez(tmp_path / "m.npz", w=np.asfortranarray(np.arange(6.0).reshape(2, 3)))
    np.testing.assert_array_equal(lc.read_plain_model(tmp_path / "m.npz").arrays["w"], np.arange(6.0).reshape(2, 3))
    import zipfile
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as archive:
        archive.writestr("evil.pkl", b"cos\nsystem\n")
    with pytest.raises(he_core.FormatError, match="unexpected archive member"):
        lc.read_plain_model(tmp_path / "x.npz")


def test_not_an_npz_is_a_format_error(tmp_path):
    (tmp_path / "m.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(he_core.FormatError, match="cannot read plaintext model"):
        lc.read_plain_model(tmp_path / "m.npz")
