"""Writing one object (ciphertext, key, requirements, bundle) as the bytes of a henn file.

The public face is :func:`he_core.serialization.dumps`; this module builds the header
and the array list :mod:`he_core.formats.container` packs. Every file records the full
parameter set of its object: the one passed as ``params=``, else the one the object
carries, else its scheme's default set when that is the one it uses.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .bundle import Bundle, Serialisable
from .ciphertext import Ciphertext
from .errors import HEError
from .formats import container, sealed, signing
from .formats.signing import SigningKey
from .formats.tree import TreeEncoder
from .keys import KeyRequirements, PublicKeys, SecretKey, SwitchKey
from .params import Parameters
from .registry import scheme_class
from .scheme import Scheme

SEALED_ARRAY = "sealed"


def _resolve_params(scheme: str, params_id: str, carried: Parameters | None, given: Any) -> Parameters:
    """The parameter set to record: ``given``, else ``carried``, else the scheme's default set.

    Raises:
        TypeError: ``given`` is neither a Scheme nor Parameters.
        ValueError: ``given`` is another set than the object's, or no set is known.
    """
    if given is not None:
        params = given.params if isinstance(given, Scheme) else given
        if not isinstance(params, Parameters):
            raise TypeError(f"cannot serialise: params= must be a Scheme or Parameters, got {type(given).__name__}")
        if params.param_id != params_id:
            raise ValueError(f"cannot serialise: the object uses parameter set {params_id}, "
                             f"params= is {params.param_id}")
        return params
    if isinstance(carried, Parameters) and carried.param_id == params_id:
        return carried
    default = _default_params(scheme)
    if default is not None and default.param_id == params_id:
        return default
    raise ValueError(f"cannot serialise: parameter set {params_id} of scheme {scheme!r} is unknown here: the "
                     "object does not carry it; pass params=<scheme or parameters>")


def _default_params(scheme: str) -> Parameters | None:
    """The scheme's default parameter set, or ``None`` when the scheme or its default cannot be made here."""
    try:
        return scheme_class(scheme).params_class()
    except (HEError, TypeError, ValueError):  # unknown scheme, or a class without usable defaults
        return None


def dumps(obj: Serialisable, *, params: Any = None, signer: SigningKey | None = None,
          passphrase: bytes | None = None) -> bytes:
    """Serialise one object.

    Args:
        obj: a Ciphertext, SecretKey, PublicKeys, SwitchKey, KeyRequirements or Bundle.
        params: the scheme (or its Parameters) the object belongs to; optional when the
            object carries its parameter set (everything a scheme makes or a file
            gives does) or uses its scheme's default set.
        signer: the owner's signing key; the file then carries its signature.
        passphrase: seal a secret key under this passphrase (scrypt + AES-256-GCM, see
            :mod:`he_core.formats.sealed`); secret keys only.

    Returns:
        The file bytes.

    Raises:
        TypeError: an unsupported object, payload value or array dtype, a passphrase for
            something other than a secret key, or a signer that is not a SigningKey.
        ValueError: the parameter set is unknown, the object is inconsistent, or the
            passphrase is empty.
    """
    if signer is not None and not isinstance(signer, SigningKey):
        raise TypeError(f"cannot serialise: signer must be a SigningKey, got {type(signer).__name__}")
    if passphrase is not None:
        return _dumps_sealed(obj, params, signer, passphrase)
    enc = TreeEncoder()
    header = _header(obj, enc, params)
    header["format"] = "henn"
    return container.pack(header, enc.arrays, signer, seeded=holds_seeded(header),
                          seeded_keys=holds_seeded_keys(header))


#: File kinds whose top-level ``wire`` names a key's wire form (any other kind's names a ciphertext's).
KEY_KINDS = ("public_keys", "switch_key", "secret_key")


def holds_seeded(header: dict[str, Any]) -> bool:
    """Whether a file's header holds a ciphertext in its seeded wire form (its own or a bundle entry's)."""
    items = header.get("items")
    entries = ([] if header.get("kind") in KEY_KINDS else [header]) + \
        (list(items.values()) if isinstance(items, dict) else [])
    return any(isinstance(e, dict) and "wire" in e for e in entries)


def holds_seeded_keys(header: dict[str, Any]) -> bool:
    """Whether a file's header holds keys in their seeded wire form (its own, or a bundle's public keys')."""
    entries = ([header] if header.get("kind") in KEY_KINDS else []) + [header.get("public")]
    return any(isinstance(e, dict) and "wire" in e for e in entries)


def _dumps_sealed(secret: Any, params: Any, signer: SigningKey | None, passphrase: bytes) -> bytes:
    """A secret key sealed under a passphrase: clear outer header, encrypted inner file."""
    if not isinstance(secret, SecretKey):
        raise TypeError(f"cannot serialise: only secret keys are sealed with a passphrase, not a "
                        f"{type(secret).__name__}")
    signing.check_passphrase(passphrase)
    inner = dumps(secret, params=params)
    header = {"format": "henn", "kind": "secret_key", "key_ids": [secret.key_id], "key_id": secret.key_id,
              **_params_out(secret.scheme, secret.params_id, secret.params, params), "sealed": sealed.new_params()}
    blob = sealed.seal(inner, passphrase, header["sealed"], sealed.associated_data(header))
    return container.pack(header, [(SEALED_ARRAY, np.frombuffer(blob, dtype=np.uint8))], signer)


def _header(obj: Any, enc: TreeEncoder, params: Any) -> dict[str, Any]:
    if isinstance(obj, KeyRequirements):
        return {"kind": "key_requirements", "scheme": None, "key_ids": [], "requirements": _reqs_out(obj)}
    if isinstance(obj, Bundle):
        return _bundle_header(obj, enc, params)
    if isinstance(obj, Ciphertext):
        head = {"kind": "ciphertext", "key_ids": [obj.key_id], **_ct_fields(obj, enc, "ct")}
    elif isinstance(obj, SecretKey):
        head = {"kind": "secret_key", "key_ids": [obj.key_id], "key_id": obj.key_id,
                "data": enc.encode(obj.data, "key"), "requirements": _reqs_out(obj.requirements)}
    elif isinstance(obj, PublicKeys):
        head = {"kind": "public_keys", "key_ids": [obj.key_id], "key_id": obj.key_id,
                **_key_fields(obj, enc, "key", params), "requirements": _reqs_out(obj.requirements)}
    elif isinstance(obj, SwitchKey):
        head = {"kind": "switch_key", "key_ids": [obj.from_key_id, obj.to_key_id], "from_key_id": obj.from_key_id,
                "to_key_id": obj.to_key_id, **_key_fields(obj, enc, "switch", params)}
    else:
        raise TypeError(f"cannot serialise a {type(obj).__name__}; supported: Ciphertext, SecretKey, PublicKeys, "
                        "SwitchKey, KeyRequirements, Bundle")
    head.update(_params_out(obj.scheme, obj.params_id, obj.params, params))
    return head


def _params_out(scheme: str, params_id: str, carried: Parameters | None, given: Any) -> dict[str, Any]:
    params = _resolve_params(scheme, params_id, carried, given)
    return {"scheme": scheme, "params_id": params_id, "params": _fields_of(params)}


_FIELDS_SEEN: dict[str, tuple[Parameters, dict]] = {}


def _fields_of(params: Parameters) -> dict:
    """``params.to_dict()``, kept per parameter set: the header is only read (a key service writes it per answer)."""
    seen = _FIELDS_SEEN.get(params.param_id)
    if seen is None or not (seen[0] is params or seen[0] == params):
        if len(_FIELDS_SEEN) >= 64:
            _FIELDS_SEEN.clear()
        seen = _FIELDS_SEEN[params.param_id] = (params, params.to_dict())
    return seen[1]


def _key_fields(key: PublicKeys | SwitchKey, enc: TreeEncoder, path: str, given: Any) -> dict[str, Any]:
    """A key's data, in its scheme's smaller wire form when it has one (CKKS: switching keys as b and a seed)."""
    params = _resolve_params(key.scheme, key.params_id, key.params, given)
    data, small = scheme_class(key.scheme).key_wire_form(key.data, params)
    return {"wire": "seeded", "data": enc.encode(data, path)} if small else {"data": enc.encode(data, path)}


def _ct_fields(ct: Ciphertext, enc: TreeEncoder, path: str) -> dict[str, Any]:
    shape = tuple(int(s) for s in ct.shape)
    if len(shape) != 2:
        raise ValueError(f"cannot serialise: ciphertext shape {ct.shape} is not (rows, size)")
    fields = {"key_id": ct.key_id, "shape": list(shape), "scale": _number(ct.scale, "scale")}
    small = scheme_class(ct.scheme).wire_form(ct)  # a fresh CKKS encryption: c0 and its seeds
    if small is not None:
        data, meta = small
        return {**fields, "wire": "seeded", "meta": enc.encode(meta, f"{path}/meta"),
                "data": enc.encode(data, f"{path}/data")}
    meta = {k: v for k, v in ct.meta.items() if k != "a_seed"}  # seeds that no longer match stay behind
    return {**fields, "meta": enc.encode(meta, f"{path}/meta"), "data": enc.encode(ct.data, f"{path}/data")}


def wire_nbytes(ct: Ciphertext) -> int:
    """Bytes of ciphertext data ``dumps`` writes for ``ct``: its smaller wire form's (data and seeds) when it has one.

    Counted from what ``ct``'s metadata claims, without re-expanding seeds: a count on the
    key holder's hot path, for ciphertexts it has just made (``dumps`` itself checks them).
    """
    small = scheme_class(ct.scheme).wire_form(ct, check=False)
    if small is None:
        return int(ct.data.nbytes)
    data, meta = small
    return int(data.nbytes) + sum(len(str(s)) // 2 for s in meta.get("a_seed", ()))


def _number(value: Any, what: str) -> int | float:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"cannot serialise: {what} must be a real number, got a bool")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise ValueError(f"cannot serialise: {what} is {value}")
        return float(value)
    raise TypeError(f"cannot serialise: {what} must be a real number, got {type(value).__name__}")


def _bundle_header(bundle: Bundle, enc: TreeEncoder, params: Any) -> dict[str, Any]:
    for name, ct in bundle.ciphertexts.items():
        if not isinstance(name, str) or not isinstance(ct, Ciphertext):
            raise TypeError(f"cannot serialise: bundle entries must be str -> Ciphertext, got {name!r}")
    owners = {(ct.scheme, ct.params_id) for ct in bundle.ciphertexts.values()}
    if len(owners) > 1:
        raise ValueError(f"cannot serialise: a bundle must hold one scheme and parameter set, got {sorted(owners)}")
    items = {name: _ct_fields(ct, enc, f"items/{name}") for name, ct in bundle.ciphertexts.items()}
    head = {"kind": "bundle", "key_ids": bundle.key_ids, "items": items, "meta": enc.encode(bundle.meta, "meta"),
            "public": None}
    if bundle.public is not None:
        head["public"] = _bundle_public(bundle, owners, enc, params)
        owners = {(bundle.public.scheme, bundle.public.params_id)}
    if owners:
        carried = bundle.public.params if bundle.public is not None else None
        for ct in bundle.ciphertexts.values():
            carried = carried or ct.params
        head.update(_params_out(*owners.pop(), carried, params))
    else:
        head["scheme"] = None
    return head


def _bundle_public(bundle: Bundle, owners: set, enc: TreeEncoder, params: Any) -> dict[str, Any]:
    pub = bundle.public
    if not isinstance(pub, PublicKeys):
        raise TypeError(f"cannot serialise: Bundle.public must be PublicKeys, got {type(pub).__name__}")
    if owners - {(pub.scheme, pub.params_id)} or len(bundle.key_ids) > 1:
        raise ValueError(f"cannot serialise: the bundle's public keys (key {pub.key_id[:12]}, params "
                         f"{pub.params_id}) are not the ones its ciphertexts are under")
    return {"key_id": pub.key_id, **_key_fields(pub, enc, "public", params),
            "requirements": _reqs_out(pub.requirements)}


def _reqs_out(req: KeyRequirements) -> dict[str, Any]:
    out = {"sizes": list(req.sizes), "rotations": list(req.rotations), "multiply": bool(req.multiply)}
    if req.minimal:  # written only when set: files from before the field read the same
        out["minimal"] = True
    if req.transforms:  # likewise
        out["transforms"] = list(req.transforms)
    if req.coefficient_moves:  # likewise
        out["coefficient_moves"] = True
    return out
