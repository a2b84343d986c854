"""Seeded secret-key ciphertexts (he_core/schemes/ckks/seeded.py): the uniform half travels as a 32-byte seed."""
from __future__ import annotations

import numpy as np
import pytest

import he_core
from he_core import FormatError, KeyRequirements, SeededRandom
from he_core import serialization as ser
from he_core.schemes.ckks import seeded


@pytest.fixture(scope="module")
def keyed():
    s = he_core.get_scheme("ckks")
    secret, _ = s.keygen(KeyRequirements(sizes=(1, 4)), rng=SeededRandom(3))
    return s, secret


def test_expansion_is_deterministic_below_each_prime_and_uniform_looking(keyed):
    s, _ = keyed
    primes = s.params.q_primes
    seed = bytes(range(32))
    a = seeded.expand(seed, primes, s.params.poly_degree)
    assert a.shape == (len(primes), s.params.poly_degree) and a.dtype == np.uint64
    assert np.array_equal(a, seeded.expand(seed, primes, s.params.poly_degree))
    assert not np.array_equal(a, seeded.expand(bytes(32), primes, s.params.poly_degree))
    assert not np.array_equal(a[0], a[1] % np.uint64(primes[0]))  # each prime draws its own stream
    for row, q in zip(a, primes):
        assert int(row.max()) < q
        u = row.astype(np.float64) / q  # 8,192 draws: the mean within 6 sigma of 1/2, each quarter 1/4 +- 6 sigma
        assert abs(u.mean() - 0.5) < 6 * np.sqrt(1 / 12 / u.size)
        quarters = np.bincount(np.minimum((u * 4).astype(int), 3), minlength=4) / u.size
        assert np.all(np.abs(quarters - 0.25) < 6 * np.sqrt(0.25 * 0.75 / u.size))
    with pytest.raises(FormatError, match="32"):
        seeded.expand(b"short", primes, 16)


def test_a_secret_key_encryption_travels_at_half_size_and_comes_back_the_same(keyed):
    s, secret = keyed
    x = np.random.default_rng(0).uniform(-4, 4, (3, 4))
    ct = s.encrypt(x, secret)
    assert len(ct.meta[seeded.META_KEY]) == ct.data.shape[0]
    whole = s.encrypt(x)  # a public-key encryption has no seed
    assert seeded.META_KEY not in whole.meta and s.wire_form(whole) is None
    small, big = ser.dumps(ct), ser.dumps(whole)
    assert len(small) < 0.51 * len(big)
    assert ser.wire_nbytes(ct) == ct.data.nbytes // 2 + 32 * ct.data.shape[0]
    back = ser.loads(small)
    assert np.array_equal(back.data, ct.data) and back.meta == ct.meta
    assert np.max(np.abs(s.decrypt_exact_local(back, secret) - x)) < 2.0**-20 * 5


def test_a_computed_ciphertext_travels_whole(keyed):
    s, secret = keyed
    ct = s.encrypt(np.ones((1, 4)), secret)
    for derived in (s.mul_plain(ct, 0.5), s.add(ct, ct), s.rotate(ct, 1) if s.supports(he_core.Capability.ROTATE)
                    else s.add(ct, ct)):
        assert seeded.META_KEY not in derived.meta
        assert len(ser.dumps(derived)) > 1.9 * ser.wire_nbytes(ct)
        assert np.array_equal(ser.loads(ser.dumps(derived)).data, derived.data)


def test_a_stale_seed_is_caught_and_the_ciphertext_written_whole(keyed):
    """Metadata copied onto another ciphertext (its ``a`` no longer the seed's) must not be written seeded."""
    s, secret = keyed
    ct = s.encrypt(np.ones((1, 4)), secret)
    other = s.encrypt(np.full((1, 4), 2.0), secret)
    stale = other.replace(meta={**other.meta, seeded.META_KEY: ct.meta[seeded.META_KEY]})
    assert s.wire_form(stale) is None
    back = ser.loads(ser.dumps(stale))
    assert np.array_equal(back.data, other.data) and seeded.META_KEY not in back.meta


@pytest.mark.parametrize("where", ["first word of the first limb", "last checked word of the last limb"])
def test_a_changed_uniform_half_is_caught_within_the_checked_prefix(keyed, where):
    """The sender's check reads a prefix of each limb: a change there (as any operation makes) is caught."""
    s, secret = keyed
    ct = s.encrypt(np.ones((2, 4)), secret)
    data = ct.data.copy()
    limb, word = (0, 0) if where.startswith("first") else (data.shape[2] - 1, seeded.CHECK_WORDS - 1)
    data[-1, 1, limb, word] = (int(data[-1, 1, limb, word]) + 1) % int(s.params.q_primes[limb])
    assert s.wire_form(ct) is not None and s.wire_form(ct.replace(data=data)) is None


def test_the_checked_prefix_is_the_start_of_the_whole_expansion(keyed):
    s, _ = keyed
    primes, n = s.params.q_primes, s.params.poly_degree
    seed = bytes(range(1, 33))
    whole = seeded.expand(seed, primes, n)
    assert seeded._starts_as(seed, primes, whole, seeded.CHECK_WORDS)
    assert not seeded._starts_as(bytes(32), primes, whole, seeded.CHECK_WORDS)


def test_the_same_randomness_gives_the_same_seeded_ciphertext(keyed):
    s, secret = keyed
    a = s.encrypt(np.ones((2, 4)), secret, rng=SeededRandom(9))
    b = s.encrypt(np.ones((2, 4)), secret, rng=SeededRandom(9))
    assert np.array_equal(a.data, b.data) and a.meta[seeded.META_KEY] == b.meta[seeded.META_KEY]


def test_malformed_seeded_data_is_refused_by_name(keyed):
    s, secret = keyed
    ct = s.encrypt(np.ones((2, 4)), secret)
    c0 = np.ascontiguousarray(ct.data[:, :1])
    primes = s.params.q_primes
    assert np.array_equal(seeded.from_wire(c0, ct.meta, primes), ct.data)
    with pytest.raises(FormatError, match="one seed per ciphertext"):
        seeded.from_wire(np.concatenate([c0, c0]), ct.meta, primes)
    with pytest.raises(FormatError, match="one seed per ciphertext"):
        seeded.from_wire(c0, {}, primes)
    with pytest.raises(FormatError, match="not hex"):
        seeded.from_wire(c0, {seeded.META_KEY: ["zz" * 32]}, primes)
    with pytest.raises(FormatError, match="32"):
        seeded.from_wire(c0, {seeded.META_KEY: ["ab" * 8]}, primes)
    with pytest.raises(FormatError, match="count, 1, limbs, n"):
        seeded.from_wire(ct.data, ct.meta, primes)
    with pytest.raises(FormatError, match="limbs"):
        seeded.from_wire(c0, ct.meta, primes[:1])
    vhe = he_core.scheme_class("vhe")
    assert vhe.wire_form(ct) is None
    with pytest.raises(FormatError, match="no ciphertext in a smaller form"):
        vhe.from_wire_form(None, c0, ct.meta)


def test_a_refresh_answer_travels_seeded(keyed):
    """The key holder's answer to a masked refresh is a fresh secret-key encryption: half its size on the wire."""
    s, secret = keyed
    x = np.random.default_rng(1).uniform(-1, 1, (2, 4))
    masked = s.level_drop(s.mul_plain(s.encrypt(x), 1.0), 1) if s.params.levels > 1 else s.encrypt(x)
    fresh = s.reencrypt_masked(masked, None, secret, rng=SeededRandom(4))
    assert s.wire_form(fresh) is not None
    assert ser.wire_nbytes(fresh) < 0.51 * fresh.data.nbytes
    assert np.array_equal(ser.loads(ser.dumps(fresh)).data, fresh.data)
