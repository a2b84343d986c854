"""``henn`` sub-commands for keys and the model's life across parties.

Owner commands (they read or write the owner's secret keys or signing key):

* ``henn owner init --out DIR [--passphrase-file F]`` (the signing identity: ``DIR/signing.key``, ``DIR/owner.pub``)
* ``henn keygen --scheme S --out DIR [--sizes N ...] [--model PLAIN.npz] [--param NAME=VALUE ...] [--force]``
* ``henn encrypt-model --model PLAIN.npz --keys DIR --out MODEL.henn``
* ``henn decrypt-model --model MODEL.henn --keys DIR --out PLAIN.npz``
* ``henn switch-key --from DIR_A --to DIR_B --out SWITCH.henn``
* ``henn rekey --model MODEL.henn --from DIR_A --to DIR_B --out MODEL_B.henn``
* ``henn migrate --keys DIR [--owner OWNER_DIR] [--model FILE ...]`` (files from before derived key ids)
(Jobs and the key service trainers refresh through are in :mod:`henn.cli.jobs`:
``henn job create``, ``henn serve-keys``, ``henn job close``.)

Owner commands take ``--passphrase-file F`` (the first line of F opens sealed secret keys
and an encrypted signing key, and seals the secret keys ``keygen`` / ``migrate`` write)
and ``--owner OWNER_DIR`` (sign what they write with the owner's key, and require the
owner's signature on the key files they read). Commands that load keys or models refuse
parameters below 128-bit security (``vhe``, ``plain``, toy CKKS rings) unless given
``--allow-insecure``.

Commands for any party (they never look for a secret key):

* ``henn rekey --model MODEL.henn --switch-key SWITCH.henn --to PUBLIC --out MODEL_B.henn [--owner OWNER.pub]``
* ``henn inspect FILE [--owner OWNER.pub]``

The ``henn`` dispatcher calls :func:`add_parsers`; ``python -m henn.cli.lifecycle`` runs
these commands on their own. Every handler returns a process exit status: 0, or 1
with one ``henn <command>: error: ...`` line on stderr (2 is argparse's usage error).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import he_core
from he_core import serialization as ser
from he_core.formats.signing import SigningKey, VerifyKey
from henn import lifecycle as lc

from .common import EXIT_FAILED, guarded

EXIT_ERROR = EXIT_FAILED  # kept for callers; 2 stays argparse's usage error


def _passphrase(args: argparse.Namespace) -> bytes | None:
    path = getattr(args, "passphrase_file", None)
    return None if path is None else lc.read_passphrase(path)


def _signer(args: argparse.Namespace, passphrase: bytes | None) -> SigningKey | None:
    return None if getattr(args, "owner", None) is None else lc.load_signer(args.owner, passphrase)


def _owner_key(args: argparse.Namespace) -> VerifyKey | None:
    return None if getattr(args, "owner", None) is None else lc.load_owner_key(args.owner)


def _signed(signer: SigningKey | None) -> str:
    return f", signed by owner key {signer.fingerprint}" if signer is not None else ""


def _owner_init(args: argparse.Namespace) -> int:
    passphrase = _passphrase(args)
    key = lc.owner_init(args.out, passphrase)
    sealed = ", encrypted with the passphrase" if passphrase is not None else ""
    print(f"owner init: signing key fingerprint {key.fingerprint}")
    print(f"  private signing key (owner only, mode 600{sealed}): {Path(args.out) / lc.SIGNING_KEY_FILE}")
    print(f"  public key (give it to every trainer): {Path(args.out) / lc.OWNER_PUB_FILE}")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    sizes = set(args.sizes)
    params = _params(args.scheme, args.param)
    if args.model is not None:
        plain = lc.read_plain_model(args.model)
        sizes |= set(lc.required_sizes(plain))
        depth = plain.meta.get("depth")
        if params is None and isinstance(depth, int) and not isinstance(depth, bool) and depth > 0:
            # The model says how many levels one training step needs between refreshes.
            params = he_core.scheme_class(args.scheme).params_for_depth(depth)
    passphrase = _passphrase(args)
    signer = _signer(args, passphrase)
    pair = lc.keygen(args.scheme, args.out, sizes=sorted(sizes), rotations=args.rotations,
                     multiply=not args.no_multiply, force=args.force, params=params, passphrase=passphrase,
                     signer=signer)
    print(f"keygen: {args.scheme} key {pair.public.key_id} (params {pair.public.params_id}, sizes "
          f"{list(pair.public.requirements.sizes)})")
    print(f"  public keys (share them{_signed(signer)}): {Path(args.out) / lc.PUBLIC_FILE}")
    sealed = ", sealed with the passphrase" if passphrase is not None else ""
    print(f"  secret key (owner only, mode 600{sealed}): {Path(args.out) / lc.SECRET_FILE}")
    return 0


def _params(scheme: str, pairs: list[str]) -> object | None:
    """A parameter object from ``NAME=VALUE`` pairs (values read as JSON when they parse), or None."""
    if not pairs:
        return None
    values = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"cannot keygen: --param expects NAME=VALUE, got {pair!r}")
        try:
            values[name] = json.loads(raw)
        except ValueError:
            values[name] = raw
    return he_core.scheme_class(scheme).params_class.from_dict(values)


def _encrypt_model(args: argparse.Namespace) -> int:
    model = lc.read_plain_model(args.model)
    passphrase = _passphrase(args)
    # The owner's own public.henn must be signed by the owner when --owner is given:
    # encrypting under a substituted public key would hand the model to whoever made it.
    scheme, public = lc.load_public(args.keys, owner_key=_owner_key(args), allow_insecure=args.allow_insecure)
    signer = _signer(args, passphrase)
    # Public-key encryption needs nothing secret; schemes without it need the owner's key.
    secret = None
    if not scheme.supports(he_core.Capability.PUBLIC_KEY_ENCRYPT):
        _, _, secret = lc.load_owner(args.keys, passphrase, allow_insecure=args.allow_insecure)
    bundle = lc.encrypt_model(model, scheme, secret=secret)
    lc.save_encrypted_model(args.out, bundle, signer=signer)
    print(f"encrypt-model: {len(bundle.ciphertexts)} tensors under {public.scheme} key {public.key_id}"
          f"{_signed(signer)} -> {args.out}")
    return 0


def _decrypt_model(args: argparse.Namespace) -> int:
    model = lc.load_encrypted_model(args.model, allow_insecure=args.allow_insecure)
    secret = lc.load_secret(args.keys, _passphrase(args), allow_insecure=args.allow_insecure)
    plain = lc.decrypt_model(model, secret, args.keys)
    lc.write_plain_model(args.out, plain)
    print(f"decrypt-model: {len(plain.arrays)} tensors from key {secret.key_id} -> {args.out} (mode 600)")
    return 0


def _switch_key(args: argparse.Namespace) -> int:
    passphrase = _passphrase(args)
    signer = _signer(args, passphrase)
    switch = lc.make_switch_key(args.from_dir, args.to_dir, passphrase=passphrase, allow_insecure=args.allow_insecure)
    ser.save(switch, args.out, signer=signer)
    print(f"switch-key: {switch.from_key_id} -> {switch.to_key_id}{_signed(signer)} -> {args.out}")
    return 0


def _rekey(args: argparse.Namespace) -> int:
    model = lc.load_encrypted_model(args.model, allow_insecure=args.allow_insecure)
    signer = None
    if args.switch_key is not None:
        with lc.public_only("re-keying party"):
            owner_key = _owner_key(args)
            switch = ser.load(args.switch_key, expect_kind="switch_key", owner_key=owner_key,
                              allow_insecure=args.allow_insecure)
            _, target = lc.load_public(args.to_dir, owner_key=owner_key, allow_insecure=args.allow_insecure)
            moved = lc.rekey_model(model, switch, target)
    else:
        moved, switch, signer = _owner_rekey(args, model)
    lc.save_encrypted_model(args.out, moved, signer=signer)
    print(f"rekey: {len(moved.bundle.ciphertexts)} tensors moved from key {switch.from_key_id} to "
          f"{switch.to_key_id} without decryption{_signed(signer)} -> {args.out}")
    return 0


def _owner_rekey(args: argparse.Namespace, model: lc.EncryptedModel) -> tuple:
    """The owner's rekey: make the switch key from both secret keys, then apply it."""
    passphrase = _passphrase(args)
    signer = _signer(args, passphrase)
    _, _, old = lc.load_owner(args.from_dir, passphrase, allow_insecure=args.allow_insecure)
    # Check the model's key before the (possibly costly) switch key is made.
    if model.bundle.key_ids != [old.key_id]:
        raise he_core.MismatchError(f"cannot rekey the model: it is under key {', '.join(model.bundle.key_ids)}, "
                                    f"the --from key directory {args.from_dir} holds key {old.key_id}")
    switch = lc.make_switch_key(args.from_dir, args.to_dir, passphrase=passphrase, allow_insecure=args.allow_insecure)
    _, target = lc.load_public(args.to_dir, owner_key=_owner_key(args), allow_insecure=args.allow_insecure)
    return lc.rekey_model(model, switch, target), switch, signer


def _migrate(args: argparse.Namespace) -> int:
    passphrase = _passphrase(args)
    signer = _signer(args, passphrase)
    migration = lc.migrate_keys(args.keys, passphrase=passphrase, signer=signer, allow_insecure=args.allow_insecure)
    before = ", ".join(migration.old_ids) or "already derived"
    sealed = ", secret key sealed with the passphrase" if passphrase is not None else ""
    print(f"migrate: key directory {args.keys}: key id {before} -> {migration.new_id}{_signed(signer)}{sealed}")
    for path in args.model:
        written = lc.migrate_model(path, migration, signer=signer, allow_insecure=args.allow_insecure)
        print(f"  model {written}: now under key {migration.new_id}{_signed(signer)}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    with lc.public_only("inspecting party"):
        data = Path(args.file).read_bytes()
        info = ser.file_info(data)
        owner_key = _owner_key(args)
        if owner_key is not None:
            ser.check_signature(data, owner_key)
        # Describe whatever the file is (insecure sets and old ids included: said below),
        # a sealed key from its clear header only.
        obj = None if info.sealed else ser.loads(data, allow_insecure=True, verify_key_id=False)
    print(f"{args.file}: {type(obj).__name__ if obj is not None else 'SecretKey (sealed)'}")
    for line in _file_lines(info, owner_key) + (_describe(obj) if obj is not None else _sealed_lines(info)):
        print(f"  {line}")
    return 0


def _file_lines(info: ser.FileInfo, owner_key: VerifyKey | None) -> list[str]:
    if info.signer is None:
        signed = "not signed"
    elif owner_key is not None:
        signed = f"signed by owner key {info.signer} (verified)"
    else:
        signed = f"signed by key {info.signer} (not verified: pass --owner OWNER.pub)"
    return [f"format version {info.version}, {signed}"]


def _sealed_lines(info: ser.FileInfo) -> list[str]:
    return [f"scheme {info.scheme}, params {info.params_id}", f"key id {', '.join(info.key_ids)}",
            "sealed under a passphrase (scrypt + AES-256-GCM)"]


def _describe(obj: object) -> list[str]:
    if isinstance(obj, he_core.KeyRequirements):
        return [repr(obj)]
    owner = obj
    if isinstance(obj, ser.Bundle):
        owner = obj.public or next(iter(obj.ciphertexts.values()), None)
    lines = [f"scheme {owner.scheme}, params {owner.params_id}" if owner is not None else "scheme None, params None"]
    lines += _security_lines(owner.params if owner is not None else None)
    if isinstance(obj, ser.Bundle):
        lines.append(f"key ids: {', '.join(obj.key_ids) or '-'}; public keys attached: {obj.public is not None}")
        lines += [f"{name}: {ct.shape}" for name, ct in obj.ciphertexts.items()]
    elif isinstance(obj, he_core.SwitchKey):
        lines.append(f"from key {obj.from_key_id} to key {obj.to_key_id}")
    else:
        lines.append(f"key id {obj.key_id}")
    public = obj.public if isinstance(obj, ser.Bundle) else obj
    derived = ser.derived_key_id(public) if isinstance(public, he_core.PublicKeys) else None
    if derived is not None and derived != public.key_id:
        lines.append(f"key id NOT derived from the public key material (it gives {derived}): a substituted file, "
                     "or one from before derived ids (henn migrate)")
    return lines


def _security_lines(params: he_core.params.Parameters | None) -> list[str]:
    if params is None:
        return []
    if getattr(params, "allow_insecure", False) is True or params.security_bits < ser.SECURE_BITS:
        return [f"INSECURE parameters ({params.security_bits}-bit security): loads only with --allow-insecure"]
    return [f"{params.security_bits}-bit security"]


def _owner_options(p: argparse.ArgumentParser, *, owner: str | None = None, insecure: bool = True) -> None:
    """The options every owner command shares."""
    p.add_argument("--passphrase-file", type=Path, metavar="FILE",
                   help="first line: the passphrase of sealed secret keys and of an encrypted signing key")
    if owner is not None:
        p.add_argument("--owner", type=Path, metavar="OWNER_DIR", help=owner)
    if insecure:
        p.add_argument("--allow-insecure", action="store_true",
                       help="accept parameters below 128-bit security (vhe, plain, toy CKKS rings)")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register the lifecycle sub-commands; each sets ``func`` (args -> exit status)."""
    _add_key_parsers(subparsers)
    _add_model_parsers(subparsers)
    _add_identity_parsers(subparsers)
    p = subparsers.add_parser("inspect", help="describe a henn file (kind, scheme, key ids, shapes, signature)")
    p.add_argument("file", type=Path)
    p.add_argument("--owner", type=Path, metavar="OWNER_PUB", help="verify the signature with this owner key "
                   "(owner.pub or the owner directory)")
    p.set_defaults(func=guarded(_inspect, "inspect"))


def _add_identity_parsers(subparsers: argparse._SubParsersAction) -> None:
    owner = subparsers.add_parser("owner", help="owner: the signing identity that signs keys and models")
    commands = owner.add_subparsers(dest="owner_command", metavar="COMMAND", required=True)
    p = commands.add_parser("init", help="make DIR/signing.key (mode 600) and DIR/owner.pub (for trainers)")
    p.add_argument("--out", required=True, type=Path, help="owner directory to create (mode 700)")
    p.add_argument("--passphrase-file", type=Path, metavar="FILE", help="encrypt the signing key under the "
                   "passphrase on this file's first line")
    p.set_defaults(func=guarded(_owner_init, "owner init"))

    p = subparsers.add_parser("migrate", help="owner: move a key directory (and its models) written before key ids "
                              "were derived from the public key to the derived id")
    p.add_argument("--keys", required=True, type=Path, help="key directory to rewrite")
    p.add_argument("--model", nargs="+", default=[], type=Path, metavar="FILE",
                   help="encrypted model files under that key to rewrite too")
    _owner_options(p, owner="sign the rewritten files with this owner directory's signing key")
    p.set_defaults(func=guarded(_migrate, "migrate"))


def _add_key_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("keygen", help="owner: make a key directory (public.henn + secret.henn)")
    p.add_argument("--scheme", required=True, help=f"one of: {', '.join(_schemes())}")
    p.add_argument("--out", required=True, type=Path, help="key directory to create")
    p.add_argument("--sizes", type=int, nargs="+", default=[1], help="vector lengths ciphertexts will have")
    p.add_argument("--model", type=Path, help="also cover every vector length of this plaintext model (.npz)")
    p.add_argument("--rotations", type=int, nargs="*", default=[], help="slot rotations (packing schemes)")
    p.add_argument("--no-multiply", action="store_true", help="no ciphertext x ciphertext products needed")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a scheme parameter (repeatable), e.g. --param levels=3; defaults otherwise")
    p.add_argument("--force", action="store_true", help="replace an existing secret key")
    _owner_options(p, owner="sign public.henn with this owner directory's signing key", insecure=False)
    p.set_defaults(func=guarded(_keygen, "keygen"))

    p = subparsers.add_parser("switch-key", help="owner: make a switch key from one key directory to another")
    p.add_argument("--from", dest="from_dir", required=True, type=Path)
    p.add_argument("--to", dest="to_dir", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    _owner_options(p, owner="sign the switch key with this owner directory's signing key")
    p.set_defaults(func=guarded(_switch_key, "switch-key"))


def _add_model_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("encrypt-model", help="owner: encrypt a plaintext .npz model")
    p.add_argument("--model", required=True, type=Path, help="plaintext model (.npz of weights + __meta__)")
    p.add_argument("--keys", required=True, type=Path, help="key directory")
    p.add_argument("--out", required=True, type=Path, help="encrypted model file to write")
    _owner_options(p, owner="require public.henn to be signed by this owner, and sign the model")
    p.set_defaults(func=guarded(_encrypt_model, "encrypt-model"))

    p = subparsers.add_parser("decrypt-model", help="owner: decrypt an encrypted model to .npz")
    p.add_argument("--model", required=True, type=Path, help="encrypted model file")
    p.add_argument("--keys", required=True, type=Path, help="key directory holding the model's secret key")
    p.add_argument("--out", required=True, type=Path, help="plaintext model to write (mode 600)")
    _owner_options(p)
    p.set_defaults(func=guarded(_decrypt_model, "decrypt-model"))

    p = subparsers.add_parser("rekey", help="move an encrypted model to another key without decrypting it")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--to", dest="to_dir", required=True, type=Path, help="target key directory (or public.henn)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from", dest="from_dir", type=Path, help="owner: source key directory (with secret key)")
    src.add_argument("--switch-key", type=Path, help="any party: a switch key made by the owner")
    p.add_argument("--out", required=True, type=Path)
    _owner_options(p, owner="with --from: sign the result and require the target's public.henn signed by this owner "
                   "directory; with --switch-key: require the switch key and target signed by this owner key")
    p.set_defaults(func=guarded(_rekey, "rekey"))



def _schemes() -> list[str]:
    return he_core.available_schemes()


def main(argv: list[str] | None = None) -> int:
    """Run one lifecycle command (``python -m henn.cli.lifecycle ...``)."""
    parser = argparse.ArgumentParser(prog="henn", description="henn key and model lifecycle commands")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
