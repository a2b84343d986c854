"""Options and output helpers shared by the ``henn`` subcommands.

Conventions every subcommand follows: bad arguments are argparse usage errors
(exit code 2); with ``--json`` the last line on stdout is one JSON object; long
work shows a tqdm bar on stderr unless ``--quiet``; ``--plot FILE.png`` draws the
history with matplotlib's Agg back end (no display needed).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Callable, Iterable

import he_core
from tqdm import tqdm

from .. import plotting

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


# ---------------------------------------------------------------------------- argument types
def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _parse(text, int, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = _parse(text, int, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _parse(text, float, "a number")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def scheme_name(text: str) -> str:
    """argparse type: the name of an installed he_core scheme."""
    if not scheme_loads(text):
        raise argparse.ArgumentTypeError(f"unknown scheme {text!r} (available: {', '.join(installed_schemes())})")
    return text


def scheme_loads(name: str) -> bool:
    """Whether the scheme ``name`` can be created here.

    A scheme package that is half-installed (or being written) must not break the
    commands that do not use it: the registry names it unknown and this says "no".
    """
    try:
        he_core.scheme_class(name)
    except (he_core.registry.UnknownSchemeError, TypeError):
        return False
    return True


def installed_schemes() -> list[str]:
    """Names of the schemes that load, sorted."""
    return [n for n in he_core.available_schemes() if scheme_loads(n)]


def _parse(text: str, kind: type, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None


def default_scheme() -> str:
    """``ckks``, the secure scheme; ``vhe`` (insecure by design) and ``plain`` only run when named."""
    return "ckks"


def add_common_options(parser: argparse.ArgumentParser, *, save: bool = True, plot: bool = True) -> None:
    """``--scheme --seed --json --quiet`` and optionally ``--save DIR`` / ``--plot FILE.png``."""
    parser.add_argument("--scheme", type=scheme_name, default=None,
                        help="he_core scheme to compute with (default: ckks; vhe is insecure by design and "
                             "plain computes in the clear: name them to use them)")
    parser.add_argument("--seed", type=non_negative_int, default=None,
                        help="seed the initial weights for a reproducible experiment (default: the OS CSPRNG; "
                             "anyone who knows a seed can replay the initial weights, and no seed is ever stored "
                             "in a model file)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary object as the last stdout line")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or human-readable summary")
    if save:
        parser.add_argument("--save", metavar="DIR", help="write the encrypted model and (0600) secret key here")
    if plot:
        parser.add_argument("--plot", metavar="FILE.png", type=png_path, help="draw the training history")


def png_path(text: str) -> str:
    """argparse type: a path ending in ``.png``."""
    if not text.lower().endswith(".png"):
        raise argparse.ArgumentTypeError(f"plot file must end in .png, got {text!r}")
    return text


# ---------------------------------------------------------------------------- output
def emit_json(record: dict[str, Any]) -> None:
    """Print ``record`` as one compact JSON line on stdout."""
    print(json.dumps(record, separators=(",", ":"), default=_json_default), flush=True)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def progress(total: int, desc: str, *, quiet: bool, unit: str = "epoch"):
    """A tqdm bar on stderr (disabled by ``--quiet``), counting ``unit``s."""
    return tqdm(total=total, desc=desc, file=sys.stderr, disable=quiet, unit=unit, dynamic_ncols=True,
                leave=False)


def plot_history(history: Iterable[dict], path: str, **kwargs) -> str:
    """Draw a training history to ``path``; see :func:`henn.plotting.plot_history`."""
    return plotting.plot_history(history, path, **kwargs)


def fail(message: str) -> int:
    """Report a runtime failure on stderr; return the failure exit code."""
    print(f"henn: error: {message}", file=sys.stderr)
    return EXIT_FAILED


def usage_error(message: str) -> int:
    """Report a usage error (options that do not go together) on stderr; return exit code 2."""
    print(f"henn: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def scheme_param(text: str) -> tuple[str, object]:
    """argparse type: ``KEY=VALUE`` with a JSON value (``16384``, ``true``, ``1.5``) or a bare string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def guarded(handler: Callable[[argparse.Namespace], int], name: str) -> Callable[[argparse.Namespace], int]:
    """Turn expected failures into one clear line on stderr and exit status 1 (2 stays argparse's usage error)."""
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (he_core.HEError, OSError, ValueError, TypeError) as exc:
            print(f"henn {name}: error: {exc}", file=sys.stderr)
            return EXIT_FAILED
    return run
