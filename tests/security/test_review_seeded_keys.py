"""Review of seeded CKKS switching keys (5d626d9), written as the attacker would run it.

A passing test is a claim that holds; ``xfail(strict=True)`` is an attack that works on the current
code (its reason says what happens and the fix). Who sees what:

* a key file's reader (a server registering a client, a Dask worker, the trainer) receives ``b``
  halves and one 32-byte seed per key, and expands ``a`` itself: its cost must be tied to the
  bytes the file declares (the standard of ``test_review_seeded.py`` for ciphertexts);
* ``a`` is public either way, so a seed shows what the whole key shows, provided the seed is fresh
  OS randomness, never reused, and its SHAKE stream is domain-separated from every other one;
* a malicious client chooses its keys: a seed binds ``a`` to SHAKE output, nothing binds ``b``.

Run: ``python -m pytest -q tests/security/test_review_seeded_keys.py``.
"""
from __future__ import annotations

import hashlib
import math
import os
import warnings

import numpy as np
import pytest

import he_core
from he_core import FormatError, KeyRequirements, PublicKeys, SeededRandom
from he_core import serialization as ser
from he_core.dumping import holds_seeded, holds_seeded_keys
from he_core.formats import container
from he_core.keys import KEY_ID_DOMAIN
from he_core.schemes.ckks import CkksParams, CkksScheme, keys as keygen, seeded, seeded_keys

pytestmark = [pytest.mark.filterwarnings("ignore::he_core.SecurityWarning"),
              pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")]


def loads(blob, **kw):
    return ser.loads(blob, **{"allow_insecure": True, **kw})


@pytest.fixture(scope="module")
def keyed():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CkksScheme(CkksParams(poly_degree=1024, levels=2, allow_insecure=True))
    pair = s.keygen(KeyRequirements(sizes=(4,), rotations=(3,)), rng=SeededRandom(7))
    return s, pair


class _Shake:
    """Counts every SHAKE-256 byte the seeded expansions ask for (ciphertexts' and keys' share one routine)."""

    def __init__(self):
        self.calls, self.out_bytes = 0, 0

    def shake_256(self, data=b""):
        xof, meter = hashlib.shake_256(data), self

        class Metered:
            def digest(self, size):
                meter.calls += 1
                meter.out_bytes += size
                return xof.digest(size)
        return Metered()


@pytest.fixture
def shake(monkeypatch):
    meter = _Shake()
    monkeypatch.setattr(seeded, "hashlib", meter)
    return meter


def _edited(blob: bytes, edit) -> bytes:
    """An unsigned file rebuilt after ``edit(header, arrays)`` (lengths, digest and flag recomputed: anyone can)."""
    header, arrays = container.unpack(blob)
    edit(header, arrays)
    return container.pack(header, list(arrays.items()), seeded=holds_seeded(header),
                          seeded_keys=holds_seeded_keys(header))


def _relin_name(arrays: dict) -> str:
    """The stored name of the relinearisation key's array (names are ``<index>:<path>``)."""
    (name,) = [k for k in arrays if k.endswith(":key/relin")]
    return name


def _b_nbytes(data: dict) -> int:
    keys = [data["relin"]] + list(data["galois"].values())
    return sum(k.nbytes for k in keys)


# ---------------------------------------------------------------- 1. parsing: work per byte declared
def test_a_key_files_expansion_reads_at_most_an_eighth_more_than_the_b_halves_it_declares(keyed, shake):
    """Many keys, many seeds (the default set: 33 keys, 3 digits, 4 limbs): SHAKE output is bounded by the
    b bytes the file holds (each b word stands for one a word; rejection sampling reads ~n/8 + 64 more)."""
    _, pair = keyed
    blob = ser.dumps(pair.public)
    shake.calls = shake.out_bytes = 0
    back = loads(blob)
    b_bytes = _b_nbytes(pair.public.data) // 2
    keys = 1 + len(pair.public.data["galois"])
    n_limbs = keys * keygen.key_digits(pair.public.params) * pair.public.data["relin"].shape[2]
    assert shake.calls == n_limbs  # one SHAKE call per (key, digit, prime): no retries at these primes
    n = pair.public.params.poly_degree
    assert shake.out_bytes <= (1 + 1 / 8 + 64 / n) * b_bytes, (shake.out_bytes, b_bytes)  # 1.19 at N = 1024
    assert shake.out_bytes <= 1.2 * len(blob), (shake.out_bytes, len(blob))  # measured 3,969,024 / 3,415,158
    assert all(np.array_equal(back.data["galois"][g], k) for g, k in pair.public.data["galois"].items())


@pytest.mark.parametrize("case", ["one-coefficient-b", "one-digit-b", "no-limb-b", "huge-declared-ring"])
def test_b_halves_smaller_than_the_ring_are_refused_before_any_expansion(keyed, shake, case):
    """A file that holds little and names a seed per key: b halves that broadcast (one coefficient), too few
    digits or limbs, or a header that declares N = 65536 over N = 1024 arrays: refused by name, 0 SHAKE calls."""
    _, pair = keyed
    blob = ser.dumps(pair.public)

    def edit(header, arrays):
        name = _relin_name(arrays)
        relin = arrays[name]
        if case == "one-coefficient-b":  # (digits, 1, limbs, 1) broadcasts into the key's b: 24x the work per byte
            arrays[name] = np.ascontiguousarray(relin[..., :1])
        elif case == "one-digit-b":
            arrays[name] = np.ascontiguousarray(relin[:1])
        elif case == "no-limb-b":
            arrays[name] = np.ascontiguousarray(relin[:, :, :0])
        else:
            header["params"]["poly_degree"] = 65536
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header["params_id"] = CkksParams(**header["params"]).param_id
    crafted = _edited(blob, edit)
    shake.calls = 0
    with pytest.raises(FormatError, match="b halves of shape"):
        loads(crafted)
    assert shake.calls == 0


def test_the_arrays_named_in_the_crafted_files_are_the_ones_the_loader_reads(keyed):
    """The control for the test above: the array names it edits are the relinearisation key's b halves."""
    _, pair = keyed
    _, arrays = container.unpack(ser.dumps(pair.public))
    assert arrays[_relin_name(arrays)].shape == (3, 1, 4, 1024)


# ---------------------------------------------------------------- 2. confusion: flags and forms
def test_a_bundle_whose_public_keys_are_seeded_but_whose_flag_is_clear_is_refused(keyed):
    s, pair = keyed
    s.set_public_keys(pair.public)
    ct = s.encrypt(np.ones((1, 4)))
    bundle = ser.Bundle({"x": ct}, {"note": "review"}, public=pair.public)
    blob = ser.dumps(bundle)
    header, arrays = container.unpack(blob)
    assert header["public"].get("wire") == "seeded" and "wire" not in header["items"]["x"]
    assert np.array_equal(loads(blob).public.data["relin"], pair.public.data["relin"])  # the control
    unflagged = container.pack(header, list(arrays.items()), seeded=False, seeded_keys=False)
    with pytest.raises(FormatError, match="seeded-keys flag"):
        loads(unflagged)


def _ciphertext_era_reader(blob: bytes) -> dict:
    """What builds 7f00a0f .. f2c2199 (SEEDED known for ciphertexts only) do with a file, by their own rules:
    flags within SIGNED | SEEDED, the flag agreeing with a ``wire`` field on the header or a bundle entry, and
    key data decoded as stored (they have no key wire form, and ignore an unknown ``wire`` on keys)."""
    header, arrays = container.unpack(blob)
    flags = int.from_bytes(blob[10:12], "little")
    if flags & ~(container.FLAG_SIGNED | container.FLAG_SEEDED):
        raise FormatError(f"unknown format flags {flags:#x}")
    items = header.get("items")
    entries = [header] + (list(items.values()) if isinstance(items, dict) else [])
    if bool(flags & container.FLAG_SEEDED) != any(isinstance(e, dict) and "wire" in e for e in entries):
        raise FormatError("the file's seeded flag and its ciphertexts' wire forms disagree")
    return arrays


def _relin_shape(arrays: dict) -> tuple:
    return arrays[_relin_name(arrays)].shape


def test_a_build_that_knows_only_seeded_ciphertexts_refuses_a_seeded_key_file(keyed):
    """LOW, fixed: builds 7f00a0f..f2c2199 know SEEDED (ciphertexts) and would read a seeded key file's b halves as
    whole keys; seeded keys set a flag of their own (SEEDED_KEYS, 0x4), which those builds refuse."""
    s, pair = keyed
    whole = {k: v for k, v in pair.public.data.items() if k not in seeded_keys.SEED_FIELDS}
    old = PublicKeys(pair.public.scheme, pair.public.params_id, pair.public.key_id, whole, pair.public.requirements,
                     pair.public.params)
    assert _relin_shape(_ciphertext_era_reader(ser.dumps(old)))[1] == 2  # the control: a whole file reads
    with pytest.raises(FormatError):
        arrays = _ciphertext_era_reader(ser.dumps(pair.public))
        assert _relin_shape(arrays)[1] == 2, "read b halves as a whole key"
    switch = s.make_switch_key(pair.secret, pair.secret, rng=SeededRandom(3))
    with pytest.raises(FormatError):
        _ciphertext_era_reader(ser.dumps(switch))


def test_builds_before_seeds_refuse_a_seeded_key_file_by_its_flag(keyed):
    """10dabc6 and earlier: only SIGNED is known in version 2 (their _check_preamble)."""
    _, pair = keyed
    blob = ser.dumps(pair.public)
    flags = int.from_bytes(blob[10:12], "little")
    assert flags & container.FLAG_SEEDED_KEYS and flags & ~container.FLAG_SIGNED


# ---------------------------------------------------------------- 3. integrity: what a seed binds
def test_a_chosen_b_with_an_honest_seed_travels_seeded_and_passes_every_check(keyed):
    """The malicious relinearisation key of test_deploy_attacks (error + P * 2^40, the HIGH there) keeps its
    honest seed and a: it is written seeded, reads back bit for bit and passes check_public. Seeds bind a, which
    the attack never touches, and a key may travel whole anyway: checking seeds would not stop it."""
    s, pair = keyed
    ring = s.ring
    relin = pair.public.data["relin"].copy()
    big_p = math.prod(int(p) for p in ring.p)
    for i, q_i in enumerate(ring.q):
        relin[:, 0, i] = (relin[:, 0, i].astype(object) + (big_p << 40) % int(q_i)) % int(q_i)
    evil = PublicKeys(pair.public.scheme, pair.public.params_id, pair.public.key_id,
                      {**pair.public.data, "relin": relin.astype(np.uint64)}, pair.public.requirements,
                      pair.public.params)
    blob = ser.dumps(evil)
    assert _relin_shape(container.unpack(blob)[1])[1] == 1  # travelled seeded: b and the seed
    back = loads(blob)
    assert np.array_equal(back.data["relin"], evil.data["relin"]) and back.key_id == pair.public.key_id
    s.check_public_keys(back)


# ---------------------------------------------------------------- 4. randomness
def test_switching_key_seeds_are_fresh_os_urandom_draws_never_reused(monkeypatch):
    drawn: list[bytes] = []
    real = os.urandom

    def spy(n):
        out = real(n)
        drawn.append(out)
        return out
    monkeypatch.setattr(os, "urandom", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CkksScheme(CkksParams(poly_degree=1024, levels=2, allow_insecure=True))
    pairs = [s.keygen(KeyRequirements(sizes=(4,), rotations=(1,), minimal=True)) for _ in range(2)]
    sw = s.make_switch_key(pairs[0].secret, pairs[1].secret)
    seeds = [p.public.data["relin_seed"].tobytes() for p in pairs] + [sw.data["key_seed"].tobytes()]
    seeds += [g.tobytes() for p in pairs for g in p.public.data["galois_seeds"].values()]
    seeds += [p.public.data["pk_seed"].tobytes() for p in pairs]
    assert len(seeds) == len(set(seeds)) == 2 * (2 + len(pairs[0].public.data["galois"])) + 1
    assert all(seed in drawn for seed in seeds)  # each a whole 32-byte os.urandom draw of its own


def test_expanded_a_halves_never_repeat_across_digits_primes_keys_and_uses(keyed):
    _, pair = keyed
    data = pair.public.data
    rows = [data["pk"][1, i].tobytes() for i in range(data["pk"].shape[1])]
    for key in [data["relin"]] + list(data["galois"].values()):
        rows += [key[j, 1, i].tobytes() for j in range(key.shape[0]) for i in range(key.shape[2])]
    assert len(rows) == len(set(rows))
    seed = data["relin_seed"].tobytes()
    primes, n = pair.public.params.q_primes + pair.public.params.p_primes, 1024
    as_switch = keygen.switch_a(primes, n, seed, 0)
    as_ct = seeded.expand(seed, primes, n)
    assert np.array_equal(as_switch, data["relin"][0, 1]) and not np.any(as_switch == as_ct)


def test_the_hash_domains_are_distinct_and_none_is_a_prefix_of_another():
    """Every SHAKE input of the project starts with its domain; a chosen seed cannot turn one use's input into
    another's when no domain (with its separator) is a prefix of another."""
    from henn.distributed import training_worker
    domains = {"ciphertext a": seeded._DOMAIN, "switch key a": keygen.SWITCH_DOMAIN,
               "public key a": keygen.PK_DOMAIN + b"\x00", "key id": KEY_ID_DOMAIN,
               "masks": training_worker.MASK_DOMAIN + b"\x00", "request id": training_worker.REQUEST_DOMAIN + b"\x00"}
    for a, da in domains.items():
        for b, db in domains.items():
            assert a == b or not db.startswith(da), f"{a} is a prefix of {b}"


# ---------------------------------------------------------------- 5. what a seeded file shows
def test_a_seeded_key_file_is_a_function_of_the_whole_key_and_its_seeds(keyed):
    """0 bits more than the whole key: the seeded file is rebuilt byte for byte from the loaded whole keys, and
    the whole keys from the file; the seeds are independent draws (test above), so they carry nothing of s."""
    _, pair = keyed
    blob = ser.dumps(pair.public)
    back = loads(blob)
    assert ser.dumps(back) == blob
    _, arrays = container.unpack(blob)
    for name, arr in arrays.items():
        assert arr.dtype == np.uint8 and arr.shape == (32,) or arr.dtype == np.uint64, name


def test_a_sealed_secret_key_given_a_wire_form_is_refused(keyed):
    """The clear header of a sealed secret key is GCM's associated data: a ``wire`` added to it (flag set to
    agree) fails the tag, so no secret key is ever read in a seeded form."""
    _, pair = keyed
    blob = ser.dumps(pair.secret, passphrase=b"review passphrase")
    assert loads(blob, passphrase=b"review passphrase").key_id == pair.secret.key_id  # the control
    crafted = _edited(blob, lambda header, arrays: header.update(wire="seeded"))
    assert int.from_bytes(crafted[10:12], "little") & container.FLAG_SEEDED_KEYS
    with pytest.raises(FormatError):
        loads(crafted, passphrase=b"review passphrase")
