"""Measure the error of the henn fixture's CKKS set, per operation, over random inputs.

Run from the repository root: ``python -m tests.henn.ckks_error [--trials N]``. For every
operation the henn tests use (encrypt/decrypt, add, add_plain, mul_plain, mul, inner,
lincomb, row_sum, polyval) it prints the largest error seen, relative to ``1 + M`` with
``M`` the largest magnitude among the operands and the exact result, in units of
``2^-UNIT_BITS``. ``tests/henn/conftest.py`` states the bound the tests assume and
``docs/noise.md`` quotes the numbers.
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import he_core
from tests.henn.conftest import CKKS_PARAMS, UNIT_BITS


def _ratio(got, expect, *operands) -> float:
    m = max(float(np.max(np.abs(o))) for o in (expect, *operands))
    return float(np.max(np.abs(got - expect))) / (1.0 + m)


def measure(trials: int, seed: int = 0) -> dict[str, float]:
    """The largest ``|error| / (1 + M)`` per operation over ``trials`` random inputs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        scheme = he_core.get_scheme("ckks", **CKKS_PARAMS)
    secret, _ = scheme.keygen(he_core.KeyRequirements(sizes=(1, 2, 3, 4, 5)), rng=he_core.SeededRandom(1))
    dec = lambda ct: scheme.decrypt_exact_local(ct, secret)  # noqa: E731
    rng = np.random.default_rng(seed)
    worst: dict[str, float] = {}

    def note(op, value):
        worst[op] = max(worst.get(op, 0.0), value)

    for _ in range(trials):
        rows, size = int(rng.integers(1, 5)), int(rng.integers(1, 6))
        a, b = rng.uniform(-4, 4, (rows, size)), rng.uniform(-4, 4, (rows, size))
        w = rng.uniform(-4, 4, (3, rows))
        ca, cb = scheme.encrypt(a), scheme.encrypt(b)
        note("encrypt", _ratio(dec(ca), a, a))
        note("add", _ratio(dec(scheme.add(ca, cb)), a + b, a, b))
        note("add_plain", _ratio(dec(scheme.add_plain(ca, b)), a + b, a, b))
        note("mul_plain", _ratio(dec(scheme.mul_plain(ca, b)), a * b, a, b))
        note("mul", _ratio(dec(scheme.mul(ca, cb)), a * b, a, b))
        note("inner", _ratio(dec(scheme.inner(ca, cb)), np.sum(a * b, axis=1, keepdims=True), a, b))
        note("lincomb", _ratio(dec(scheme.lincomb(w, ca)), w @ a, w, a))
        note("row_sum", _ratio(dec(scheme.row_sum(ca)), a.sum(axis=0, keepdims=True), a))
        coeffs = tuple(rng.uniform(-1, 1, 4))
        note("polyval(3)", _ratio(dec(scheme.polyval(ca, coeffs)), np.polynomial.polynomial.polyval(a, coeffs), a))
        prod = scheme.mul(scheme.mul(ca, cb), scheme.mul(cb, ca))
        note("mul depth 2", _ratio(dec(prod), (a * b) ** 2, a, b))
    return worst


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    worst = measure(args.trials, args.seed)
    print(f"CKKS {CKKS_PARAMS}; {args.trials} trials, inputs uniform in [-4, 4]")
    print(f"{'operation':<14} max |err| / (1 + M)   in 2^-{UNIT_BITS}")
    for op, value in worst.items():
        print(f"{op:<14} {value:.3e}          {value * 2.0 ** UNIT_BITS:.4f}")
    print(f"largest: {max(worst.values()) * 2.0 ** UNIT_BITS:.4f} x 2^-{UNIT_BITS}; "
          f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
