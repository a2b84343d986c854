"""How henn objects cross Dask's processes: in the project's own file format, never as pickles of key material.

Dask moves an object two ways, and both are covered here:

* as **data** (a task's result, a dependency fetched from another worker, ``scatter``,
  ``gather``): Dask asks its ``dask_serialize`` dispatch first. Registered here for
  :class:`he_core.Ciphertext` and :class:`he_core.PublicKeys`: the frames are
  :func:`he_core.serialization.dumps` bytes, and the receiver runs
  :func:`he_core.serialization.loads`, which checks the parameter set's hash and that a
  public key's id is derived from its material. A :class:`he_core.SecretKey` is refused
  (:class:`he_core.KeyExportError`), and since a secret key also refuses pickling, no
  fallback serializer can carry it either;
* inside a **task's arguments**, which Dask pickles (and which the scheduler unpickles
  and pickles again on its way to a worker). A ciphertext passed there travels in a
  :class:`Wire` envelope: a pickle of it is the file-format bytes, opened only by the
  task that uses it. A :class:`Wire` in a task's *result* crosses as data, through a
  serializer registered here (a client reads no pickle: see :mod:`.cluster`).

Insecure parameter sets (``vhe``, ``plain``, toy rings) load only in a process that
accepts them (:func:`accept_insecure`): the driver says so when the user asked for it, and
the inference plugin says so on each worker. henn only ever switches the setting on (two
jobs may share a worker); a secure job stays protected by its own checks, which compare
every key and ciphertext with the bundle's parameter set.
"""
from __future__ import annotations

import pickle
from typing import Any

import he_core
from he_core import Ciphertext, KeyExportError, PublicKeys, SecretKey

from distributed.protocol import dask_deserialize, dask_serialize

#: The kinds that may cross (``he_core.serialization`` names); secret keys are not among them.
KINDS = {Ciphertext: "ciphertext", PublicKeys: "public_keys"}

_accept_insecure = False


def accept_insecure(allowed: bool) -> None:
    """Let this process load objects of parameter sets without security (tests and teaching only).

    Args:
        allowed: the new setting for the whole process.
    """
    global _accept_insecure
    _accept_insecure = bool(allowed)


def insecure_accepted() -> bool:
    """Whether this process loads objects of insecure parameter sets (see :func:`accept_insecure`)."""
    return _accept_insecure


def to_bytes(obj: Any) -> bytes:
    """An object that may cross processes, in the project's file format.

    Args:
        obj: a :class:`he_core.Ciphertext` or :class:`he_core.PublicKeys`.

    Returns:
        The :func:`he_core.serialization.dumps` bytes.

    Raises:
        he_core.KeyExportError: ``obj`` is a secret key.
        TypeError: any other type.
    """
    if isinstance(obj, SecretKey):
        raise KeyExportError(f"cannot send a secret key (key {obj.key_id[:12]}) to another process: only public "
                             "keys and ciphertexts cross to workers")
    if type(obj) not in KINDS:
        raise TypeError(f"cannot send a {type(obj).__name__}: only Ciphertext and PublicKeys cross in henn's format")
    return he_core.serialization.dumps(obj)


def from_bytes(data: bytes, kind: str) -> Any:
    """The object in ``data``, checked as :func:`he_core.serialization.loads` checks files.

    Args:
        data: bytes made by :func:`to_bytes`.
        kind: the kind expected (``"ciphertext"`` or ``"public_keys"``).

    Raises:
        he_core.FormatError: malformed bytes, another kind, or a parameter set that is
            insecure in a process that does not accept one (:func:`accept_insecure`).
    """
    if kind not in KINDS.values():
        raise he_core.FormatError(f"cannot receive a {kind!r}: only ciphertexts and public keys cross processes")
    return he_core.serialization.loads(bytes(data), expect_kind=kind, allow_insecure=_accept_insecure)


class Wire:
    """A ciphertext or public keys sealed in the project's format, for a task's arguments.

    Pickling a :class:`Wire` pickles its bytes only; :meth:`open` (in the task that uses
    it) loads and checks them.

    Args:
        obj: a :class:`he_core.Ciphertext` or :class:`he_core.PublicKeys`.

    Raises:
        he_core.KeyExportError: ``obj`` is a secret key.
        TypeError: any other type.
    """

    __slots__ = ("kind", "data")

    def __init__(self, obj: Any):
        self.data = to_bytes(obj)
        self.kind = KINDS[type(obj)]

    @classmethod
    def _from(cls, kind: str, data: Any) -> "Wire":
        wire = cls.__new__(cls)
        wire.kind, wire.data = kind, data if isinstance(data, bytes) else bytes(memoryview(data))
        return wire

    def __reduce_ex__(self, protocol: int) -> Any:
        # Protocol 5 hands the bytes over as an out-of-band buffer: Dask sends it as a frame of its own
        # instead of copying tens of MB into the pickle and scanning them (once per process on the way).
        data = pickle.PickleBuffer(self.data) if protocol >= 5 else self.data
        return Wire._from, (self.kind, data)

    def open(self) -> Any:
        """The object, loaded and checked here (see :func:`from_bytes`)."""
        return from_bytes(self.data, self.kind)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Wire({self.kind}, {len(self.data)} bytes)"


def _serialize(obj: Any) -> tuple[dict, list[bytes]]:
    return {"henn-kind": KINDS[type(obj)]}, [to_bytes(obj)]


def _deserialize(header: dict, frames: list) -> Any:
    kind = header.get("henn-kind")
    if len(frames) != 1:
        raise he_core.FormatError(f"cannot receive a {kind!r}: expected one frame, got {len(frames)}")
    return from_bytes(frames[0], kind)


def _serialize_wire(sealed: Wire) -> tuple[dict, list[bytes]]:
    return {"henn-wire": sealed.kind}, [sealed.data]


def _deserialize_wire(header: dict, frames: list) -> Wire:
    kind = header.get("henn-wire")
    if kind not in KINDS.values() or len(frames) != 1:
        raise he_core.FormatError(f"cannot receive a sealed {kind!r}: only ciphertexts and public keys, one frame")
    return Wire._from(kind, bytes(frames[0]))  # still sealed: opened (and checked) by whoever uses it


def _refuse(obj: SecretKey) -> tuple[dict, list[bytes]]:
    to_bytes(obj)  # raises KeyExportError
    raise AssertionError("unreachable")  # pragma: no cover


for _cls in KINDS:
    dask_serialize.register(_cls)(_serialize)
    dask_deserialize.register(_cls)(_deserialize)
dask_serialize.register(SecretKey)(_refuse)
# a Wire in a task's result crosses as data too, readable by a client that refuses pickle
dask_serialize.register(Wire)(_serialize_wire)
dask_deserialize.register(Wire)(_deserialize_wire)

__all__ = ["KINDS", "Wire", "accept_insecure", "from_bytes", "insecure_accepted", "to_bytes"]
