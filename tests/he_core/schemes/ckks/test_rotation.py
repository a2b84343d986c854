"""he_core.schemes.ckks.rotation: Galois elements, rotation plans, rotate-and-sum, masks and row gathers.

Checked on whole slot vectors (every one of the N/2 slots, garbage included), decrypted
exactly, against numpy's ``roll`` and sums, within the result's own ``slot_bound``
(an explicitly insecure N = 1024 ring: the code paths of the 128-bit sets).
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from he_core import KeyRequirements, SeededRandom
from he_core.errors import KeyMissingError
from he_core.schemes.ckks import CkksParams, CkksScheme, layout
from he_core.schemes.ckks.rotation import _naf

SETTINGS = settings(max_examples=15, deadline=None)


def small(**req):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=1024, levels=3, allow_insecure=True))
    keys = scheme.keygen(KeyRequirements(**req), rng=SeededRandom(17))
    return scheme, keys.secret


@pytest.fixture(scope="module")
def ctx():
    return small(sizes=(1, 4, 8), rotations=(1, 3, -5))


@pytest.fixture(scope="module")
def bare():
    """Only the keys asked for: rotations by 1 and 2 (everything else composes or is missing)."""
    return small(sizes=(1,), rotations=(1, 2), minimal=True)


def slots_of(scheme, ct, secret) -> np.ndarray:
    """Every slot of every ciphertext of the batch, decrypted exactly (real parts)."""
    return scheme._decrypt_slots(ct, scheme._s_full(secret)).real


def full(scheme, seed) -> tuple[np.ndarray, object]:
    """A one-ciphertext batch with a value in every slot."""
    slots = scheme.params.slots
    x = np.random.default_rng(seed).uniform(-4, 4, (slots // 8, 8))
    return x, scheme.encrypt(x)


def close(scheme, ct, got, want):
    bound = scheme.noise_estimate(ct)["slot_bound"]
    assert np.abs(got - want).max() <= bound, (np.abs(got - want).max(), bound)


@given(k=st.integers(-2**40, 2**40))
def test_naf_is_a_non_adjacent_signed_binary_form_of_k(k):
    terms = _naf(k) if k >= 0 else [-t for t in _naf(-k)]
    assert sum(terms) == k
    bits = sorted(abs(t).bit_length() - 1 for t in terms)
    assert all(abs(t) & (abs(t) - 1) == 0 for t in terms)
    assert all(b - a >= 2 for a, b in zip(bits, bits[1:]))
    assert len(terms) <= bin(abs(k)).count("1")


@given(a=st.integers(-5000, 5000), b=st.integers(-5000, 5000))
def test_galois_elements_compose_like_the_rotations(ctx, a, b):
    scheme, _ = ctx
    two_n = 2 * scheme.params.poly_degree
    ga, gb, gab = (scheme._galois_element(s) for s in (a, b, a + b))
    assert ga * gb % two_n == gab
    assert scheme._galois_element(a + scheme.params.slots) == ga


@given(steps=st.integers(-600, 600))
def test_a_rotation_plan_multiplies_to_its_element_and_uses_existing_keys(ctx, bare, steps):
    scheme, _ = ctx if steps % 2 else bare  # the default keys, or only rotations by 1 and 2
    try:
        plan = scheme._rotation_plan(steps)
    except KeyMissingError:
        assert scheme is bare[0] and steps % bare[0].params.slots not in (1, 2, 3)
        return
    product = 1
    for g in plan:
        product = product * g % (2 * scheme.params.poly_degree)
        assert scheme._galois_key(g) is not None
    assert product == scheme._galois_element(steps)
    assert (plan == []) == (steps % scheme.params.slots == 0)
    if steps % scheme.params.slots in (1, 2):
        assert len(plan) == 1  # a rotation with its own key is one key switch


def test_a_rotation_with_no_key_path_names_the_missing_key():
    scheme, _ = small(sizes=(1,), rotations=(2,), minimal=True)
    with pytest.raises(KeyMissingError, match="no Galois key for rotation 1"):
        scheme._rotation_plan(3)


@given(steps=st.integers(-1100, 1100), seed=st.integers(0, 2**32 - 1))
@SETTINGS
def test_rotation_rolls_every_slot(ctx, steps, seed):
    scheme, secret = ctx
    x, ct = full(scheme, seed)
    out = scheme._rotate_ct(ct, steps)
    close(scheme, out, slots_of(scheme, out, secret)[0], np.roll(x.ravel(), -steps))


@given(seed=st.integers(0, 2**32 - 1), steps=st.lists(st.integers(-40, 40), min_size=1, max_size=5, unique=True))
@SETTINGS
def test_hoisted_rotations_agree_with_one_at_a_time(ctx, seed, steps):
    scheme, secret = ctx
    x, ct = full(scheme, seed)
    many = scheme._rotate_many(ct, steps)
    assert set(many) == set(steps)
    for k, out in many.items():
        close(scheme, out, slots_of(scheme, out, secret)[0], np.roll(x.ravel(), -k))


@given(seed=st.integers(0, 2**32 - 1), log_width=st.integers(0, 5), log_step=st.integers(0, 4))
@SETTINGS
def test_sum_within_adds_width_slots_spaced_by_step(ctx, seed, log_width, log_step):
    scheme, secret = ctx
    x, ct = full(scheme, seed)
    width, step = 2**log_width, 2**log_step
    out = scheme._sum_within(ct, width, step)
    z = x.ravel()
    want = sum(np.roll(z, -i * step) for i in range(width))
    close(scheme, out, slots_of(scheme, out, secret)[0], want)


@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 7))
@SETTINGS
def test_clean_zeroes_the_garbage_a_rotation_leaves(ctx, seed, steps):
    scheme, secret = ctx
    x = np.random.default_rng(seed).uniform(-4, 4, (3, 5))
    ct = scheme.encrypt(x)
    dirty = scheme.rotate(ct, steps)
    assert dirty.meta["dirty"]
    clean = scheme._clean(dirty)
    assert layout.is_clean(clean) and scheme.level(clean) == scheme.level(dirty) - 1
    padded = layout.pack(x, scheme.params.slots, ct.meta["stride"])[0]
    rolled = np.roll(padded, -steps)
    want = layout.pack(layout.unpack(rolled[None, :], 3, 5, ct.meta["stride"]), scheme.params.slots,
                       ct.meta["stride"])[0]
    close(scheme, clean, slots_of(scheme, clean, secret)[0], want)


@given(data=st.data())
@SETTINGS
def test_a_gather_sends_weighted_source_rows_to_their_destinations(ctx, data):
    scheme, secret = ctx
    rows, size = data.draw(st.integers(1, 6)), data.draw(st.sampled_from([1, 4, 8]))
    x = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).uniform(-4, 4, (rows, size))
    out_rows = data.draw(st.integers(1, 6))
    plan = data.draw(st.lists(st.tuples(st.integers(0, out_rows - 1), st.integers(0, rows - 1),
                                        st.sampled_from([1.0, -1.0, 0.5, 3.0])), min_size=1, max_size=8))
    ct = scheme.encrypt(x)
    stride = data.draw(st.sampled_from([s for s in (1, 4, 8, 16) if s >= ct.meta["stride"]]))
    out = scheme._gather(ct, plan, out_rows, stride)
    assert out.shape == (out_rows, size) and out.meta["stride"] == stride and layout.is_clean(out)
    want = np.zeros((out_rows, size))
    for dst, src, w in plan:
        want[dst] += w * x[src]
    close(scheme, out, scheme.decrypt_exact_local(out, secret), want)


def test_conjugation_is_complex_conjugation_of_every_slot(ctx):
    scheme, secret = ctx
    slots = scheme.params.slots
    rng = np.random.default_rng(3)
    z = rng.uniform(-2, 2, slots) + 1j * rng.uniform(-2, 2, slots)
    # The public API takes reals only: add complex slots to an encryption of zero.
    ct = scheme._add_slots(scheme.encrypt(np.zeros((1, slots))), z[None, :])
    out = scheme.conjugate(ct)
    got = scheme._decrypt_slots(out, scheme._s_full(secret))[0]
    # the real part's bound holds for the imaginary part too (the error is symmetric between them)
    bound = scheme.noise_estimate(out)["slot_bound"]
    assert np.abs(got.real - z.real).max() <= bound and np.abs(got.imag + z.imag).max() <= bound
