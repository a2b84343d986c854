"""Reading one henn file back into an object, trusting nothing in it.

The public face is :func:`he_core.serialization.loads`. The checks, in order: the
envelope (:mod:`he_core.formats.container`: lengths, digest, an owner's signature when
one is required), the header's kind, scheme and key ids against the caller's
expectations, the recorded parameter set (re-created through the registry, hashed
again to its id, refused below 128-bit security unless the caller allows it), then
every field and array of the object. Public keys must carry the key id derived from
their material. Every problem raises :class:`~he_core.errors.FormatError` naming it;
a loaded object carries its parameter set (``obj.params``).
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .bundle import Bundle, Serialisable
from .ciphertext import Ciphertext
from .dumping import SEALED_ARRAY, holds_seeded, holds_seeded_keys
from .errors import FormatError, KeyMissingError, SecurityWarning
from .formats import container, sealed, signing
from .formats.signing import VerifyKey
from .formats.tree import TreeDecoder
from .keys import KeyRequirements, PublicKeys, SecretKey, SwitchKey, derive_key_id
from .params import Parameters
from .registry import scheme_class

KINDS = ("ciphertext", "secret_key", "public_keys", "switch_key", "key_requirements", "bundle")
MAX_ID = 256
SECURE_BITS = 128
MIGRATE_KEYS = "henn migrate --keys KEY_DIR [--model FILE ...]"


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
        The object, carrying its parameter set (``obj.params``; a bundle's ciphertexts
        and public keys each carry it).

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
    if bool(env.flags & container.FLAG_SEEDED) != holds_seeded(header):
        raise FormatError("cannot load: the file's seeded flag and its ciphertexts' wire forms disagree")
    if bool(env.flags & container.FLAG_SEEDED_KEYS) != holds_seeded_keys(header):
        raise FormatError("cannot load: the file's seeded-keys flag and its keys' wire forms disagree")
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
    scheme, params = _params_in(header, allow_insecure)
    params_id = params.param_id
    if kind == "ciphertext":
        ct = _ct(header, dec, scheme, params, "the ciphertext")
        _check_key_ids(header, [ct.key_id])
        return ct
    if kind == "bundle":
        return _bundle(header, dec, scheme, params)
    if kind == "switch_key":
        sk = SwitchKey(scheme, params_id, _id(header, "from_key_id"), _id(header, "to_key_id"),
                       _key_data(header, dec, scheme, params, "the switch key data"), params)
        _check_key_ids(header, [sk.from_key_id, sk.to_key_id])
        return sk
    if kind == "secret_key":
        if "wire" in header:
            raise FormatError("cannot load: a secret key has no smaller wire form")
        data = dec.decode(header.get("data"), "the key data")
    else:
        data = _key_data(header, dec, scheme, params, "the key data")
    cls = SecretKey if kind == "secret_key" else PublicKeys
    key = cls(scheme, params_id, _id(header, "key_id"), data, _reqs_in(_field(header, "requirements", dict)), params)
    _check_key_ids(header, [key.key_id])
    return key


def _key_data(fields: dict, dec: TreeDecoder, scheme: str, params: Parameters, what: str) -> Any:
    """A public key set's or switch key's data, whole again when the file holds it seeded (the scheme expands it)."""
    wire = fields.get("wire")
    if "wire" in fields and wire != "seeded":  # null too: the key says it has a wire form and names none
        raise FormatError(f"cannot load: {what} has an unknown wire form {str(wire)[:40]!r}")
    return scheme_class(scheme).key_from_wire_form(params, dec.decode(fields.get("data"), what), wire == "seeded")


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


def _params_in(header: dict, allow_insecure: bool) -> tuple[str, Parameters]:
    """The scheme name and the recorded parameter set, re-created and checked (its id, its security)."""
    scheme = _id(header, "scheme")
    params_id = _id(header, "params_id")
    values = _field(header, "params", dict)
    try:
        params_class = scheme_class(scheme).params_class
    except Exception as exc:  # noqa: BLE001 - unknown scheme, broken plugin: all a format problem here
        raise FormatError(f"cannot load: wrong or unknown scheme {scheme!r}: {exc}") from None
    known = _PARAMS_SEEN.get((scheme, params_id))
    if known is not None and known[0] is params_class and _same_json(known[1], values):
        params = known[2]  # these exact values were re-created, validated and hashed to this id before
    else:
        params = _new_params(scheme, params_class, params_id, values)
    _check_security(params, allow_insecure)
    return scheme, params


#: Parameter sets already re-created from a file, by (scheme, id): a key service reads the
#: same set in every request, and re-creating it (validation, hash) cost ~100 us each time.
_PARAMS_SEEN: dict[tuple[str, str], tuple[type, Any, Parameters]] = {}
_PARAMS_SEEN_MAX = 64


def _new_params(scheme: str, params_class: type, params_id: str, values: dict) -> Parameters:
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
    if len(_PARAMS_SEEN) >= _PARAMS_SEEN_MAX:
        _PARAMS_SEEN.clear()
    _PARAMS_SEEN[(scheme, params_id)] = (params_class, _frozen_json(values), params)
    return params


def _frozen_json(value: Any) -> Any:
    """A copy of parsed JSON that later changes to the caller's dict cannot reach."""
    if isinstance(value, dict):
        return {k: _frozen_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_frozen_json(v) for v in value]
    return value


def _same_json(a: Any, b: Any) -> bool:
    """Equal parsed JSON, types included (``1``, ``1.0`` and ``true`` differ, as their hashes would)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_json(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return repr(a) == repr(b)  # -0.0 and 0.0 are written (and hashed) differently
    return a == b


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
    scheme, params = _params_in(header, allow_insecure)
    params_id = params.param_id
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


def _ct(fields: dict, dec: TreeDecoder, scheme: str, params: Parameters, what: str) -> Ciphertext:
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
    wire = fields.get("wire")
    if wire == "seeded":  # the uniform halves come back from their seeds (the scheme checks their form)
        data = scheme_class(scheme).from_wire_form(params, data, meta)
    elif wire is not None:
        raise FormatError(f"cannot load: {what} has an unknown wire form {str(wire)[:40]!r}")
    return Ciphertext(scheme, params.param_id, _id(fields, "key_id"), tuple(shape), scale, data, meta, params)


def _bundle(header: dict, dec: TreeDecoder, scheme: str | None, params: Parameters | None) -> Bundle:
    items = _field(header, "items", dict)
    if scheme is None and items:
        raise FormatError("cannot load: a bundle with ciphertexts must name its scheme")
    cts = {name: _ct(fields, dec, scheme, params, f"bundle entry {name!r}") for name, fields in items.items()}
    meta = dec.decode(header.get("meta"), "the bundle metadata")
    if not isinstance(meta, dict):
        raise FormatError("cannot load: the bundle metadata is not a dict")
    bundle = Bundle(cts, meta, _bundle_public_in(header, dec, scheme, params))
    _check_key_ids(header, bundle.key_ids)
    if bundle.public is not None and len(bundle.key_ids) > 1:
        raise FormatError(f"cannot load: the bundle's public keys are for key {bundle.public.key_id}, "
                          f"its ciphertexts are under {', '.join(bundle.key_ids)}")
    return bundle


def _bundle_public_in(header: dict, dec: TreeDecoder, scheme: str | None,
                      params: Parameters | None) -> PublicKeys | None:
    fields = header.get("public")
    if fields is None:
        return None
    if not isinstance(fields, dict) or scheme is None or params is None:
        raise FormatError("cannot load: the bundle's public keys are malformed")
    data = _key_data(fields, dec, scheme, params, "the bundle's public keys")
    return PublicKeys(scheme, params.param_id, _id(fields, "key_id"), data,
                      _reqs_in(_field(fields, "requirements", dict)), params)


def _reqs_in(fields: dict) -> KeyRequirements:
    sizes, rotations, multiply = fields.get("sizes"), fields.get("rotations"), fields.get("multiply")
    minimal, transforms = fields.get("minimal", False), fields.get("transforms", [])
    moves = fields.get("coefficient_moves", False)
    ok = (isinstance(sizes, list) and isinstance(rotations, list) and isinstance(multiply, bool)
          and isinstance(minimal, bool) and isinstance(transforms, list) and isinstance(moves, bool)
          and all(isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63
                  for v in sizes + rotations + transforms))
    if not ok:
        raise FormatError("cannot load: malformed key requirements")
    try:
        req = KeyRequirements(tuple(sizes), tuple(rotations), multiply, minimal, tuple(transforms), moves)
    except ValueError as exc:
        raise FormatError(f"cannot load: invalid key requirements: {exc}") from None
    if list(req.sizes) != sizes or list(req.rotations) != rotations or list(req.transforms) != transforms:
        raise FormatError("cannot load: key requirements are not in canonical form")
    return req
