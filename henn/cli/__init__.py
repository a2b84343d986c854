"""The ``henn`` command line: ``henn train xor|sentiment``, ``henn evaluate sentiment``, ``henn bench``, ...

:func:`main` builds one argparse tree. Subcommand modules register themselves:
``henn.cli.xor`` (always), and, when present, ``henn.cli.sentiment``
(``add_train_parser`` / ``add_evaluate_parser``), ``henn.cli.bench``
(``add_parser``) and ``henn.cli.lifecycle`` (``add_parsers``). A module that is not
installed is skipped; one that fails to import is skipped with a warning on stderr
so the other commands keep working.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType
from typing import Sequence

from he_core import threads

from . import common, xor


def _optional(name: str) -> ModuleType | None:
    full = f"{__name__}.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name == full:
            return None
        print(f"henn: warning: skipping the {name} commands: {exc}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - a broken optional command must not break the others
        print(f"henn: warning: skipping the {name} commands: {type(exc).__name__}: {exc}", file=sys.stderr)
    return None


def _thread_count(text: str) -> int:
    try:
        return threads.parse_threads(text, "--threads")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The full ``henn`` argument parser."""
    parser = argparse.ArgumentParser(prog="henn", description="Neural networks with homomorphically encrypted "
                                                              "weights (he_core schemes: plain, vhe, ckks).")
    parser.add_argument("--threads", type=_thread_count, metavar="N",
                        help="threads of the native kernels (default: $HENN_THREADS, else the cores this process "
                             "may use; several workers on one machine: cores / workers each)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train = commands.add_parser("train", help="train a model with encrypted weights")
    train_tasks = train.add_subparsers(dest="task", metavar="TASK", required=True)
    xor.add_train_parser(train_tasks)

    sentiment = _optional("sentiment")
    if sentiment is not None:
        sentiment.add_train_parser(train_tasks)
        evaluate = commands.add_parser("evaluate", help="evaluate a trained model")
        sentiment.add_evaluate_parser(evaluate.add_subparsers(dest="task", metavar="TASK", required=True))
    bench = _optional("bench")
    if bench is not None:
        bench.add_parser(commands)
    lifecycle = _optional("lifecycle")
    if lifecycle is not None:
        lifecycle.add_parsers(commands)
    job_commands = _optional("jobs")
    if job_commands is not None:
        job_commands.add_parsers(commands)
    serving = _optional("serve")
    if serving is not None:
        serving.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``henn`` command; returns the exit code (2 for usage errors, via argparse)."""
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        threads.set_threads(args.threads)
    return int(args.func(args) or common.EXIT_OK)
