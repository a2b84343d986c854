"""Fuzz the key service's request handling (``henn serve-keys``): mutated requests under the service's key.

Usage::

    python fuzz/run_keyservice.py --count 20000 [--seed 0]

One service per usable scheme (``plain``, ``vhe``, and ``ckks`` on a small insecure ring
with the sentiment network's prime sizes) gets requests built from valid masked
ciphertexts under its own key (tables, gathered rows, constants, deferred products),
with layouts taken from real ``RefreshRequired`` targets, then damaged: bytes flipped,
truncated, resealed with a correct digest, the layout JSON rewritten (wrong types,
huge strides, odd levels and scales), the metadata of the ciphertext rewritten.
:meth:`henn.keyservice.KeyService.handle` must answer with a ciphertext, or raise one
of the exceptions the service turns into an ``ERROR`` reply (``HEError``, ``ValueError``,
``TypeError``). Anything else is a crash; the exit status is then 1.
"""
from __future__ import annotations

import argparse
import collections
import random
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import corpus  # noqa: E402
import he_core  # noqa: E402
from he_core import serialization as ser  # noqa: E402

from henn.keyservice import HELLO, REENCRYPT, KeyService, pack_request  # noqa: E402

ALLOWED = (he_core.HEError, ValueError, TypeError)


def services() -> list[tuple[KeyService, list[bytes], list[object]]]:
    """(service, valid ciphertext files under its key, layouts) for each usable scheme."""
    out = []
    for name in corpus.usable_schemes():
        if name == "ckks":
            from he_core.schemes.ckks import CkksParams, CkksScheme
            scheme = CkksScheme(CkksParams(poly_degree=1024, levels=4, scale_bits=32, first_bits=44, special_bits=44,
                                           allow_insecure=True))
        else:
            scheme = he_core.get_scheme(name)
        secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3, 8)), rng=he_core.SeededRandom(1))
        cts = [scheme.encrypt(np.linspace(-1, 1, 8)[None, :]), scheme.encrypt(np.ones((5, 3)), secret)]
        layouts: list[object] = [None, "table", {"layout": "bogus"}, {"layout": "coeff", "level": 1}]
        if name == "ckks":
            table = scheme.encrypt(np.random.default_rng(0).normal(size=(200, 8)), layout="table")
            h = scheme.row_sum(table, [1, 5, 9])
            w = scheme.encrypt(np.ones((1, 8)), secret, layout=scheme.coeff_target(h, rev=True))
            z = scheme.inner(h, w)  # deferred product: three components
            cts += [table, h, w, z]
            for op in (lambda: scheme.polyval(z, [0, 1]), lambda: scheme.inner(h, scheme.encrypt(np.ones((1, 8)))),
                       lambda: scheme.index_add_(table, [0], scheme.mul(w, scheme.encrypt([[0.5]], layout={
                           "layout": "constant", "level": 1, "scale": 2.0**32})))):
                try:
                    op()
                except he_core.RefreshRequired as exc:
                    layouts.append(exc.target)
        out.append((KeyService(scheme, secret), [ser.dumps(c) for c in cts], layouts))
    return out


def damage_layout(layout: object, rng: random.Random) -> object:
    if not isinstance(layout, dict) or rng.random() < 0.2:
        return rng.choice([None, "table", 7, [], "x" * 50, {"layout": "coeff"}, True])
    bad = dict(layout)
    key = rng.choice(list(bad) + ["stride", "level", "scale", "rev", "extra"])
    bad[key] = rng.choice([0, -1, 1, 3, 2**20, 2**62, 1.5, float("inf"), "8", None, True, [8], {"a": 1}])
    return bad


def damage_meta(data: bytes, rng: random.Random) -> bytes:
    """Rewrite the ciphertext's layout metadata inside a valid file (resealed: the digest matches)."""
    try:
        ct = ser.loads(data)
    except he_core.FormatError:
        return data
    meta = dict(ct.meta)
    key = rng.choice(list(meta) + ["coeff", "rev"])
    meta[key] = rng.choice([0, -4, 3, 1 << 20, True, False, None, "8", 1.0])
    shape = ct.shape if rng.random() < 0.7 else (rng.choice([0, 1, 10**6]), rng.choice([1, 8, 10**6]))
    try:
        return ser.dumps(ct.replace(meta=meta, shape=shape))
    except Exception:  # noqa: BLE001 - the writer refusing is fine: keep the original
        return data


def make_request(files: list[bytes], layouts: list[object], rng: random.Random) -> bytes:
    base = rng.choice(files)
    choice = rng.random()
    if choice < 0.3:
        body = damage_meta(base, rng)
    elif choice < 0.6:
        body = corpus.make_input([base], rng)
    else:
        body = base
    layout = rng.choice(layouts)
    if rng.random() < 0.4:
        layout = damage_layout(layout, rng)
    payload = pack_request(layout, body)
    if rng.random() < 0.1:  # damage the framing of the request itself
        cut = rng.randrange(len(payload) + 1)
        payload = payload[:cut] if rng.random() < 0.5 else payload[:4] + b"{" + payload[5:]
    return payload


def run(count: int, seed: int) -> int:
    rng = random.Random(seed)
    targets = services()
    outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
    crashes = 0
    started = time.perf_counter()
    for i in range(count):
        service, files, layouts = targets[i % len(targets)]
        payload = make_request(files, layouts, rng)
        name = service.scheme.name
        try:
            op = HELLO if rng.random() < 0.01 else REENCRYPT
            service.handle(op, payload)
            outcomes[name, "answered"] += 1
        except ALLOWED as exc:
            outcomes[name, f"{type(exc).__name__}: {str(exc)[:50]}"] += 1
        except Exception as exc:  # noqa: BLE001 - what we are hunting
            crashes += 1
            outcomes[name, f"CRASH {type(exc).__name__}: {str(exc)[:60]}"] += 1
            if crashes <= 5:
                import traceback
                traceback.print_exc()
    elapsed = time.perf_counter() - started
    print(f"fuzzed {count} key-service requests (seed {seed}) in {elapsed:.1f} s ({count / elapsed:.0f}/s)")
    for name in sorted({n for n, _ in outcomes}):
        rows = sorted(((k, label) for (n, label), k in outcomes.items() if n == name), reverse=True)
        print(f"{name}: {sum(k for k, _ in rows)} requests; most frequent answers:")
        for k, label in rows[:8]:
            print(f"  {k:8d}  {label}")
    print(f"crashes (exceptions the service would not answer): {crashes}")
    return 1 if crashes else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", he_core.SecurityWarning)
    return run(args.count, args.seed)


if __name__ == "__main__":
    sys.exit(main())
