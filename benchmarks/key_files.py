"""Key file sizes and load times, switching keys seeded (b and a 32-byte seed each) against whole.

Run from the repository root, pinned as the project's figures are::

    taskset -c 0 python benchmarks/key_files.py [--repeats 3] [--bootstrap] [--json out.json]

For each set (N = 8192: the default parameters; N = 16384: the depth-4 protocol set, the
sentiment step's) and each key set (a client's minimal one: relinearisation plus the 15
rotations of one width-32 matvec, as ``henn.bundle`` asks; the default one: powers of two
within the 1 GB budget, conjugation, relinearisation), keys are made once (the OS CSPRNG)
and written both ways: seeded (this build's ``dumps``) and whole (the same data without the
seed fields: byte for byte the file a build before seeded keys wrote). Load times are
``loads`` of each file (its parameter set re-created, its arrays checked, the seeded one's
``a`` halves expanded again), median of ``--repeats``. ``--bootstrap`` adds the bootstrapping
key set of the default bootstrappable parameters (N = 65536, depth 4, 16 slots: ~3.6 GB of
keys), written to a temporary directory and loaded once each to bound the memory.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from he_core import KeyRequirements, PublicKeys, serialization as ser  # noqa: E402
from he_core.schemes.ckks import CkksParams, CkksScheme, seeded_keys  # noqa: E402

MINIMAL = KeyRequirements(sizes=(1, 32), multiply=True, minimal=True, transforms=(32,))


def whole(pub: PublicKeys) -> PublicKeys:
    """The same keys without their seeds: what was written before seeded keys."""
    data = {k: v for k, v in pub.data.items() if k not in seeded_keys.SEED_FIELDS}
    return PublicKeys(pub.scheme, pub.params_id, pub.key_id, data, pub.requirements, pub.params)


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(label: str, scheme: CkksScheme, req: KeyRequirements, repeats: int) -> dict:
    t = time.perf_counter()
    pub = scheme.keygen(req).public
    keygen_s = time.perf_counter() - t
    t = time.perf_counter()
    seeded = ser.dumps(pub)
    dumps_s = time.perf_counter() - t
    old = ser.dumps(whole(pub))
    keys = len(pub.data["galois"]) + ("relin" in pub.data)
    row = {"set": label, "N": scheme.params.poly_degree, "switching_keys": keys, "keygen_s": keygen_s,
           "whole_bytes": len(old), "seeded_bytes": len(seeded), "ratio": len(seeded) / len(old),
           "dumps_seeded_s": dumps_s, "dumps_whole_s": timed(lambda: ser.dumps(whole(pub)), 1),
           "load_whole_s": timed(lambda: ser.loads(old), repeats),
           "load_seeded_s": timed(lambda: ser.loads(seeded), repeats)}
    print(json.dumps(row), flush=True)
    return row


def measure_bootstrap() -> dict:
    scheme = CkksScheme(CkksScheme.params_for_bootstrapping(4))
    t = time.perf_counter()
    pub = scheme.bootstrap_keygen(16).public
    keygen_s = time.perf_counter() - t
    keys = len(pub.data["galois"]) + 1
    with tempfile.TemporaryDirectory() as tmp:
        seeded_path, whole_path = Path(tmp) / "seeded.henn", Path(tmp) / "whole.henn"
        seeded_path.write_bytes(ser.dumps(pub))
        whole_path.write_bytes(ser.dumps(whole(pub)))
        del pub
        gc.collect()
        row = {"set": "bootstrap (depth 4, 16 slots)", "N": scheme.params.poly_degree, "switching_keys": keys,
               "keygen_s": keygen_s, "whole_bytes": whole_path.stat().st_size,
               "seeded_bytes": seeded_path.stat().st_size}
        row["ratio"] = row["seeded_bytes"] / row["whole_bytes"]
        for name, path in (("load_whole_s", whole_path), ("load_seeded_s", seeded_path)):
            blob = path.read_bytes()
            t = time.perf_counter()
            ser.loads(blob)
            row[name] = time.perf_counter() - t
            del blob
            gc.collect()
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bootstrap", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    for params in (CkksParams(), CkksScheme.params_for_depth(4)):
        scheme = CkksScheme(params)
        for label, req in (("minimal (client, width 32)", MINIMAL), ("default", KeyRequirements())):
            rows.append(measure(label, scheme, req, args.repeats))
            gc.collect()
    if args.bootstrap:
        rows.append(measure_bootstrap())
    print("load average:", os.getloadavg())
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
