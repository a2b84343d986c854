"""``henn train xor``: train the encrypted XOR network."""
from __future__ import annotations

import argparse

import he_core

from .. import io
from ..tasks.xor import XorConfig
from ..tasks.xor import setup, train_xor
from ..training.fit import REFRESH_KINDS
from . import common


def add_train_parser(train_subparsers) -> argparse.ArgumentParser:
    """Register ``henn train xor`` on the ``train`` subcommand's subparsers."""
    defaults = XorConfig()
    parser = train_subparsers.add_parser(
        "xor", help="train the 2-4-1 XOR network with encrypted weights",
        description="Train the XOR network (2 inputs, hidden layer, 1 output) with encrypted weights on the "
                    "four plaintext XOR rows: polynomial sigmoid, MSE, full-batch SGD.")
    common.add_common_options(parser)
    parser.add_argument("--epochs", type=common.non_negative_int, default=defaults.epochs,
                        help=f"full-batch epochs (default {defaults.epochs})")
    parser.add_argument("--lr", type=common.positive_float, default=defaults.lr,
                        help=f"learning rate (default {defaults.lr})")
    parser.add_argument("--hidden", type=common.positive_int, default=defaults.hidden,
                        help=f"hidden units (default {defaults.hidden})")
    parser.add_argument("--init-scale", type=common.positive_float, default=defaults.init_scale,
                        help=f"weights start uniform on [-s, s] (default {defaults.init_scale})")
    parser.add_argument("--refresh", choices=REFRESH_KINDS, default=defaults.refresh,
                        help="how ciphertexts low on budget are refreshed while training: through the key holder "
                             "(masked, the default) or by bootstrapping with public keys (bootstrap: no key-holder "
                             "round trip until the final release; ckks, N = 2^16, keys of several GB)")
    parser.add_argument("--ring", type=common.positive_int, default=None,
                        help="with --refresh bootstrap: a smaller ring degree for trials (NOT secure)")
    parser.add_argument("--scheme-param", metavar="KEY=VALUE", type=common.scheme_param, action="append", default=[],
                        help="scheme parameter passed to he_core.get_scheme (repeatable), e.g. "
                             "--scheme-param poly_degree=16384 --scheme-param levels=7 for ckks")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Handler of ``henn train xor``; returns the exit code."""
    scheme_name = args.scheme or common.default_scheme()
    config = XorConfig(hidden=args.hidden, init_scale=args.init_scale, lr=args.lr, epochs=args.epochs,
                       seed=args.seed, refresh=args.refresh)
    if args.refresh == "bootstrap" and args.scheme_param:
        return common.usage_error("--scheme-param does not apply with --refresh bootstrap (the set is chosen to "
                                  "bootstrap; --ring picks a smaller, insecure ring)")
    if args.ring is not None and args.refresh != "bootstrap":
        return common.usage_error("--ring applies only with --refresh bootstrap")
    try:
        scheme, keyholder = setup(scheme_name, config.hidden, config, ring=args.ring, **dict(args.scheme_param))
    except (TypeError, ValueError, NotImplementedError) as exc:  # he_core's ParameterError is a ValueError,
        # its CapabilityError a NotImplementedError (a scheme that cannot bootstrap)
        return common.fail(f"cannot create scheme {scheme_name!r}: {type(exc).__name__}: {exc}")
    try:
        with common.progress(config.epochs, f"xor/{scheme_name}", quiet=args.quiet) as bar:
            def on_epoch(record: dict) -> None:
                bar.update(1)
                loss = "not released" if record["loss"] is None else f"{record['loss']:.4f}"
                bar.set_postfix(loss=loss, refreshes=keyholder.refresh_rounds, refresh=False)

            result = train_xor(scheme, keyholder, config, on_epoch=on_epoch)
    except he_core.HEError as exc:
        return common.fail(f"training failed: {type(exc).__name__}: {exc}")
    summary = _summary(scheme_name, config, result, keyholder)
    summary.update(_refresh_summary(result, scheme))
    if args.save:
        try:
            io.save_model(args.save, result.model, scheme, meta=_meta(config, summary),
                          secret=keyholder.export_secret_key())
        except OSError as exc:
            return common.fail(f"cannot save the model to {args.save}: {exc}")
        summary["saved"] = str(args.save)
    if args.plot:
        seeded = "" if config.seed is None else f" (seed {config.seed})"
        common.plot_history(result.history, args.plot, title=f"XOR on {scheme_name}{seeded}", metrics=("loss",))
        summary["plot"] = args.plot
    _report(summary, args)
    return common.EXIT_OK


def _summary(scheme_name: str, config: XorConfig, result, keyholder) -> dict:
    epochs = result.epochs
    return {
        "task": "xor", "scheme": scheme_name, "seed": config.seed, "epochs": epochs, "lr": config.lr,
        "hidden": config.hidden, "activation": config.make_activation().name,
        "seconds": result.seconds, "seconds_per_epoch": result.seconds / epochs if epochs else 0.0,
        "initial_loss": result.history[0]["loss"], "final_loss": result.final_loss, "correct": result.correct,
        "predictions": [float(v) for v in result.predictions[:, 0]],
        "loss_history": [r["loss"] for r in result.history], **keyholder.counters(),
        "refresh": config.refresh, "train_refresh_rounds": result.train_refreshes,
    }


def _refresh_summary(result, scheme) -> dict:
    """How refreshes were decided, and the parameter set used (so a run can be reproduced)."""
    out = {"refresh_policy": "budget", "scheme_params": scheme.params.to_dict(),
           "security_bits": scheme.params.security_bits}
    out.update(result.policy)
    return out


def _meta(config: XorConfig, summary: dict) -> dict:
    # The seed (if any) is not stored: the file must not let its reader replay the initial weights.
    return {"task": "xor", "config": {k: getattr(config, k) for k in config.__dataclass_fields__ if k != "seed"},
            "final_loss": summary["final_loss"], "correct": summary["correct"], "epochs": summary["epochs"]}


def _report(summary: dict, args: argparse.Namespace) -> None:
    if not args.quiet and not args.json:
        initial = "not released" if summary["initial_loss"] is None else f"{summary['initial_loss']:.4f}"
        booted = (f", {summary.get('bootstraps', 0)} bootstraps ({summary.get('parameter_bootstraps', 0)} of the "
                  "parameters, packed)") if summary["refresh"] == "bootstrap" else ""
        print(f"xor on {summary['scheme']}: {summary['epochs']} epochs in {summary['seconds']:.2f} s "
              f"({1000 * summary['seconds_per_epoch']:.1f} ms/epoch), loss {initial} -> "
              f"{summary['final_loss']:.4f}, {summary['correct']}/4 correct; {summary['train_refresh_rounds']} "
              f"refreshes while training, {summary['refresh_rounds']} in all ({summary['refresh_policy']}){booted}, "
              f"{summary['bytes_exchanged'] / 1e6:.2f} MB exchanged with the key holder")
    if args.json:
        common.emit_json(summary)
