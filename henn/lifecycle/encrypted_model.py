"""Encrypted models: the owner encrypts and decrypts; anyone loads, computes on and saves.

An encrypted model is a :class:`he_core.serialization.Bundle` that carries the public
keys it is under, plus henn's metadata: the format tag, each tensor's plaintext shape,
the owner's model metadata and the key history. Each weight is stored as a
``(rows, size)`` ciphertext (last axis = vector, the rest = rows).
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

import he_core
from he_core import Capability, KeyMissingError, MismatchError, Scheme, SecretKey
from he_core import serialization as ser
from he_core.errors import FormatError
from he_core.formats.signing import SigningKey, VerifyKey

from .keydir import scheme_for
from .plain_model import PlainModel

MODEL_FILE = "model.henn"  # the file name inside a model directory (as henn.io writes it)
MODEL_FORMAT = "henn-model-1"


def _as_rows(name: str, array: np.ndarray) -> np.ndarray:
    """The ``(rows, size)`` view a ciphertext stores: last axis = vector, the rest = rows."""
    if array.size == 0:
        raise ValueError(f"cannot encrypt weight {name!r}: it is empty (shape {array.shape})")
    if array.ndim == 0:
        return array.reshape(1, 1)
    return array.reshape(-1, array.shape[-1])


def required_sizes(model: PlainModel) -> list[int]:
    """Vector lengths the model's ciphertexts will have (pass them to keygen ``sizes``)."""
    return sorted({_as_rows(name, a).shape[1] for name, a in model.arrays.items()})


def encrypt_model(model: PlainModel, scheme: Scheme, *, secret: SecretKey | None = None) -> ser.Bundle:
    """Owner: encrypt every weight; the result carries the public keys it is under.

    Uses public-key encryption when ``secret`` is ``None`` (the scheme must support it).
    Weights the model's metadata lists under ``"tables"`` (gathered and scattered by row,
    like an embedding) are encrypted with the scheme's ``layout="table"``.

    Raises:
        KeyMissingError: the public keys do not cover a weight's vector length.
        CapabilityError: no public-key encryption and no secret key given.
    """
    public = scheme.public_keys
    missing = sorted(set(required_sizes(model)) - set(public.requirements.sizes))
    if missing:
        raise KeyMissingError(f"cannot encrypt the model: the keys were made for vector sizes "
                              f"{list(public.requirements.sizes)}, the model also needs {missing}; "
                              "regenerate them with those sizes (henn keygen --sizes ... or --model ...)")
    if secret is None:
        scheme.require(Capability.PUBLIC_KEY_ENCRYPT, "encrypt with the owner's secret key instead")
    tables = set(model.meta.get("tables", ())) if isinstance(model.meta.get("tables", ()), list) else set()
    cts = {name: scheme.encrypt(_as_rows(name, a), secret, layout="table" if name in tables else None)
           for name, a in model.arrays.items()}
    meta = {"format": MODEL_FORMAT, "shapes": {name: list(a.shape) for name, a in model.arrays.items()},
            "model": model.meta, "key_history": [public.key_id]}
    return ser.Bundle(cts, meta, public)


@dataclasses.dataclass
class EncryptedModel:
    """An encrypted model as a party receives it: a ready scheme and the bundle."""

    scheme: Scheme
    bundle: ser.Bundle

    @property
    def key_id(self) -> str:
        return self.bundle.public.key_id

    @property
    def tensors(self) -> dict[str, he_core.Ciphertext]:
        """Name -> ciphertext, in ``(rows, size)`` layout (see ``shape_of`` for the original shape)."""
        return dict(self.bundle.ciphertexts)

    def shape_of(self, name: str) -> tuple[int, ...]:
        """The plaintext shape the tensor ``name`` had before encryption (its ``(rows, size)`` if unrecorded)."""
        shapes = self.bundle.meta.get("shapes") if self.bundle.meta.get("format") == MODEL_FORMAT else None
        return tuple(shapes[name]) if shapes else tuple(self.bundle.ciphertexts[name].shape)

    def with_tensors(self, tensors: dict[str, he_core.Ciphertext], **meta: Any) -> EncryptedModel:
        """The same model with new values of its tensors (after training), metadata updated with ``meta``.

        Raises:
            ValueError: the names differ from the model's.
            MismatchError: a tensor changed shape, or is under another key or parameter set.
        """
        reserved = set(meta) & {"format", "shapes", "key_history"}
        if reserved:
            raise ValueError(f"cannot update the model: metadata keys {sorted(reserved)} are managed by henn")
        if set(tensors) != set(self.bundle.ciphertexts):
            raise ValueError(f"cannot update the model: tensor names {sorted(tensors)} differ from "
                             f"{sorted(self.bundle.ciphertexts)}")
        for name, ct in tensors.items():
            old = self.bundle.ciphertexts[name]
            if (ct.shape, ct.key_id, ct.params_id) != (old.shape, old.key_id, old.params_id):
                raise MismatchError(f"cannot update the model: tensor {name!r} is now {ct.describe()}, "
                                    f"it was {old.describe()}")
        return EncryptedModel(self.scheme, ser.Bundle(dict(tensors), {**self.bundle.meta, **meta},
                                                      self.bundle.public))


def load_encrypted_model(path: str | os.PathLike, *, owner_key: VerifyKey | None = None,
                         allow_insecure: bool = False) -> EncryptedModel:
    """Anyone: an encrypted model and a scheme able to compute on it (public material only).

    Accepts the files of :func:`encrypt_model` and any other bundle that carries its
    public keys (such as ``model.henn`` of :func:`henn.io.save_model`; a directory is
    taken to hold one). Without a shape table, each tensor's shape is its ``(rows, size)``.
    The attached public keys must carry the id derived from their material.

    Args:
        path: the model file, or a directory holding ``model.henn``.
        owner_key: require the file to be signed by the owner (a trainer receiving a model).
        allow_insecure: accept parameters below 128-bit security (``vhe`` models need it).

    Raises:
        FormatError: not a bundle, no attached public keys, a shape table that does not
            match the tensors, not signed by ``owner_key``, or insecure parameters not allowed.
    """
    path = model_file_path(path)
    bundle = ser.load(path, expect_kind="bundle", owner_key=owner_key, allow_insecure=allow_insecure)
    if bundle.public is None:
        raise FormatError(f"cannot load {path}: a bundle, but not an encrypted henn model with its public keys")
    if bundle.meta.get("format") == MODEL_FORMAT:
        _check_shapes(bundle, path)
    return EncryptedModel(scheme_for(bundle.public), bundle)


def model_file_path(path: str | os.PathLike) -> Path:
    """``path`` itself, or the ``model.henn`` inside it when it is a directory."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


def _check_shapes(bundle: ser.Bundle, path: Any) -> None:
    """Each recorded plaintext shape must flatten to its ciphertext's ``(rows, size)``."""
    shapes = bundle.meta.get("shapes")
    if not isinstance(shapes, dict) or set(shapes) != set(bundle.ciphertexts):
        raise FormatError(f"cannot load {path}: the model's shape table does not match its tensors")
    for name, shape in shapes.items():
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise FormatError(f"cannot load {path}: tensor {name!r} has a bad shape {shape!r}")
        flat = (1, 1) if not shape else (math.prod(shape[:-1]), shape[-1])
        if flat != tuple(bundle.ciphertexts[name].shape):
            raise FormatError(f"cannot load {path}: tensor {name!r} is recorded as {shape} but its ciphertext "
                              f"holds {bundle.ciphertexts[name].shape}")


def save_encrypted_model(path: str | os.PathLike, model: EncryptedModel | ser.Bundle, *,
                         signer: SigningKey | None = None) -> Path:
    """Write an encrypted model (no secret material in it, so a normal public file).

    Args:
        path: the file to write.
        model: the model, or its bundle (which must carry its public keys).
        signer: the owner's signing key; the file is then signed.
    """
    bundle = model.bundle if isinstance(model, EncryptedModel) else model
    if bundle.public is None:
        raise ValueError("cannot save an encrypted model without the public keys it is under")
    return ser.save(bundle, path, signer=signer)


def _check_model_key(bundle: ser.Bundle, key: SecretKey, keys_dir: Any, op: str) -> None:
    """Refuse before any arithmetic when the model is not under the given key."""
    if bundle.key_ids != [key.key_id] or bundle.public.scheme != key.scheme:
        raise MismatchError(f"cannot {op}: the model is under key {', '.join(bundle.key_ids)} "
                            f"({bundle.public.scheme}), the key directory {keys_dir} holds key {key.key_id} "
                            f"({key.scheme})")


def decrypt_model(model: EncryptedModel, secret: SecretKey, keys_dir: Any = "given", *,
                  flooding: he_core.Flooding | None = None) -> PlainModel:
    """Owner: release every tensor in its original shape: noise-flooded and rounded (a file that leaves).

    Args:
        model, secret: the encrypted model and its key.
        keys_dir: named in error messages.
        flooding: the flooding (default: one release under the key, lambda = 30, and at
            least 16 bits kept relative to each tensor's largest value). A job's key
            releases with the job's budget (``henn job close``).

    Raises:
        MismatchError: the model is under another key (checked first, by key id), or a
            tensor is malformed.
        he_core.PrecisionError: the flooding would leave too few bits (a larger scale is needed).
    """
    _check_model_key(model.bundle, secret, keys_dir, "decrypt the model")
    flooding = flooding or he_core.Flooding(min_precision_bits=he_core.flooding.MIN_PRECISION_BITS)
    arrays = {}
    for name, ct in model.bundle.ciphertexts.items():
        model.scheme.validate(ct)
        arrays[name] = model.scheme.decrypt(ct, secret, flooding=flooding).reshape(model.shape_of(name))
    ours = model.bundle.meta.get("format") == MODEL_FORMAT
    return PlainModel(arrays, dict(model.bundle.meta.get("model", {}) if ours else model.bundle.meta))
