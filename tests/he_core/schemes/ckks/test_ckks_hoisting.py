"""Hoisted key switching and the cost of row moves and matvec (counted in key switches).

The benchmark engineer's training profile spent most of an epoch in row gathers (one
composed rotation per moved row) and matvec; these tests pin the fixes structurally:
the hoisted kernels agree with plain key switching, and the number of key switches of
the profiled operations stays near the baby-step / giant-step count (the old code used
about three times as many). Speed itself is measured in
benchmarks/he_core/schemes/ckks/test_bench_ckks_moves.py.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from he_core import KeyRequirements, SeededRandom
from he_core.errors import HEError
from he_core.schemes.ckks import CkksParams, CkksScheme

BOUND = 2.0**-17


@pytest.fixture(scope="module")
def ctx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=4096, levels=2, allow_insecure=True))
    keys = scheme.keygen(KeyRequirements(sizes=(8, 1), multiply=True), rng=SeededRandom(3))
    return scheme, keys


class Counter:
    """Counts the key switches (plain and hoisted) a scheme's key switcher performs."""

    def __init__(self, switcher, monkeypatch):
        self.n = 0
        for name in ("key_switch", "key_switch_hoisted"):
            fn = getattr(switcher, name)
            monkeypatch.setattr(switcher, name, self._wrap(fn))

    def _wrap(self, fn):
        def counted(*args, **kwargs):
            self.n += 1
            return fn(*args, **kwargs)
        return counted


def test_hoisted_keyswitch_equals_keyswitch(ctx):
    s, k = ctx
    r = s.switcher
    ct = s.encrypt(np.random.default_rng(1).uniform(-1, 1, (3, 8)))
    key = s.public_keys.data["relin"]
    for level in (2, 1, 0):
        d = np.ascontiguousarray(ct.data[0, 1, : level + 1])
        ext = r.mod_up(d, s.params.alpha)
        assert np.array_equal(r.key_switch_hoisted(ext, key, s.params.alpha), r.key_switch(d, key, s.params.alpha))


@pytest.mark.parametrize("steps", [[1, 2, 3, 5, 7], [-1, -8, 16, 24], [3]])
def test_rotate_many_matches_single_rotations(ctx, steps):
    s, k = ctx
    x = np.random.default_rng(2).uniform(-1, 1, (1, s.params.slots))
    ct = s.encrypt(x)
    many = s._rotate_many(ct, steps)
    for step in steps:
        got = s.decrypt_exact_local(many[step], k.secret)
        assert np.max(np.abs(got - np.roll(x, -step, axis=1))) <= BOUND


def test_hoisted_kernels_refuse_bad_input(ctx):
    s, _ = ctx
    r = s.switcher
    ct = s.encrypt([[1.0]])
    ext = r.mod_up(np.ascontiguousarray(ct.data[0, 1]), s.params.alpha)
    key = s.public_keys.data["relin"]
    with pytest.raises(HEError):
        r.key_switch_hoisted(ext[:, :-1].copy(), key, s.params.alpha)
    with pytest.raises(HEError):
        r.key_switch_hoisted(ext, key[:, :, :-1].copy(), s.params.alpha)
    bad = np.full(s.ring.n, s.ring.n, dtype=np.uint32)  # out of range: refused in C, never read
    with pytest.raises(HEError):
        r.key_switch_hoisted(ext, key, s.params.alpha, bad)


def test_restride_of_a_fresh_column_is_cheap(ctx, monkeypatch):
    """inner's (n, 1) output minus a fresh (n, 1): was one composed rotation per row (~40 key switches)."""
    s, k = ctx
    rng = np.random.default_rng(4)
    x, w, t = rng.uniform(-1, 1, (16, 8)), rng.uniform(-1, 1, (16, 8)), rng.uniform(-1, 1, (16, 1))
    inner, fresh = s.inner(s.encrypt(x), s.encrypt(w)), s.encrypt(t)
    count = Counter(s.switcher, monkeypatch)
    out = s.sub(inner, fresh)
    assert count.n <= 12, f"{count.n} key switches"  # was 43
    assert np.max(np.abs(s.decrypt_exact_local(out, k.secret) - ((x * w).sum(1, keepdims=True) - t))) <= BOUND


def test_take_rows_is_cheap(ctx, monkeypatch):
    s, k = ctx
    x = np.random.default_rng(5).uniform(-1, 1, (16, 8))
    rows = np.array([3, 1, 4, 1, 5, 9, 2, 6, 15, 0, 7, 8])
    a = s.encrypt(x)
    count = Counter(s.switcher, monkeypatch)
    out = s.take_rows(a, rows)
    assert count.n <= 8, f"{count.n} key switches"  # was 10
    assert np.max(np.abs(s.decrypt_exact_local(out, k.secret) - x[rows])) <= BOUND


def test_matvec_uses_about_two_sqrt_diagonals_key_switches(ctx, monkeypatch):
    s, k = ctx
    rng = np.random.default_rng(6)
    x, m = rng.uniform(-1, 1, (16, 8)), rng.uniform(-1, 1, (8, 8))
    a = s.encrypt(x)
    count = Counter(s.switcher, monkeypatch)
    out = s.matvec(a, m)
    assert count.n <= 8, f"{count.n} key switches"  # 1 + 3 babies + 3 giants for 15 diagonals
    assert np.max(np.abs(s.decrypt_exact_local(out, k.secret) - x @ m.T)) <= BOUND
