"""A model's life across parties: key generation, encryption, hand-over, re-keying, decryption.

Roles:

* the **owner** holds the secret key(s). It generates keys (:func:`keygen`), encrypts
  its plaintext model (:func:`encrypt_model`), moves an encrypted model from one of its
  keys to another without decrypting it (:func:`rekey_model`) and finally decrypts
  (:func:`decrypt_model`);
* a **trainer** receives an encrypted model that carries the public keys it is under
  (:func:`load_encrypted_model`) and computes on it with public material only. Code
  running for a trainer wraps itself in :func:`public_only`, which makes every attempt
  to read a secret key fail loudly.

The owner also has a signing identity (:func:`owner_init`: an Ed25519 key pair in an
owner directory, ``signing.key`` and ``owner.pub``). Files it signs (``signer=``) can be
checked by anyone holding ``owner.pub`` (``owner_key=``), so a trainer can tell the
owner's keys and models from substituted ones.

On disk a key directory holds ``public.henn`` (scheme, parameters, public and
evaluation keys: safe to share) and ``secret.henn`` (owner-only, mode ``0o600``,
optionally sealed under a passphrase; :func:`destroy_secret` overwrites and removes
it). A plaintext model is an ``.npz`` of named weight arrays plus a ``__meta__`` entry
with UTF-8 JSON metadata (see :func:`write_plain_model`). An encrypted model is a
:class:`he_core.serialization.Bundle`. Files whose parameters give less than 128-bit
security (``vhe``, ``plain``, toy CKKS rings) load only with ``allow_insecure=True``.

Only the ``he_core`` interface and registry are used: any registered scheme works.

One module per idea; every name is importable from here:

* :mod:`.roles` -- :func:`public_only`;
* :mod:`.identity` -- the owner's signing identity;
* :mod:`.keydir` -- key directories: keygen, loading, destroying;
* :mod:`.plain_model` -- the plaintext ``.npz`` model;
* :mod:`.encrypted_model` -- encrypting, loading, saving and decrypting a model;
* :mod:`.rekey` -- switch keys and re-keying;
* :mod:`.migration` -- key directories and models from before derived key ids.
"""
from __future__ import annotations

from he_core import KeyMissingError

from .encrypted_model import (
    MODEL_FILE,
    MODEL_FORMAT,
    EncryptedModel,
    decrypt_model,
    encrypt_model,
    load_encrypted_model,
    required_sizes,
    save_encrypted_model,
)
from .identity import (
    OWNER_PUB_FILE,
    SIGNING_KEY_FILE,
    load_owner_key,
    load_signer,
    owner_init,
)
from .keydir import (
    DEFAULT_DEPTH,
    PUBLIC_FILE,
    SECRET_FILE,
    destroy_secret,
    keygen,
    load_owner,
    load_public,
    load_secret,
    read_passphrase,
    scheme_for,
)
from .migration import Migration, migrate_keys, migrate_model
from .plain_model import (
    MAX_PLAIN_MODEL_BYTES,
    META_ENTRY,
    PlainModel,
    read_plain_model,
    write_plain_model,
)
from .rekey import make_switch_key, rekey_model
from .roles import public_only

# Loaders that take a path and may see hostile bytes (fuzzed by fuzz/run_loaders.py).
FILE_LOADERS = ("load_encrypted_model", "read_plain_model", "load_public")

__all__ = [
    "DEFAULT_DEPTH", "FILE_LOADERS", "MAX_PLAIN_MODEL_BYTES", "META_ENTRY", "MODEL_FILE", "MODEL_FORMAT",
    "OWNER_PUB_FILE", "PUBLIC_FILE", "SECRET_FILE", "SIGNING_KEY_FILE", "EncryptedModel", "KeyMissingError",
    "Migration", "PlainModel", "decrypt_model", "destroy_secret", "encrypt_model", "keygen", "load_encrypted_model",
    "load_owner", "load_owner_key", "load_public", "load_secret", "load_signer", "make_switch_key", "migrate_keys",
    "migrate_model", "owner_init", "public_only", "read_passphrase", "read_plain_model", "rekey_model",
    "required_sizes", "save_encrypted_model", "scheme_for", "write_plain_model",
]
