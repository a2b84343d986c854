"""The CKKS plaintext matvec: blocks for the batch's rows only, cached diagonals, keys for its width only."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import he_core
from he_core import KeyRequirements, SeededRandom
from he_core.schemes.ckks import CkksParams, CkksScheme, layout

BOUND = 2.0**-17


@pytest.fixture(scope="module")
def ctx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=4096, levels=3, allow_insecure=True))
    keys = scheme.keygen(KeyRequirements(sizes=(8, 1), multiply=True), rng=SeededRandom(3))
    return scheme, keys


def all_slots(s, ct, secret):
    return s._decrypt_slots(ct, s._s_full(secret)).real


def test_a_dirty_input_costs_no_cleaning_level_and_leaves_zeros_outside(ctx):
    """A rotated batch has garbage outside its rows: the product ignores it without a masking level."""
    s, k = ctx
    rng = np.random.default_rng(1)
    x, m = rng.uniform(-1, 1, (3, 8)), rng.uniform(-1, 1, (5, 8))
    fresh = s.encrypt(x)
    dirty = s.rotate(s.rotate(fresh, 3), -3)  # the same rows, with the other slots marked dirty
    assert dirty.meta["dirty"]
    out = s.matvec(dirty, m)
    assert s.budget(out)["level"] == s.budget(fresh)["level"] - 1
    assert np.max(np.abs(s.decrypt_exact_local(out, k.secret) - x @ m.T)) <= BOUND
    valid = layout.pack(np.ones((3, 5)), s.params.slots, out.meta["stride"])[0] > 0
    assert np.abs(all_slots(s, out, k.secret)[0][~valid]).max() <= BOUND


@pytest.mark.parametrize("declared", [1, 5])
def test_rows_beyond_the_declared_ones_do_not_reach_the_product(ctx, declared):
    s, k = ctx
    rng = np.random.default_rng(2)
    x, m = rng.uniform(-1, 1, (40, 6)), rng.uniform(-1, 1, (2, 6))
    full = s.encrypt(x)
    forged = full.replace(shape=(declared, 6))
    out = s.matvec(forged, m)
    np.testing.assert_allclose(s.decrypt_exact_local(out, k.secret), x[:declared] @ m.T, atol=BOUND, rtol=0)
    slots = all_slots(s, out, k.secret)[0].reshape(-1, 8)
    assert np.abs(slots[declared:]).max() <= BOUND < np.abs(x[declared:] @ m.T).max()


def test_a_batch_over_several_ciphertexts_is_still_exact(ctx):
    s, k = ctx
    rng = np.random.default_rng(3)
    rows = s.params.slots // 8 + 5  # two ciphertexts, the second partly used
    x, m = rng.uniform(-1, 1, (rows, 8)), rng.uniform(-1, 1, (8, 8))
    out = s.matvec(s.encrypt(x), m)
    assert np.max(np.abs(s.decrypt_exact_local(out, k.secret) - x @ m.T)) <= BOUND


def test_diagonals_are_encoded_once_per_matrix(ctx, monkeypatch):
    s, k = ctx
    rng = np.random.default_rng(4)
    x, m = rng.uniform(-1, 1, (2, 8)), rng.uniform(-1, 1, (8, 8))
    calls = []
    encode = s._plain_factors
    monkeypatch.setattr(s, "_plain_factors", lambda *a, **kw: calls.append(1) or encode(*a, **kw))
    a = s.encrypt(x)
    first = s.decrypt_exact_local(s.matvec(a, m), k.secret)
    second = s.decrypt_exact_local(s.matvec(s.encrypt(x), m), k.secret)
    assert len(calls) == 1
    np.testing.assert_allclose(first, second, atol=2 * BOUND, rtol=0)
    changed = m.copy()
    changed[0, 0] += 0.5
    out = s.matvec(a, changed)
    assert len(calls) == 2  # another matrix, another encoding
    assert np.max(np.abs(s.decrypt_exact_local(out, k.secret) - x @ changed.T)) <= BOUND


def test_minimal_keys_with_transforms_hold_one_matvec_and_nothing_else():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CkksScheme(CkksParams(poly_degree=4096, levels=2, allow_insecure=True))
    req = KeyRequirements(sizes=(1, 32), multiply=True, minimal=True, transforms=(32,))
    secret, public = s.keygen(req, rng=SeededRandom(5))
    wanted = {s._galois_element(r) for r in s._matvec_rotations(32)}
    assert {int(g) for g in public.data["galois"]} == wanted
    x, m = np.random.default_rng(6).uniform(-1, 1, (1, 30)), np.random.default_rng(7).uniform(-1, 1, (3, 30))
    out = s.matvec(s.encrypt(x), m)
    assert np.max(np.abs(s.decrypt_exact_local(out, secret) - x @ m.T)) <= BOUND
    loaded = he_core.serialization.loads(he_core.serialization.dumps(public), allow_insecure=True)
    assert loaded.requirements == req and loaded.requirements.transforms == (32,)
    with pytest.raises(ValueError, match="transforms must be positive"):
        KeyRequirements(transforms=(0,))


@pytest.mark.parametrize("shape", [(1, 30), (2, 30)])
def test_a_one_row_matrix_skips_the_start_rotation(shape, monkeypatch):
    """One output row has no negative diagonal: its matvec reads the unshifted input (no start rotation)
    and takes fewer giant steps, with the minimal keys of its width; two rows still need the start."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CkksScheme(CkksParams(poly_degree=4096, levels=2, allow_insecure=True))
    secret, _ = s.keygen(KeyRequirements(sizes=(1, 32), multiply=True, minimal=True, transforms=(32,)),
                         rng=SeededRandom(8))
    rng = np.random.default_rng(9)
    x, m = rng.uniform(-1, 1, (3, 30)), rng.uniform(-1, 1, shape)
    a = s.encrypt(x)
    counted = []
    for name in ("key_switch", "key_switch_hoisted"):
        fn = getattr(s.switcher, name)
        monkeypatch.setattr(s.switcher, name, lambda *args, _fn=fn, _name=name, **kw: counted.append(_name) or _fn(*args,
                                                                                                          **kw))
    out = s.matvec(a, m)
    full, hoisted = counted.count("key_switch"), counted.count("key_switch_hoisted")
    # 30 diagonals k = 0..29 (one row): 7 hoisted babies, giants 8, 16, 24; two rows add k = -1 and the start
    assert (full, hoisted) == ((3, 7) if shape[0] == 1 else (6, 7))
    got = s._decrypt_slots(out, s._s_full(secret)).real.reshape(-1, 32)[:3]
    np.testing.assert_allclose(got[:, : shape[0]], x @ m.T, atol=BOUND, rtol=0)
    assert np.abs(got[:, shape[0]:]).max() <= BOUND  # nothing outside the output rows
