"""Shared by the thread-count tests: run a call under 1 and 2 threads and compare exactly."""
from __future__ import annotations

import time

import numpy as np

import he_core
from he_core.threads import using_threads

COUNTS = (1, 2)


def split_jobs() -> int:
    """Jobs the native pools have split so far (a worker took part in each)."""
    return sum(he_core.native.load(name).lib.he_split_jobs() for name in ("vhe", "ckks"))


def same(a, b) -> bool:
    """Exact equality of nested tuples / lists / arrays / ciphertexts / numbers."""
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, he_core.Ciphertext):
        return same(np.asarray(a.data), np.asarray(b.data))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    return a == b


def each_count(fn, patience_s: float = 5.0) -> list:
    """fn() under every thread count. With more than one thread a worker must really have
    taken part (else the comparison would prove nothing); on a busy machine a worker may
    not be scheduled before the caller has done every item, so the call is repeated (each
    repeat compared too) for up to patience_s until one has."""
    out = []
    for n in COUNTS:
        with using_threads(n):
            before, start = split_jobs(), time.monotonic()
            out.append(fn())
            while n > 1 and split_jobs() == before and time.monotonic() - start < patience_s:
                assert same(fn(), out[-1])
            assert n == 1 or split_jobs() > before, "no worker took part: the comparison would prove nothing"
    return out
