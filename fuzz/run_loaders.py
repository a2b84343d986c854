"""Long fuzz run of every henn loader: mutated valid files and random bytes.

Usage::

    python fuzz/run_loaders.py --count 100000 [--seed 0] [--crash-dir fuzz/crashes]

Each input goes to :func:`he_core.serialization.loads` (without and with every
``expect_kind``, with the corpus owner's key required, without the opt-in for insecure
parameters, without the passphrase) and, when ``henn.lifecycle`` is importable, to its
model and key loaders through a temporary file. Anything but a clean load or a
:class:`~he_core.errors.FormatError` is a crash (the one exception: a
:class:`~he_core.errors.KeyMissingError` asking for the passphrase of a well-formed
sealed key, when none was given): it is counted, its input is written to the crash
directory, and the exit status is 1.
"""
from __future__ import annotations

import argparse
import collections
import functools
import inspect
import random
import re
import resource
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the source tree, for henn

import corpus  # noqa: E402  (sibling module, found through the path above)

import he_core  # noqa: E402


def _lifecycle_loaders() -> list[tuple[str, Callable[[Path], object]]]:
    """File loaders of henn.lifecycle, if that module exists yet."""
    try:
        from henn import lifecycle
    except ImportError:
        return []
    loaders = [(f"lifecycle.{name}", getattr(lifecycle, name)) for name in getattr(lifecycle, "FILE_LOADERS", ())]
    # The corpus is mostly plain and vhe: without the opt-in every load would stop at the security check.
    return [(name, functools.partial(f, allow_insecure=True) if "allow_insecure" in inspect.signature(f).parameters
             else f) for name, f in loaders]


_KNOWN = ("truncated", "bad magic", "unsupported format version", "unknown format flags", "digest mismatch",
          "trailing bytes", "unexpected bytes", "malformed JSON header", "wrong kind", "wrong scheme", "wrong key",
          "tampered parameters", "parameters:", "bad dtype", "bool array", "key id list", "malformed entry",
          "does not hold", "no field refers", "twice", "bad shape", "bad scale", "not a dict", "key requirements",
          "unknown object kind", "unknown scheme", "not valid UTF-8", "header field", "not an encrypted henn model",
          "shape table", "must name its scheme", "insecure parameters", "key id does not match",
          "key material is malformed", "not signed", "signed by key", "bad signature", "cannot hold a signature",
          "wrong passphrase", "sealing", "scrypt", "sealed secret key")


def _category(exc: BaseException) -> str:
    """A short label for a FormatError message: the known phrase it contains."""
    text = re.sub(r" \[[^\]]*\]$", "", str(exc))                 # the file name load() appends
    text = re.sub(r"^cannot read plaintext model [^:]*: ", "npz: ", text)
    known = next((phrase.rstrip(":") for phrase in _KNOWN if phrase in text), None)
    return known or re.sub(r"\d+", "N", text.replace("cannot load: ", ""))[:60]


def run(count: int, seed: int, crash_dir: Path, max_bytes: int) -> int:
    """Feed ``count`` inputs to every loader; print the report; 1 if anything crashed."""
    rng = random.Random(seed)
    files = list(corpus.valid_files(max_bytes=max_bytes).values())
    outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
    crashes = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "input.henn"
        loaders = [("serialization.loads", lambda _path, data: corpus.load_all_ways(data))]
        loaders += [(name, lambda path, _data, f=f: f(path)) for name, f in _lifecycle_loaders()]
        for i in range(count):
            data = corpus.make_input(files, rng)
            scratch.write_bytes(data)
            for name, loader in loaders:
                try:
                    loader(scratch, data)
                    outcomes[name, "loaded"] += 1
                except he_core.FormatError as exc:
                    outcomes[name, f"FormatError: {_category(exc)}"] += 1
                except Exception:  # noqa: BLE001 - this is exactly what we are hunting
                    crashes += 1
                    outcomes[name, f"CRASH {traceback.format_exc().strip().splitlines()[-1][:100]}"] += 1
                    crash_dir.mkdir(parents=True, exist_ok=True)
                    (crash_dir / f"crash-{seed}-{i}.bin").write_bytes(data)
                    if crashes <= 5:
                        print(f"--- {name} crashed on input {i} ({len(data)} bytes):", file=sys.stderr)
                        traceback.print_exc()
    _report(count, seed, outcomes, crashes, time.perf_counter() - started, len(files), [n for n, _ in loaders])
    return 1 if crashes else 0


def _report(count, seed, outcomes, crashes, elapsed, nfiles, loader_names) -> None:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"fuzzed {count} inputs (seed {seed}, mutated from {nfiles} valid files of every kind) in {elapsed:.1f} s "
          f"({count / elapsed:.0f} inputs/s), peak RSS {peak_mb:.0f} MB")
    for loader in loader_names:
        rows = sorted(((n, label) for (name, label), n in outcomes.items() if name == loader), reverse=True)
        print(f"{loader}: {sum(n for n, _ in rows)} calls" +
              (f" (each with {len(he_core.serialization.KINDS) + 6} sets of expectations and keys)"
               if loader == "serialization.loads" else ""))
        for n, label in rows:
            print(f"  {n:8d}  {label}")
    print(f"crashes (exceptions other than FormatError): {crashes}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10000, help="number of inputs (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crash-dir", type=Path, default=Path("fuzz/crashes"))
    parser.add_argument("--max-bytes", type=int, default=2_000_000,
                        help="leave out seed files larger than this (CKKS public keys are ~40 MB)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", he_core.SecurityWarning)  # vhe says it is insecure at every keygen
    return run(args.count, args.seed, args.crash_dir, args.max_bytes)


if __name__ == "__main__":
    sys.exit(main())
