"""Re-keying: move an encrypted model from one of the owner's keys to another without decrypting.

The owner makes a switch key from two of its key directories (:func:`make_switch_key`);
anyone holding it, the model and the target's public keys moves every tensor
(:func:`rekey_model`), inside :func:`henn.lifecycle.public_only` if they like.
"""
from __future__ import annotations

from typing import Any

import he_core
from he_core import Capability, MismatchError, PublicKeys
from he_core import serialization as ser

from .encrypted_model import MODEL_FORMAT, EncryptedModel
from .keydir import load_owner, scheme_for


def make_switch_key(from_dir: Any, to_dir: Any, *, rng: Any = None, passphrase: bytes | None = None,
                    allow_insecure: bool = False) -> he_core.SwitchKey:
    """Owner: public material that moves ciphertexts from the key of ``from_dir`` to that of ``to_dir``.

    ``passphrase`` opens both secret keys if they are sealed (one owner, one passphrase).
    """
    scheme, _, old = load_owner(from_dir, passphrase, allow_insecure=allow_insecure)
    _, _, new = load_owner(to_dir, passphrase, allow_insecure=allow_insecure)
    scheme.require(Capability.REKEY, "this scheme cannot move ciphertexts to another key without decrypting")
    return scheme.make_switch_key(old, new, rng=rng)


def rekey_model(model: EncryptedModel, switch_key: he_core.SwitchKey, new_public: PublicKeys) -> EncryptedModel:
    """Anyone holding the switch key: move every tensor to the new key without decrypting.

    Raises:
        MismatchError: the switch key does not start at the model's key, or ``new_public``
            is not the switch key's target.
        CapabilityError: the scheme cannot switch keys.
    """
    model.scheme.require(Capability.REKEY, "this scheme cannot move ciphertexts to another key without decrypting")
    if model.bundle.key_ids != [switch_key.from_key_id]:
        raise MismatchError(f"cannot rekey the model: it is under key {', '.join(model.bundle.key_ids)}, "
                            f"the switch key starts from key {switch_key.from_key_id}")
    if new_public.key_id != switch_key.to_key_id or new_public.params_id != switch_key.params_id:
        raise MismatchError(f"cannot rekey the model: the switch key leads to key {switch_key.to_key_id}, "
                            f"the public keys given are for key {new_public.key_id}")
    cts = {name: model.scheme.rekey(ct, switch_key) for name, ct in model.bundle.ciphertexts.items()}
    meta = dict(model.bundle.meta)
    if meta.get("format") == MODEL_FORMAT:  # other bundles' metadata is theirs: leave it as it is
        meta["key_history"] = list(meta.get("key_history", [])) + [new_public.key_id]
    return EncryptedModel(scheme_for(new_public), ser.Bundle(cts, meta, new_public))
