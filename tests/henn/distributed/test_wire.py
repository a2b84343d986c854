"""Ciphertexts and public keys cross Dask's processes in henn's format; secret keys never cross."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import he_core
from he_core.formats.container import MAGIC

distributed = pytest.importorskip("distributed")
from distributed.protocol import deserialize, serialize  # noqa: E402

from henn.distributed import wire  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::he_core.SecurityWarning")


@pytest.fixture
def objects():
    scheme = he_core.get_scheme("vhe")
    secret, public = scheme.keygen(he_core.KeyRequirements(sizes=(3,)), rng=he_core.SeededRandom(5))
    return scheme, secret, public, scheme.encrypt([[0.5, -1.0, 2.0]])


@pytest.fixture(autouse=True)
def insecure_setting():
    before = wire.insecure_accepted()
    yield
    wire.accept_insecure(before)


def chain(exc: BaseException) -> list[type]:
    """The types of an exception and of every exception it was raised from or during."""
    seen = []
    while exc is not None and type(exc) not in seen:
        seen.append(type(exc))
        exc = exc.__cause__ or exc.__context__
    return seen


def test_ciphertexts_and_public_keys_use_the_henn_format(objects):
    scheme, secret, public, ct = objects
    wire.accept_insecure(True)
    for obj in (ct, public):
        header, frames = serialize(obj, serializers=("dask", "pickle"))
        assert header["serializer"] == "dask"  # not pickle
        assert len(frames) == 1 and bytes(frames[0][:8]) == MAGIC
        back = deserialize(header, frames)
        assert type(back) is type(obj) and back.key_id == obj.key_id
    back = deserialize(*serialize(ct, serializers=("dask", "pickle")))
    np.testing.assert_array_equal(scheme.decrypt_exact_local(back, secret), scheme.decrypt_exact_local(ct, secret))


def test_a_tampered_frame_is_refused(objects):
    _, _, public, ct = objects
    wire.accept_insecure(True)
    header, frames = serialize(ct, serializers=("dask",))
    data = bytearray(frames[0])
    data[-30] ^= 1
    with pytest.raises(he_core.FormatError):
        deserialize(header, [bytes(data)])
    header, frames = serialize(public, serializers=("dask",))
    with pytest.raises(he_core.FormatError, match="expected"):  # public keys presented as a ciphertext
        wire.from_bytes(frames[0], "ciphertext")


def test_insecure_sets_load_only_where_accepted(objects):
    _, _, _, ct = objects
    wire.accept_insecure(False)
    header, frames = serialize(ct, serializers=("dask",))
    with pytest.raises(he_core.FormatError, match="insecure parameters"):
        deserialize(header, frames)
    wire.accept_insecure(True)
    assert deserialize(header, frames).key_id == ct.key_id


def test_secret_keys_do_not_serialize_by_any_path(objects):
    _, secret, _, _ = objects
    with pytest.raises(he_core.KeyExportError):
        wire.Wire(secret)
    with pytest.raises(he_core.KeyExportError):
        pickle.dumps(secret)
    with pytest.raises(he_core.KeyExportError):
        pickle.dumps({"nested": [secret]})
    with pytest.raises(Exception) as info:  # Dask's own entry point: no serializer family takes it
        serialize(secret, serializers=("dask", "pickle"), on_error="raise")
    assert he_core.KeyExportError in chain(info.value)


def test_a_wire_envelope_pickles_as_its_bytes(objects):
    _, _, public, ct = objects
    wire.accept_insecure(True)
    sealed = wire.Wire(ct)
    blob = pickle.dumps(sealed)
    assert b"he_core.ciphertext" not in blob and bytes(sealed.data) in blob
    again = pickle.loads(blob)
    assert isinstance(again, wire.Wire) and again.open().key_id == ct.key_id  # opened only when asked
    with pytest.raises(TypeError, match="only Ciphertext and PublicKeys"):
        wire.Wire(np.zeros(3))


def test_a_wire_envelope_hands_its_bytes_out_of_band_to_protocol_5(objects):
    """Dask pickles task arguments with protocol 5 and a buffer callback: the sealed bytes travel as a frame of
    their own (no copy into the pickle, no scan of it), and come back whole."""
    _, _, _, ct = objects
    wire.accept_insecure(True)
    sealed = wire.Wire(ct)
    buffers = []
    blob = pickle.dumps(sealed, protocol=5, buffer_callback=buffers.append)
    assert len(blob) < 200 and [bytes(b.raw()) for b in buffers] == [sealed.data]
    again = pickle.loads(blob, buffers=[bytearray(b.raw()) for b in buffers])  # a receiver's frames are not bytes
    assert isinstance(again.data, bytes) and again.data == sealed.data
    np.testing.assert_array_equal(again.open().data, ct.data)


def test_a_sealed_wire_crosses_as_data_to_a_client_that_refuses_pickle(objects):
    """A task may return a Wire (data-parallel training does): it crosses with henn's serializer, still sealed."""
    _, secret, public, ct = objects
    sealed = wire.Wire(ct)
    header, frames = serialize(sealed, serializers=["dask", "pickle"])
    assert header["serializer"] == "dask" and [bytes(f) for f in frames] == [sealed.data]
    back = deserialize(header, frames, deserializers=["dask", "msgpack"])
    assert isinstance(back, wire.Wire) and back.kind == "ciphertext" and back.data == sealed.data
    wire.accept_insecure(True)
    np.testing.assert_array_equal(back.open().data, ct.data)
    with pytest.raises(he_core.FormatError, match="only ciphertexts and public keys"):
        wire._deserialize_wire({"henn-wire": "secret_key"}, [b"\0" * 64])
