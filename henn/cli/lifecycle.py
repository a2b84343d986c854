"""``henn`` sub-commands for keys and the model's life across parties.

Owner commands (they read the secret key of a key directory):

* ``henn keygen --scheme S --out DIR [--sizes N ...] [--model PLAIN.npz] [--param NAME=VALUE ...] [--force]``
* ``henn encrypt-model --model PLAIN.npz --keys DIR --out MODEL.henn``
* ``henn decrypt-model --model MODEL.henn --keys DIR --out PLAIN.npz``
* ``henn switch-key --from DIR_A --to DIR_B --out SWITCH.henn``
* ``henn rekey --model MODEL.henn --from DIR_A --to DIR_B --out MODEL_B.henn``
* ``henn serve-keys --keys DIR --listen ADDRESS`` (the key service a trainer refreshes through:
  ``henn train sentiment --model ... --keyholder ADDRESS``; see :mod:`henn.keyservice`)

Commands for any party (they never look for a secret key):

* ``henn rekey --model MODEL.henn --switch-key SWITCH.henn --to PUBLIC --out MODEL_B.henn``
* ``henn inspect FILE``

The ``henn`` dispatcher calls :func:`add_parsers`; ``python -m henn.cli.lifecycle`` runs
these commands on their own. Every handler returns a process exit status: 0, or 1
with one ``henn <command>: error: ...`` line on stderr (2 is argparse's usage error).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

import he_core
from he_core import serialization as ser
from henn import lifecycle as lc

EXIT_ERROR = 1  # as henn.cli.common.EXIT_FAILED; 2 stays argparse's usage error


def _keygen(args: argparse.Namespace) -> int:
    sizes = set(args.sizes)
    params = _params(args.scheme, args.param)
    if args.model is not None:
        plain = lc.read_plain_model(args.model)
        sizes |= set(lc.required_sizes(plain))
        depth = plain.meta.get("depth")
        if params is None and isinstance(depth, int) and not isinstance(depth, bool) and depth > 0:
            # The model says how many levels one training step needs between refreshes.
            chooser = getattr(he_core.scheme_class(args.scheme), "params_for_depth", None)
            params = chooser(depth) if chooser is not None else None
    pair = lc.keygen(args.scheme, args.out, sizes=sorted(sizes), rotations=args.rotations,
                     multiply=not args.no_multiply, force=args.force, params=params)
    print(f"keygen: {args.scheme} key {pair.public.key_id} (params {pair.public.params_id}, sizes "
          f"{list(pair.public.requirements.sizes)})")
    print(f"  public keys (share them): {Path(args.out) / lc.PUBLIC_FILE}")
    print(f"  secret key (owner only, mode 600): {Path(args.out) / lc.SECRET_FILE}")
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
    params_class = getattr(he_core.scheme_class(scheme), "params_class", None)
    if params_class is None:
        raise ValueError(f"cannot keygen: scheme {scheme!r} does not declare a parameter class for --param")
    return params_class.from_dict(values)


def _encrypt_model(args: argparse.Namespace) -> int:
    model = lc.read_plain_model(args.model)
    scheme, public = lc.load_public(args.keys)
    # Public-key encryption needs nothing secret; schemes without it need the owner's key.
    secret = None
    if not scheme.supports(he_core.Capability.PUBLIC_KEY_ENCRYPT):
        _, _, secret = lc.load_owner(args.keys)
    bundle = lc.encrypt_model(model, scheme, secret=secret)
    lc.save_encrypted_model(args.out, bundle)
    print(f"encrypt-model: {len(bundle.ciphertexts)} tensors under {public.scheme} key {public.key_id} -> {args.out}")
    return 0


def _decrypt_model(args: argparse.Namespace) -> int:
    model = lc.load_encrypted_model(args.model)
    secret = lc.load_secret(args.keys)
    plain = lc.decrypt_model(model, secret, args.keys)
    lc.write_plain_model(args.out, plain)
    print(f"decrypt-model: {len(plain.arrays)} tensors from key {secret.key_id} -> {args.out} (mode 600)")
    return 0


def _switch_key(args: argparse.Namespace) -> int:
    switch = lc.make_switch_key(args.from_dir, args.to_dir)
    ser.save(switch, args.out)
    print(f"switch-key: {switch.from_key_id} -> {switch.to_key_id} -> {args.out}")
    return 0


def _rekey(args: argparse.Namespace) -> int:
    model = lc.load_encrypted_model(args.model)
    if args.switch_key is not None:
        with lc.public_only("re-keying party"):
            switch = ser.load(args.switch_key, expect_kind="switch_key")
            _, target = lc.load_public(args.to_dir)
            moved = lc.rekey_model(model, switch, target)
    else:
        _, _, old = lc.load_owner(args.from_dir)
        # Check the model's key before the (possibly costly) switch key is made.
        if model.bundle.key_ids != [old.key_id]:
            raise he_core.MismatchError(f"cannot rekey the model: it is under key {', '.join(model.bundle.key_ids)}, "
                                        f"the --from key directory {args.from_dir} holds key {old.key_id}")
        switch = lc.make_switch_key(args.from_dir, args.to_dir)
        _, target = lc.load_public(args.to_dir)
        moved = lc.rekey_model(model, switch, target)
    lc.save_encrypted_model(args.out, moved)
    print(f"rekey: {len(moved.bundle.ciphertexts)} tensors moved from key {switch.from_key_id} to "
          f"{switch.to_key_id} without decryption -> {args.out}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    with lc.public_only("inspecting party"):
        obj = ser.load(args.file)
    print(f"{args.file}: {type(obj).__name__}")
    for line in _describe(obj):
        print(f"  {line}")
    return 0


def _describe(obj: object) -> list[str]:
    if isinstance(obj, he_core.KeyRequirements):
        return [repr(obj)]
    owner = obj
    if isinstance(obj, ser.Bundle):
        owner = obj.public or next(iter(obj.ciphertexts.values()), None)
    lines = [f"scheme {getattr(owner, 'scheme', None)}, params {getattr(owner, 'params_id', None)}"]
    if isinstance(obj, ser.Bundle):
        lines.append(f"key ids: {', '.join(obj.key_ids) or '-'}; public keys attached: {obj.public is not None}")
        lines += [f"{name}: {ct.shape}" for name, ct in obj.ciphertexts.items()]
    elif isinstance(obj, he_core.SwitchKey):
        lines.append(f"from key {obj.from_key_id} to key {obj.to_key_id}")
    else:
        lines.append(f"key id {obj.key_id}")
    return lines


def _serve_keys(args: argparse.Namespace) -> int:
    """Owner: answer masked refreshes for trainers until SIGTERM / SIGINT, then report the traffic."""
    import signal

    from henn.keyservice import KeyService

    service = KeyService.from_keys(args.keys, max_bytes=args.max_mb << 20, idle_seconds=args.idle_seconds)

    def stop(signum, frame):  # noqa: ARG001 - signal handler signature
        service.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    hello = service.hello()
    try:
        service.serve(args.listen, ready=lambda where: print(
            f"serve-keys: {hello['scheme']} key {hello['key_id']} listening on {where} (masked re-encryption only; "
            "stop with SIGTERM or Ctrl-C)", flush=True))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    counters = service.counters()
    if args.json:
        print(json.dumps({"key_id": hello["key_id"], "scheme": hello["scheme"], **counters}), flush=True)
    else:
        print(f"serve-keys: stopped after {counters['refresh_rounds']} refreshes, {counters['connections']} "
              f"connections, {counters['bytes_exchanged']} bytes, {counters['errors']} refused requests, "
              f"{counters['value_refusals']} answered with zeros (values out of range)", flush=True)
    return 0


def _guarded(handler: Callable[[argparse.Namespace], int], name: str) -> Callable[[argparse.Namespace], int]:
    """Turn expected failures into one clear line on stderr and exit status 1."""
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (he_core.HEError, OSError, ValueError, TypeError) as exc:
            print(f"henn {name}: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
    return run


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register the lifecycle sub-commands; each sets ``func`` (args -> exit status)."""
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
    p.set_defaults(func=_guarded(_keygen, "keygen"))

    p = subparsers.add_parser("encrypt-model", help="owner: encrypt a plaintext .npz model")
    p.add_argument("--model", required=True, type=Path, help="plaintext model (.npz of weights + __meta__)")
    p.add_argument("--keys", required=True, type=Path, help="key directory")
    p.add_argument("--out", required=True, type=Path, help="encrypted model file to write")
    p.set_defaults(func=_guarded(_encrypt_model, "encrypt-model"))

    p = subparsers.add_parser("decrypt-model", help="owner: decrypt an encrypted model to .npz")
    p.add_argument("--model", required=True, type=Path, help="encrypted model file")
    p.add_argument("--keys", required=True, type=Path, help="key directory holding the model's secret key")
    p.add_argument("--out", required=True, type=Path, help="plaintext model to write (mode 600)")
    p.set_defaults(func=_guarded(_decrypt_model, "decrypt-model"))

    p = subparsers.add_parser("switch-key", help="owner: make a switch key from one key directory to another")
    p.add_argument("--from", dest="from_dir", required=True, type=Path)
    p.add_argument("--to", dest="to_dir", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=_guarded(_switch_key, "switch-key"))

    p = subparsers.add_parser("rekey", help="move an encrypted model to another key without decrypting it")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--to", dest="to_dir", required=True, type=Path, help="target key directory (or public.henn)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from", dest="from_dir", type=Path, help="owner: source key directory (with secret key)")
    src.add_argument("--switch-key", type=Path, help="any party: a switch key made by the owner")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=_guarded(_rekey, "rekey"))

    p = subparsers.add_parser("serve-keys", help="owner: serve masked refreshes to a trainer (henn train ... "
                              "--keyholder ADDRESS)",
                              description="Hold the secret key of a key directory in this process and re-encrypt the "
                                          "masked ciphertexts trainers send (never decrypting anything for them), "
                                          "until SIGTERM or Ctrl-C.")
    p.add_argument("--keys", required=True, type=Path, help="key directory (with the secret key)")
    p.add_argument("--listen", required=True, metavar="ADDRESS",
                   help="Unix socket path (created mode 600), or 127.0.0.1:PORT")
    p.add_argument("--max-mb", type=int, default=256, help="largest request accepted, in MiB (default 256)")
    p.add_argument("--idle-seconds", type=float, default=300.0,
                   help="drop a connection silent this long (one trainer is served at a time; default 300)")
    p.add_argument("--json", action="store_true", help="print the traffic counters as JSON when stopped")
    p.set_defaults(func=_guarded(_serve_keys, "serve-keys"))

    p = subparsers.add_parser("inspect", help="describe a henn file (kind, scheme, key ids, shapes)")
    p.add_argument("file", type=Path)
    p.set_defaults(func=_guarded(_inspect, "inspect"))


def _schemes() -> list[str]:
    try:
        return he_core.available_schemes()
    except Exception:  # noqa: BLE001 - help text only; a broken plugin must not break the CLI
        return ["plain", "vhe", "ckks"]


def main(argv: list[str] | None = None) -> int:
    """Run one lifecycle command (``python -m henn.cli.lifecycle ...``)."""
    parser = argparse.ArgumentParser(prog="henn", description="henn key and model lifecycle commands")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
