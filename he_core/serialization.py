"""Saving and loading ciphertexts, keys and encrypted bundles, with no pickle and no trust.

One file holds one object: a :class:`~he_core.ciphertext.Ciphertext`, a
:class:`~he_core.keys.SecretKey`, :class:`~he_core.keys.PublicKeys`,
:class:`~he_core.keys.SwitchKey`, :class:`~he_core.keys.KeyRequirements` or a
:class:`Bundle` (named ciphertexts plus JSON metadata: an encrypted model). The byte
layout is in :mod:`he_core.formats.container` and ``docs/formats.md``.

Every file records the full parameter set of its scheme. Loading re-creates the
parameters through the scheme registry and checks they still hash to the recorded
``params_id``, so edited parameters are refused; a set below 128-bit security loads
only when the caller asks for it (``allow_insecure=True``). Public keys (alone or
attached to a bundle) must carry the key id derived from their material, so a key
cannot be passed off under another key's id. Files may be signed by the owner's
Ed25519 key (:mod:`he_core.formats.signing`) and secret keys sealed under a passphrase
(:mod:`he_core.formats.sealed`). Every problem on load raises
:class:`~he_core.errors.FormatError` naming it.

Example::

    blob = dumps(ct, params=scheme, signer=owner)   # or dumps(ct) once the params are known here
    ct2 = loads(blob, expect_kind="ciphertext", expect_key_id=ct.key_id, owner_key=owner.verify_key)
    save(keys.secret, "owner/secret.henn", passphrase=b"...")   # written 0o600, always
"""
from __future__ import annotations

import dataclasses
import math
import os
import secrets
import stat
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np

from .ciphertext import Ciphertext
from .errors import FormatError, KeyMissingError, SecurityWarning
from .formats import container, sealed, signing
from .formats.signing import SigningKey, VerifyKey
from .formats.tree import TreeDecoder, TreeEncoder
from .keys import KeyRequirements, PublicKeys, SecretKey, SwitchKey, derive_key_id
from .params import Parameters

KINDS = ("ciphertext", "secret_key", "public_keys", "switch_key", "key_requirements", "bundle")
MAX_ID = 256
SECURE_BITS = 128
SEALED_ARRAY = "sealed"
MIGRATE_KEYS = "henn migrate --keys KEY_DIR [--model FILE ...]"


@dataclasses.dataclass
class Bundle:
    """Named ciphertexts of one scheme and parameter set, plus JSON metadata.

    Attributes:
        ciphertexts: name -> ciphertext (an encrypted model stores one per weight tensor).
        meta: JSON-compatible description (architecture, shapes, training state...).
        public: optionally, the public keys the ciphertexts are under, so a party that
            receives the bundle can compute on it without a separate key file. Must be
            of the same scheme, parameter set and key as every ciphertext.
    """

    ciphertexts: dict[str, Ciphertext] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    public: PublicKeys | None = None

    @property
    def key_ids(self) -> list[str]:
        """The distinct keys the ciphertexts (and the attached public keys) are under, sorted."""
        ids = {ct.key_id for ct in self.ciphertexts.values()}
        if self.public is not None:
            ids.add(self.public.key_id)
        return sorted(ids)


Serialisable = Ciphertext | SecretKey | PublicKeys | SwitchKey | KeyRequirements | Bundle

# ---------------------------------------------------------------------------- parameter sets
# Objects carry only a params_id; the file needs the full set. Sets seen here (passed
# explicitly, registered, or loaded from a file) are remembered by id.
_KNOWN_PARAMS: dict[str, Parameters] = {}


def remember_params(params: Parameters) -> None:
    """Make a parameter set known, so objects that use it can be saved without ``params=``."""
    if not isinstance(params, Parameters):
        raise TypeError(f"expected a Parameters object, got {type(params).__name__}")
    _KNOWN_PARAMS.setdefault(params.param_id, params)


def params_for(params_id: str) -> Parameters:
    """The parameter set with this id (one seen in this process), e.g. to build a scheme after loading keys.

    Raises:
        KeyError: no such parameter set is known here.
    """
    if params_id not in _KNOWN_PARAMS:
        raise KeyError(f"cannot find parameter set {params_id}: it was neither loaded nor remembered here")
    return _KNOWN_PARAMS[params_id]


def _resolve_params(scheme: str, params_id: str, given: Any) -> Parameters:
    if given is not None:
        params = getattr(given, "params", given)  # a Scheme or a Parameters
        if not isinstance(params, Parameters):
            raise TypeError(f"cannot serialise: params= must be a Scheme or Parameters, got {type(given).__name__}")
        if params.param_id != params_id:
            raise ValueError(f"cannot serialise: the object uses parameter set {params_id}, "
                             f"params= is {params.param_id}")
        remember_params(params)
        return params
    if params_id in _KNOWN_PARAMS:
        return _KNOWN_PARAMS[params_id]
    default = _default_params(scheme)
    if default is not None and default.param_id == params_id:
        return default
    raise ValueError(f"cannot serialise: parameter set {params_id} of scheme {scheme!r} is unknown here; "
                     "pass params=<scheme or parameters> (or call remember_params)")


def _default_params(scheme: str) -> Parameters | None:
    from .registry import scheme_class  # late: the registry imports every scheme module
    try:
        return scheme_class(scheme).params_class()
    except Exception:  # noqa: BLE001 - any failure just means "no default to try"
        return None


# ---------------------------------------------------------------------------- dumping
def dumps(obj: Serialisable, *, params: Any = None, signer: SigningKey | None = None,
          passphrase: bytes | None = None) -> bytes:
    """Serialise one object.

    Args:
        obj: a Ciphertext, SecretKey, PublicKeys, SwitchKey, KeyRequirements or Bundle.
        params: the scheme (or its Parameters) the object belongs to; optional once the
            parameter set is known in this process (see :func:`remember_params`).
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
    return container.pack(header, enc.arrays, signer)


def _dumps_sealed(secret: Any, params: Any, signer: SigningKey | None, passphrase: bytes) -> bytes:
    """A secret key sealed under a passphrase: clear outer header, encrypted inner file."""
    if not isinstance(secret, SecretKey):
        raise TypeError(f"cannot serialise: only secret keys are sealed with a passphrase, not a "
                        f"{type(secret).__name__}")
    signing.check_passphrase(passphrase)
    inner = dumps(secret, params=params)
    header = {"format": "henn", "kind": "secret_key", "key_ids": [secret.key_id], "key_id": secret.key_id,
              **_params_out(secret.scheme, secret.params_id, params), "sealed": sealed.new_params()}
    blob = sealed.seal(inner, passphrase, header["sealed"], sealed.associated_data(header))
    return container.pack(header, [(SEALED_ARRAY, np.frombuffer(blob, dtype=np.uint8))], signer)


def _header(obj: Any, enc: TreeEncoder, params: Any) -> dict[str, Any]:
    if isinstance(obj, KeyRequirements):
        return {"kind": "key_requirements", "scheme": None, "key_ids": [], "requirements": _reqs_out(obj)}
    if isinstance(obj, Bundle):
        return _bundle_header(obj, enc, params)
    if isinstance(obj, Ciphertext):
        head = {"kind": "ciphertext", "key_ids": [obj.key_id], **_ct_fields(obj, enc, "ct")}
    elif isinstance(obj, (SecretKey, PublicKeys)):
        head = {"kind": "secret_key" if isinstance(obj, SecretKey) else "public_keys", "key_ids": [obj.key_id],
                "key_id": obj.key_id, "data": enc.encode(obj.data, "key"), "requirements": _reqs_out(obj.requirements)}
    elif isinstance(obj, SwitchKey):
        head = {"kind": "switch_key", "key_ids": [obj.from_key_id, obj.to_key_id], "from_key_id": obj.from_key_id,
                "to_key_id": obj.to_key_id, "data": enc.encode(obj.data, "switch")}
    else:
        raise TypeError(f"cannot serialise a {type(obj).__name__}; supported: Ciphertext, SecretKey, PublicKeys, "
                        "SwitchKey, KeyRequirements, Bundle")
    head.update(_params_out(obj.scheme, obj.params_id, params))
    return head


def _params_out(scheme: str, params_id: str, given: Any) -> dict[str, Any]:
    params = _resolve_params(scheme, params_id, given)
    return {"scheme": scheme, "params_id": params_id, "params": params.to_dict()}


def _ct_fields(ct: Ciphertext, enc: TreeEncoder, path: str) -> dict[str, Any]:
    shape = tuple(int(s) for s in ct.shape)
    if len(shape) != 2:
        raise ValueError(f"cannot serialise: ciphertext shape {ct.shape} is not (rows, size)")
    return {"key_id": ct.key_id, "shape": list(shape), "scale": _number(ct.scale, "scale"),
            "meta": enc.encode(ct.meta, f"{path}/meta"), "data": enc.encode(ct.data, f"{path}/data")}


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
        head["public"] = _bundle_public(bundle, owners, enc)
        owners = {(bundle.public.scheme, bundle.public.params_id)}
    if owners:
        head.update(_params_out(*owners.pop(), params))
    else:
        head["scheme"] = None
    return head


def _bundle_public(bundle: Bundle, owners: set, enc: TreeEncoder) -> dict[str, Any]:
    pub = bundle.public
    if not isinstance(pub, PublicKeys):
        raise TypeError(f"cannot serialise: Bundle.public must be PublicKeys, got {type(pub).__name__}")
    if owners - {(pub.scheme, pub.params_id)} or len(bundle.key_ids) > 1:
        raise ValueError(f"cannot serialise: the bundle's public keys (key {pub.key_id[:12]}, params "
                         f"{pub.params_id}) are not the ones its ciphertexts are under")
    return {"key_id": pub.key_id, "data": enc.encode(pub.data, "public"), "requirements": _reqs_out(pub.requirements)}


def _reqs_out(req: KeyRequirements) -> dict[str, Any]:
    out = {"sizes": list(req.sizes), "rotations": list(req.rotations), "multiply": bool(req.multiply)}
    if req.minimal:  # written only when set: files from before the field read the same
        out["minimal"] = True
    if req.transforms:  # likewise
        out["transforms"] = list(req.transforms)
    return out


# ---------------------------------------------------------------------------- loading
def loads(data: bytes, *, expect_kind: str | None = None, expect_scheme: str | None = None,
          expect_key_id: str | None = None, owner_key: VerifyKey | None = None, allow_insecure: bool = False,
          passphrase: bytes | None = None, verify_key_id: bool = True) -> Serialisable:
    """Parse and verify one object.

    Args:
        data: file bytes from :func:`dumps`.
        expect_kind: refuse anything but this kind (see :data:`KINDS`).
        expect_scheme: refuse objects of another scheme.
        expect_key_id: refuse objects not under this key. A switch key matches its
            source key; a bundle matches when every ciphertext is under this key.
        owner_key: require a valid signature by this key, checked before the header is
            parsed. Without it a signature is neither required nor checked.
        allow_insecure: accept a parameter set below 128-bit security (toy CKKS rings,
            ``vhe``, ``plain``, or any set made with ``allow_insecure=True``).
        passphrase: opens a sealed secret key (ignored, with a warning, for one that is not sealed).
        verify_key_id: check that public keys carry the id derived from their material.
            ``False`` only to migrate files written before ids were derived.

    Returns:
        The object; its parameter set becomes known here (see :func:`params_for`).

    Raises:
        FormatError: anything wrong with the bytes, a missing, foreign or bad signature,
            insecure parameters not allowed, a key id that does not match its key, a
            wrong passphrase or a failed expectation, named in the message.
        KeyMissingError: a sealed secret key and no passphrase.
    """
    env = container.envelope(data)
    if owner_key is not None:
        signing.require_signature(env, owner_key)
    header, arrays = container.parse(env)
    kind = _check_expectations(header, expect_kind, expect_scheme, expect_key_id)
    if kind == "secret_key" and "sealed" in header:
        return _unseal(header, arrays, passphrase, allow_insecure)
    decoder = TreeDecoder(arrays)
    obj = _build(kind, header, decoder, allow_insecure)
    decoder.check_all_used()
    if kind == "secret_key" and passphrase is not None:
        warnings.warn(f"secret key {obj.key_id} is not sealed, the passphrase given is not needed: anyone who can "
                      "read the file has the key (re-save it with a passphrase)", SecurityWarning, stacklevel=2)
    public = obj.public if isinstance(obj, Bundle) else obj
    if verify_key_id and isinstance(public, PublicKeys):
        _check_derived_id(public, env.version)
    return obj


def _check_expectations(header: dict, kind: Any, scheme: Any, key_id: Any) -> str:
    found = header.get("kind")
    if header.get("format") != "henn" or found not in KINDS:
        raise FormatError(f"cannot load: unknown object kind {found!r}")
    if kind is not None and found != kind:
        raise FormatError(f"cannot load: wrong kind: expected a {kind}, the file holds a {found}")
    if scheme is not None and found != "key_requirements" and header.get("scheme") != scheme:
        raise FormatError(f"cannot load: wrong scheme: expected {scheme!r}, the file is for {header.get('scheme')!r}")
    if key_id is not None:
        ids = header.get("key_ids")
        if not isinstance(ids, list):
            raise FormatError("cannot load: the header has no key id list")
        relevant = ids[:1] if found == "switch_key" else ids
        if not relevant or any(i != key_id for i in relevant):
            raise FormatError(f"cannot load: wrong key: expected key id {key_id}, the file is under "
                              f"{', '.join(map(str, ids)) or 'no key'}")
    return found


def _build(kind: str, header: dict, dec: TreeDecoder, allow_insecure: bool) -> Serialisable:
    if kind == "key_requirements":
        return _reqs_in(_field(header, "requirements", dict))
    if kind == "bundle" and header.get("scheme") is None:
        return _bundle(header, dec, None, None)
    scheme, params_id = _params_in(header, allow_insecure)
    if kind == "ciphertext":
        ct = _ct(header, dec, scheme, params_id, "the ciphertext")
        _check_key_ids(header, [ct.key_id])
        return ct
    if kind == "bundle":
        return _bundle(header, dec, scheme, params_id)
    if kind == "switch_key":
        sk = SwitchKey(scheme, params_id, _id(header, "from_key_id"), _id(header, "to_key_id"),
                       dec.decode(header.get("data"), "the switch key data"))
        _check_key_ids(header, [sk.from_key_id, sk.to_key_id])
        return sk
    cls = SecretKey if kind == "secret_key" else PublicKeys
    key = cls(scheme, params_id, _id(header, "key_id"), dec.decode(header.get("data"), "the key data"),
              _reqs_in(_field(header, "requirements", dict)))
    _check_key_ids(header, [key.key_id])
    return key


def _field(header: dict, name: str, kind: type | tuple) -> Any:
    value = header.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise FormatError(f"cannot load: header field {name!r} is missing or malformed")
    return value


def _id(header: dict, name: str) -> str:
    value = _field(header, name, str)
    if not value or len(value) > MAX_ID:
        raise FormatError(f"cannot load: header field {name!r} is not a valid id")
    return value


def _check_key_ids(header: dict, ids: list[str]) -> None:
    # The list is what expect_key_id was checked against, so it must agree with the fields.
    if header.get("key_ids") != ids:
        raise FormatError("cannot load: the header's key id list disagrees with its key fields")


def _params_in(header: dict, allow_insecure: bool) -> tuple[str, str]:
    """Re-create the recorded parameter set, check it still hashes to its id and is secure enough."""
    scheme = _id(header, "scheme")
    params_id = _id(header, "params_id")
    values = _field(header, "params", dict)
    from .registry import scheme_class  # late: the registry imports every scheme module
    try:
        params_class = scheme_class(scheme).params_class
    except Exception as exc:  # noqa: BLE001 - unknown scheme, broken plugin: all a format problem here
        raise FormatError(f"cannot load: wrong or unknown scheme {scheme!r}: {exc}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)
            params = params_class.from_dict(values)
            actual = params.param_id
    except Exception as exc:  # noqa: BLE001 - the values are untrusted; any refusal is a format error
        raise FormatError(f"cannot load: invalid {scheme} parameters: {exc}") from None
    if actual != params_id:
        raise FormatError(f"cannot load: the parameters hash to {actual}, the file says {params_id} "
                          "(tampered parameters)")
    _check_security(params, allow_insecure)
    known = _KNOWN_PARAMS.setdefault(params_id, params)
    if known != params:
        raise FormatError(f"cannot load: parameter id {params_id} collides with a different known set")
    return scheme, params_id


def _check_security(params: Parameters, allow_insecure: bool) -> None:
    """Refuse a set below 128-bit security unless the caller opted in.

    A file picks its own parameters, so without this a substituted key or model could
    quietly move the owner to a toy ring, to ``vhe`` or to the cleartext ``plain`` twin.
    """
    if allow_insecure:
        return
    flagged = getattr(params, "allow_insecure", False) is True
    try:
        bits = int(params.security_bits)
    except Exception:  # noqa: BLE001 - a plugin's estimate failing means "unknown", i.e. not secure
        bits = 0
    if flagged or bits < SECURE_BITS:
        why = f"{bits}-bit security, below {SECURE_BITS}" if bits < SECURE_BITS else "made with allow_insecure=True"
        raise FormatError(f"cannot load: the file asks for insecure parameters ({params.param_id}: {why}); pass "
                          "allow_insecure=True (henn commands: --allow-insecure) to load it anyway, for tests and "
                          "experiments only")


def derived_key_id(public: PublicKeys) -> str:
    """The key id ``public`` must carry: :func:`~he_core.keys.derive_key_id` of its material.

    Raises:
        FormatError: the scheme cannot read the key material (untrusted data).
    """
    from .registry import scheme_class  # late: the registry imports every scheme module
    try:
        material = scheme_class(public.scheme).key_id_material(public.data)
        return derive_key_id(public.scheme, public.params_id, material)
    except Exception:  # noqa: BLE001 - untrusted key data the scheme cannot read: a format problem
        raise FormatError("cannot load: the public key material is malformed (no key id can be derived from it)") \
            from None


def _check_derived_id(public: PublicKeys, version: int) -> None:
    """A public key must carry the id derived from its own material, so it cannot pose as another key."""
    derived = derived_key_id(public)
    if derived == public.key_id:
        return
    message = (f"cannot load: the key id does not match the public key material: a substituted or edited key file "
               f"(the file says {public.key_id}, the material gives {derived})")
    if version < 2:
        message += ("; or, if you are its owner, a file written before key ids were derived from the public key "
                    f"(format version {version}): re-derive them with: {MIGRATE_KEYS}")
    raise FormatError(message)


def _unseal(header: dict, arrays: dict, passphrase: bytes | None, allow_insecure: bool) -> SecretKey:
    """Open a sealed secret key: check the clear header, decrypt, load the inner file."""
    scheme, params_id = _params_in(header, allow_insecure)
    key_id = _id(header, "key_id")
    _check_key_ids(header, [key_id])
    params = sealed.check_params(header.get("sealed"))
    blob = arrays.get(SEALED_ARRAY)
    if set(arrays) != {SEALED_ARRAY} or blob.dtype != np.uint8 or blob.ndim != 1:
        raise FormatError("cannot load: a sealed secret key holds exactly one uint8 array, 'sealed'")
    if passphrase is None:
        raise KeyMissingError(f"cannot load the secret key {key_id}: it is sealed with a passphrase; pass it "
                              "(henn commands: --passphrase-file FILE)")
    inner = loads(sealed.unseal(blob.tobytes(), passphrase, params, sealed.associated_data(header)),
                  expect_kind="secret_key", allow_insecure=True)
    if (inner.scheme, inner.params_id, inner.key_id) != (scheme, params_id, key_id):
        raise FormatError(f"cannot load: the sealed secret key is {inner.scheme} key {inner.key_id}, its clear "
                          f"header says {scheme} key {key_id}")
    return inner


def _finite(value: int | float) -> bool:
    """math.isfinite that also refuses an int beyond the float range (it would raise OverflowError)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _ct(fields: dict, dec: TreeDecoder, scheme: str, params_id: str, what: str) -> Ciphertext:
    if not isinstance(fields, dict):
        raise FormatError(f"cannot load: {what} entry is malformed")
    shape = fields.get("shape")
    if (not isinstance(shape, list) or len(shape) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**63 for s in shape)):
        raise FormatError(f"cannot load: {what} has a bad shape {shape!r}")
    scale = fields.get("scale")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not _finite(scale):
        raise FormatError(f"cannot load: {what} has a bad scale {str(scale)[:40]!r}")
    meta = dec.decode(fields.get("meta"), f"{what} metadata")
    if not isinstance(meta, dict):
        raise FormatError(f"cannot load: {what} metadata is not a dict")
    data = dec.decode(fields.get("data"), f"{what} data")
    return Ciphertext(scheme, params_id, _id(fields, "key_id"), tuple(shape), scale, data, meta)


def _bundle(header: dict, dec: TreeDecoder, scheme: str | None, params_id: str | None) -> Bundle:
    items = _field(header, "items", dict)
    if scheme is None and items:
        raise FormatError("cannot load: a bundle with ciphertexts must name its scheme")
    cts = {name: _ct(fields, dec, scheme, params_id, f"bundle entry {name!r}") for name, fields in items.items()}
    meta = dec.decode(header.get("meta"), "the bundle metadata")
    if not isinstance(meta, dict):
        raise FormatError("cannot load: the bundle metadata is not a dict")
    bundle = Bundle(cts, meta, _bundle_public_in(header, dec, scheme, params_id))
    _check_key_ids(header, bundle.key_ids)
    if bundle.public is not None and len(bundle.key_ids) > 1:
        raise FormatError(f"cannot load: the bundle's public keys are for key {bundle.public.key_id}, "
                          f"its ciphertexts are under {', '.join(bundle.key_ids)}")
    return bundle


def _bundle_public_in(header: dict, dec: TreeDecoder, scheme: str | None, params_id: str | None) -> PublicKeys | None:
    fields = header.get("public")
    if fields is None:
        return None
    if not isinstance(fields, dict) or scheme is None:
        raise FormatError("cannot load: the bundle's public keys are malformed")
    data = dec.decode(fields.get("data"), "the bundle's public keys")
    return PublicKeys(scheme, params_id, _id(fields, "key_id"), data, _reqs_in(_field(fields, "requirements", dict)))


def _reqs_in(fields: dict) -> KeyRequirements:
    sizes, rotations, multiply = fields.get("sizes"), fields.get("rotations"), fields.get("multiply")
    minimal, transforms = fields.get("minimal", False), fields.get("transforms", [])
    ok = (isinstance(sizes, list) and isinstance(rotations, list) and isinstance(multiply, bool)
          and isinstance(minimal, bool) and isinstance(transforms, list)
          and all(isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63
                  for v in sizes + rotations + transforms))
    if not ok:
        raise FormatError("cannot load: malformed key requirements")
    try:
        req = KeyRequirements(tuple(sizes), tuple(rotations), multiply, minimal, tuple(transforms))
    except ValueError as exc:
        raise FormatError(f"cannot load: invalid key requirements: {exc}") from None
    if list(req.sizes) != sizes or list(req.rotations) != rotations or list(req.transforms) != transforms:
        raise FormatError("cannot load: key requirements are not in canonical form")
    return req


# ---------------------------------------------------------------------------- files
PathLike = Union[str, "os.PathLike[str]"]


def save(obj: Serialisable, path: PathLike, *, secret: bool = False, params: Any = None,
         signer: SigningKey | None = None, passphrase: bytes | None = None) -> Path:
    """Write one object to ``path`` atomically (a temporary file, then a rename).

    Secret keys are always written owner-only (``0o600``) from the moment the file
    exists; ``secret=True`` does the same for any other object.

    Args:
        obj: what to save (see :func:`dumps`).
        path: destination file; its directory must exist.
        secret: write owner-only even if ``obj`` is not a secret key.
        params, signer, passphrase: as for :func:`dumps` (``passphrase`` seals a secret key).

    Returns:
        The path written.
    """
    blob = dumps(obj, params=params, signer=signer, passphrase=passphrase)
    path = Path(path)
    private = secret or isinstance(obj, SecretKey)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                 0o600 if private else 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load(path: PathLike, *, expect_kind: str | None = None, expect_scheme: str | None = None,
         expect_key_id: str | None = None, owner_key: VerifyKey | None = None, allow_insecure: bool = False,
         passphrase: bytes | None = None, verify_key_id: bool = True) -> Serialisable:
    """Read one object from ``path``; see :func:`loads` for the checks and arguments.

    A secret key file readable by group or others triggers a :class:`SecurityWarning`.

    Raises:
        FormatError: see :func:`loads`; the message ends with the path.
        KeyMissingError: a sealed secret key and no passphrase.
        OSError: the file cannot be read.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        data = handle.read()
        mode = os.fstat(handle.fileno()).st_mode
    try:
        obj = loads(data, expect_kind=expect_kind, expect_scheme=expect_scheme, expect_key_id=expect_key_id,
                    owner_key=owner_key, allow_insecure=allow_insecure, passphrase=passphrase,
                    verify_key_id=verify_key_id)
    except FormatError as exc:
        raise FormatError(f"{exc} [{path}]") from None
    if isinstance(obj, SecretKey) and mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(f"secret key file {path} is accessible to other users (mode {stat.filemode(mode)}); "
                      "chmod 600 it", SecurityWarning, stacklevel=2)
    return obj


def check_signature(data: bytes, owner_key: VerifyKey) -> None:
    """Check only that ``data`` is a file signed by ``owner_key`` (nothing is parsed or built).

    Raises:
        FormatError: a bad envelope, or the signature check of :func:`loads` fails.
    """
    signing.require_signature(container.envelope(data), owner_key)


@dataclasses.dataclass(frozen=True)
class FileInfo:
    """What a file says about itself, read without building (or unsealing) the object.

    Attributes:
        version: container format version (1: written before signatures and derived ids).
        kind, scheme, params_id, key_ids: from the header (unverified beyond the digest).
        signer: fingerprint of the key that signed it, or ``None``; *not* verified here.
        sealed: a secret key sealed under a passphrase.
    """

    version: int
    kind: str
    scheme: str | None
    params_id: str | None
    key_ids: list[str]
    signer: str | None
    sealed: bool


def file_info(data: bytes) -> FileInfo:
    """Describe a file from its envelope and header (for ``henn inspect`` and migration).

    Raises:
        FormatError: the envelope or header is malformed.
    """
    env = container.envelope(data)
    header, _ = container.parse(env)
    kind = _check_expectations(header, None, None, None)
    ids = header.get("key_ids")
    key_ids = [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
    text = [header.get(k) if isinstance(header.get(k), str) else None for k in ("scheme", "params_id")]
    return FileInfo(env.version, kind, text[0], text[1], key_ids, env.signer.hex() if env.signer else None,
                    kind == "secret_key" and "sealed" in header)
