"""Long fuzz run of every henn loader: mutated valid files and random bytes.

Usage::

    python fuzz/run_loaders.py --count 100000 [--seed 0] [--crash-dir fuzz/crashes]

Each input goes to :func:`he_core.serialization.loads` (without and with every
``expect_kind``) and, when ``henn.lifecycle`` is importable, to its model and key
loaders through a temporary file. Anything but a clean load or a
:class:`~he_core.errors.FormatError` is a crash: it is counted, its input is written
to the crash directory, and the exit status is 1.
"""
from __future__ import annotations

import argparse
import collections
import random
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # noqa: E402  (sibling module, found through the path above)

import he_core  # noqa: E402


def _lifecycle_loaders():
    """File loaders of henn.lifecycle, if that module exists yet."""
    try:
        from henn import lifecycle
    except ImportError:
        return []
    return [getattr(lifecycle, name) for name in getattr(lifecycle, "FILE_LOADERS", ())]


_KNOWN = ("truncated", "bad magic", "unsupported format version", "unknown format flags", "digest mismatch",
          "trailing bytes", "unexpected bytes", "malformed JSON header", "wrong kind", "wrong scheme", "wrong key",
          "tampered parameters", "parameters:", "bad dtype", "bool array", "key id list", "malformed entry",
          "does not hold", "no field refers", "twice", "bad shape", "bad scale", "not a dict", "key requirements",
          "unknown object kind", "unknown scheme", "not valid UTF-8", "header field")


def _category(exc: BaseException) -> str:
    """A short label for a FormatError message: the known phrase it contains."""
    text = str(exc)
    return next((phrase.rstrip(":") for phrase in _KNOWN if phrase in text), text[:60])


def run(count: int, seed: int, crash_dir: Path) -> int:
    rng = random.Random(seed)
    files = list(corpus.valid_files().values())
    file_loaders = _lifecycle_loaders()
    outcomes: collections.Counter[str] = collections.Counter()
    crashes = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "input.henn"
        for i in range(count):
            data = corpus.make_input(files, rng)
            try:
                corpus.load_all_ways(data)
                if file_loaders:
                    scratch.write_bytes(data)
                    for loader in file_loaders:
                        try:
                            loader(scratch)
                        except he_core.FormatError:
                            pass
                outcomes["loaded"] += 1
            except he_core.FormatError as exc:
                outcomes[f"FormatError: {_category(exc)}"] += 1
            except Exception as exc:  # noqa: BLE001 - this is exactly what we are hunting
                crashes += 1
                outcomes[f"CRASH {type(exc).__name__}"] += 1
                crash_dir.mkdir(parents=True, exist_ok=True)
                (crash_dir / f"crash-{seed}-{i}.bin").write_bytes(data)
                if crashes <= 5:
                    print(f"--- crash on input {i} ({len(data)} bytes):", file=sys.stderr)
                    traceback.print_exc()
    elapsed = time.perf_counter() - started
    _report(count, seed, outcomes, crashes, elapsed, len(files), len(file_loaders))
    return 1 if crashes else 0


def _report(count, seed, outcomes, crashes, elapsed, nfiles, nfile_loaders) -> None:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"fuzzed {count} inputs (seed {seed}, {nfiles} valid seed files, loaders: serialization.loads x "
          f"{2 + len(he_core.serialization.KINDS)} expectation sets + {nfile_loaders} lifecycle file loaders) "
          f"in {elapsed:.1f} s ({count / elapsed:.0f} inputs/s), peak RSS {peak_mb:.0f} MB")
    for label, n in outcomes.most_common():
        print(f"  {n:8d}  {label}")
    print(f"crashes (exceptions other than FormatError): {crashes}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10000, help="number of inputs (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crash-dir", type=Path, default=Path("fuzz/crashes"))
    args = parser.parse_args(argv)
    return run(args.count, args.seed, args.crash_dir)


if __name__ == "__main__":
    sys.exit(main())
