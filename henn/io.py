"""Saving and loading encrypted models and their keys.

A saved model is a directory:

* ``model.henn`` — a :class:`he_core.serialization.Bundle`: one ciphertext per
  parameter (named as in :meth:`henn.module.Module.named_parameters`), the public
  keys they are under, and JSON metadata (task, architecture, hyper-parameters,
  training summary). Anyone may hold this file; it reveals no weights.
* ``secret.key`` — the secret key, written owner-only (``0o600``) by
  :func:`he_core.serialization.save`, sealed under a passphrase if one is given.
  Only the key holder keeps this file.

Loading checks the scheme (``expect_scheme``) and that the secret key belongs to
the model's key, before any arithmetic, and says which disagreed. It also checks the
attached public keys' id against their material, the owner's signature when an
``owner_key`` is given, and refuses parameters below 128-bit security (``plain``,
``vhe``, toy CKKS rings) unless ``allow_insecure=True``.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import he_core
from he_core import FormatError, SecretKey, serialization
from he_core.formats.signing import SigningKey, VerifyKey

from .module import Module
from .tensor import EncTensor

MODEL_FILE = "model.henn"
SECRET_FILE = "secret.key"


@dataclasses.dataclass
class LoadedModel:
    """An encrypted model read from disk.

    Attributes:
        scheme: a scheme with the model's parameter set and public keys installed.
        tensors: parameter name -> encrypted value.
        meta: the JSON metadata saved with the model.
    """

    scheme: he_core.Scheme
    tensors: dict[str, EncTensor]
    meta: dict[str, Any]

    @property
    def key_id(self) -> str:
        return self.scheme.public_keys.key_id


def save_model(directory: str | os.PathLike, model: Module, scheme: he_core.Scheme, *,
               meta: dict[str, Any], secret: SecretKey | None = None, signer: SigningKey | None = None,
               passphrase: bytes | None = None) -> Path:
    """Write ``model.henn`` (and ``secret.key`` if ``secret`` is given) into ``directory``.

    Args:
        directory: created if missing.
        model: the encrypted model; every parameter is saved under its dotted name.
        scheme: the scheme the model lives in (its parameters and public keys are saved).
        meta: JSON-compatible description needed to rebuild the model.
        secret: the secret key, for the key holder's copy (saved owner-only).
        signer: sign ``model.henn`` with the owner's key.
        passphrase: seal ``secret.key`` under it.

    Returns:
        The directory path.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    cts = {name: p.value.ct for name, p in model.named_parameters()}
    bundle = serialization.Bundle(ciphertexts=cts, meta=dict(meta), public=scheme.public_keys)
    serialization.save(bundle, path / MODEL_FILE, params=scheme, signer=signer)
    if secret is not None:
        if secret.key_id != scheme.public_keys.key_id:
            raise he_core.MismatchError(f"cannot save: the secret key {secret.key_id[:12]} is not the key of the "
                                        f"model's public keys {scheme.public_keys.key_id[:12]}")
        serialization.save(secret, path / SECRET_FILE, params=scheme, passphrase=passphrase)
    return path


def load_model(directory: str | os.PathLike, *, expect_scheme: str | None = None,
               owner_key: VerifyKey | None = None, allow_insecure: bool = False) -> LoadedModel:
    """Read ``model.henn`` from ``directory``.

    Args:
        directory: a directory written by :func:`save_model`.
        expect_scheme: refuse a model of any other scheme.
        owner_key: require the file to be signed by this owner key.
        allow_insecure: accept parameters below 128-bit security.

    Raises:
        FileNotFoundError: no model file there.
        he_core.FormatError: corrupt file, another scheme than expected, no public keys,
            not signed by ``owner_key``, or insecure parameters not allowed.
    """
    path = Path(directory) / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"cannot load model: {path} does not exist")
    bundle = serialization.load(path, expect_kind="bundle", expect_scheme=expect_scheme, owner_key=owner_key,
                                allow_insecure=allow_insecure)
    if bundle.public is None:
        raise FormatError(f"cannot load model: {path} carries no public keys")
    scheme = he_core.get_scheme(bundle.public.scheme, bundle.public.params)
    scheme.set_public_keys(bundle.public)
    tensors = {name: EncTensor(scheme, ct) for name, ct in bundle.ciphertexts.items()}
    return LoadedModel(scheme, tensors, dict(bundle.meta))


def load_secret(directory: str | os.PathLike, *, key_id: str, expect_scheme: str | None = None,
                passphrase: bytes | None = None, allow_insecure: bool = False) -> SecretKey:
    """Read ``secret.key`` and check it is the key ``key_id`` (the model's key).

    Args:
        directory: a directory written by :func:`save_model`.
        key_id: the model's key id (``LoadedModel.key_id``).
        expect_scheme: refuse a key of any other scheme.
        passphrase: opens a sealed key.
        allow_insecure: accept parameters below 128-bit security.

    Raises:
        FileNotFoundError: no secret key file there.
        he_core.KeyMissingError: the key is sealed and no passphrase was given.
        he_core.FormatError: corrupt file, wrong scheme, a key other than ``key_id``,
            wrong passphrase, or insecure parameters not allowed.
    """
    path = Path(directory) / SECRET_FILE
    if not path.exists():
        raise FileNotFoundError(f"cannot load secret key: {path} does not exist")
    return serialization.load(path, expect_kind="secret_key", expect_scheme=expect_scheme, expect_key_id=key_id,
                              passphrase=passphrase, allow_insecure=allow_insecure)


def apply_tensors(model: Module, tensors: dict[str, EncTensor]) -> Module:
    """Replace the model's parameter values by the loaded tensors, checking names and shapes.

    Raises:
        ValueError: a parameter is missing, extra, or of another shape.
    """
    params = dict(model.named_parameters())
    if set(params) != set(tensors):
        raise ValueError(f"cannot load model: saved parameters {sorted(tensors)} do not match the "
                         f"architecture's {sorted(params)}")
    for name, p in params.items():
        if tensors[name].shape != p.value.shape:
            raise ValueError(f"cannot load model: parameter {name} has shape {tensors[name].shape}, "
                             f"the architecture expects {p.value.shape}")
        p.value = tensors[name]
    return model
