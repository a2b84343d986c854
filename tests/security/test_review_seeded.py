"""Review of seeded secret-key ciphertexts (f5d1f4d) and packed bootstrapping (dbb6e8a, 1f2f27a).

Written as the attacker would run it: a passing test is a claim that holds; a test marked
``xfail(strict=True)`` is an attack that works on the current code (its reason says what happens
and the fix). What each party sees:

* the trainer receives the key holder's refresh answers as ``c0`` plus one public 32-byte seed
  per ciphertext; ``a`` is SHAKE-256(domain || seed || prime index), so the answer shows exactly
  what the whole answer shows, provided the seed is fresh OS randomness and never reused;
* the key holder receives the trainer's requests (which may travel seeded too) and expands
  seeds the trainer picked: its cost must be bounded by the bytes the trainer sends;
* packed bootstrapping runs on the trainer with public keys only: nothing new leaves it.

Run: ``python -m pytest -q tests/security/test_review_seeded.py``.
"""
from __future__ import annotations

import hashlib
import os
import warnings

import numpy as np
import pytest

import he_core
from he_core import FormatError, KeyRequirements, SeededRandom
from he_core import randomness
from he_core import serialization as ser
from he_core.dumping import holds_seeded
from he_core.formats import container, signing
from he_core.schemes.ckks import CkksScheme, seeded
from henn.keyholder import KeyHolder, RefreshTerms

from .attacks import SpyKeyHolder

pytestmark = [pytest.mark.filterwarnings("ignore::he_core.SecurityWarning"),
              pytest.mark.skipif("ckks" not in he_core.available_schemes(), reason="the ckks scheme is not built")]


@pytest.fixture(scope="module")
def keyed():
    s = he_core.get_scheme("ckks")
    secret, _ = s.keygen(KeyRequirements(sizes=(1, 4)), rng=SeededRandom(11))
    return s, secret


def _masked(s, rows: int = 2):
    """A request as the trainer sends it: a public-key ciphertext one level down (what a refresh reads)."""
    x = np.random.default_rng(rows).uniform(-1, 1, (rows, 4))
    ct = s.encrypt(x)
    return s.level_drop(ct, 1) if s.params.levels > 1 else ct


def _seeds(ct) -> list[bytes]:
    return [bytes.fromhex(h) for h in ct.meta[seeded.META_KEY]]


def _craft(s, ct, data, meta, monkeypatch) -> bytes:
    """The file a malicious sender writes: ``ct``'s header with ``"wire": "seeded"`` over data and meta it chose."""
    with monkeypatch.context() as m:
        m.setattr(CkksScheme, "wire_form", classmethod(lambda cls, c: (data, meta)))
        return ser.dumps(ct)


def _redigest(blob: bytes, signed: bool) -> bytes:
    """``blob`` with its SHA-256 recomputed (what anyone can do): only a signature still tells it was edited."""
    trailer = container.TRAILER_SIZE if signed else 0
    end = len(blob) - trailer - container.DIGEST_SIZE
    return blob[:end] + hashlib.sha256(blob[:end]).digest() + blob[len(blob) - trailer:]


def _edited(blob: bytes, edit) -> bytes:
    """An unsigned file rebuilt after ``edit(header)`` (lengths and digest recomputed: anyone can)."""
    header, arrays = container.unpack(blob)
    edit(header)
    return container.pack(header, list(arrays.items()), seeded=holds_seeded(header))


# ---------------------------------------------------------------- 1. what a seeded answer shows
def test_expanded_halves_are_uniform_and_uncorrelated_across_primes_ciphertexts_and_neighbours(keyed):
    """Chi-square over 64 bins per prime, and Pearson correlation between primes, between two ciphertexts'
    halves and between neighbouring coefficients: all within 6 sigma of independence (N = 8192 draws each)."""
    s, secret = keyed
    cts = [s.encrypt(np.ones((1, 4)), secret) for _ in range(2)]
    primes, n = s.params.q_primes, s.params.poly_degree
    us = [[ct.data[0, 1, i].astype(np.float64) / q for i, q in enumerate(primes)] for ct in cts]
    chi_limit = 63 + 6 * np.sqrt(2 * 63)  # df = 63
    r_limit = 6 / np.sqrt(n)
    for per_ct in us:
        for u in per_ct:
            counts = np.bincount((u * 64).astype(int), minlength=64)
            assert np.sum((counts - n / 64) ** 2 / (n / 64)) < chi_limit
            assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < r_limit
        for i in range(len(per_ct)):
            for j in range(i + 1, len(per_ct)):
                assert abs(np.corrcoef(per_ct[i], per_ct[j])[0, 1]) < r_limit
    for i in range(len(primes)):
        assert abs(np.corrcoef(us[0][i], us[1][i])[0, 1]) < r_limit


def test_each_prime_reads_its_own_stream_and_the_reduction_has_no_bias():
    """The prime index is in the XOF input (else a's residues mod every prime come from one word stream), and a
    modulus above 2^63 shows the rejection step: without it residues below 2^64 - q would be twice as likely."""
    seed = os.urandom(32)
    q = 2**61 - 1
    assert not np.array_equal(seeded._uniform_words(seed, 0, q, 64), seeded._uniform_words(seed, 1, q, 64))
    big = 3 * 2**62 + 1  # 2^64 - big ~ q / 3: a plain reduction puts 1/2 of the mass below q / 3
    u = seeded.expand(seed, [big], 1 << 15)[0].astype(np.float64) / big
    frac = float(np.mean(u < 1 / 3))
    assert abs(frac - 1 / 3) < 6 * np.sqrt((1 / 3) * (2 / 3) / u.size)


def test_the_key_holders_refresh_seeds_are_os_urandom_bytes(keyed, monkeypatch):
    """By default (KeyHolder() and the key service's reencrypt_masked(..., rng=None)) every seed of an answer is
    a fresh slice of os.urandom: nothing the trainer chose or can predict."""
    s, secret = keyed
    drawn: list[bytes] = []
    real = os.urandom

    def recording(k):
        out = real(k)
        drawn.append(out)
        return out

    monkeypatch.setattr(randomness.os, "urandom", recording)
    kh = KeyHolder(s, secret)
    answers = [kh.reencrypt(_masked(s)), s.reencrypt_masked(_masked(s), None, secret)]  # in-process; service
    pool = b"".join(drawn)
    for fresh in answers:
        assert s.wire_form(fresh) is not None
        for seed in _seeds(fresh):
            assert len(seed) == seeded.SEED_BYTES and seed in pool


def test_no_seed_or_uniform_half_repeats_across_ciphertexts_refreshes_and_key_holders(keyed):
    """The same request twice to one key holder and to a second one, and a many-ciphertext answer: every seed
    (and so every ``a``) distinct. A repeat would give c0 - c0' = m - m' + e - e' in the clear."""
    s, secret = keyed
    request = _masked(s, rows=2)
    wide = s.encrypt(np.ones((3 * s.params.slots // 4, 4)), secret)  # several ciphertexts in one batch
    assert wide.data.shape[0] > 1
    holders = [KeyHolder(s, secret), KeyHolder(s, secret)]
    answers = [kh.reencrypt(request) for kh in holders for _ in range(3)] + [wide]
    seeds = [seed for fresh in answers for seed in _seeds(fresh)]
    assert len(seeds) == len(set(seeds)) == sum(a.data.shape[0] for a in answers)
    halves = {fresh.data[i, 1].tobytes() for fresh in answers for i in range(fresh.data.shape[0])}
    assert len(halves) == len(seeds)


def test_a_seeded_answer_carries_exactly_the_whole_answer(keyed):
    """What the trainer reads from a seeded answer: the same ciphertext bit for bit, and metadata that differs
    from the whole answer's only by the public seeds (nothing about the mask, the key or the noise)."""
    s, secret = keyed
    fresh = KeyHolder(s, secret).reencrypt(_masked(s))
    back = ser.loads(ser.dumps(fresh))
    assert np.array_equal(back.data, fresh.data)
    whole = ser.loads(ser.dumps(fresh.replace(meta={k: v for k, v in fresh.meta.items() if k != seeded.META_KEY})))
    assert set(back.meta) - set(whole.meta) == {seeded.META_KEY}
    assert {k: v for k, v in back.meta.items() if k != seeded.META_KEY} == whole.meta
    assert ser.wire_nbytes(fresh) == fresh.data.nbytes // 2 + seeded.SEED_BYTES * fresh.data.shape[0]


def test_a_seededrandom_key_holder_gives_its_seed_away(keyed):
    """INFO (not a default path): a key holder built with SeededRandom(k) publishes raw PCG64 words as seeds, so
    a small k is found by trying candidates, and with it the whole stream (masks, errors, the flood of every
    release). The same held before seeding (``a`` was drawn from that stream too); every KeyHolder the package
    builds uses the OS CSPRNG (test above)."""
    s, secret = keyed
    answer = KeyHolder(s, secret, rng=SeededRandom(37)).reencrypt(_masked(s))
    found = [k for k in range(64) if SeededRandom(k).bytes(seeded.SEED_BYTES) == _seeds(answer)[0]]
    assert found == [37]


# ---------------------------------------------------------------- 2. what a malicious sender can make the loader do
def test_malformed_seeded_files_are_refused_by_name(keyed, monkeypatch):
    s, secret = keyed
    ct = s.encrypt(np.ones((1, 4)), secret)
    c0, nl, n = np.ascontiguousarray(ct.data[:, :1]), ct.data.shape[2], ct.data.shape[3]
    cases = {
        "32": (c0, {**ct.meta, seeded.META_KEY: ["ab" * 31]}),
        "not hex": (c0, {**ct.meta, seeded.META_KEY: ["zz" * 32]}),
        "one seed per ciphertext": (c0, {**ct.meta, seeded.META_KEY: ct.meta[seeded.META_KEY] * 2}),
        "count, 1, limbs, n": (ct.data, ct.meta),
        "limbs": (np.zeros((1, 1, nl + 1, n), np.uint64), ct.meta),
    }
    for message, (data, meta) in cases.items():
        with pytest.raises(FormatError, match=message):
            ser.loads(_craft(s, ct, data, meta, monkeypatch))
    for dtype in (np.int64, np.float64, np.int32):
        with pytest.raises(FormatError, match="count, 1, limbs, n"):
            ser.loads(_craft(s, ct, c0.astype(dtype), ct.meta, monkeypatch))
    with pytest.raises(FormatError, match="unknown wire form"):
        ser.loads(_edited(ser.dumps(ct), lambda h: h.update(wire="zipped")))


def test_a_seeded_header_on_another_scheme_is_refused(keyed, monkeypatch):
    """A vhe ciphertext file that claims a seeded form: vhe has none, so the loader refuses it by name."""
    vhe = he_core.get_scheme("vhe")
    vsecret, _ = vhe.keygen(KeyRequirements(sizes=(1, 4)), rng=SeededRandom(2))
    vct = vhe.encrypt(np.ones((1, 4)), vsecret)
    meta = {**vct.meta, seeded.META_KEY: [bytes(32).hex()] * vct.data.shape[0]}
    with monkeypatch.context() as m:
        m.setattr(type(vhe), "wire_form", classmethod(lambda cls, c: (vct.data, meta)))
        blob = ser.dumps(vct)
    with pytest.raises(FormatError, match="no ciphertext in a smaller form"):
        ser.loads(blob, allow_insecure=True)


def test_the_expansion_a_file_buys_is_bounded_by_the_bytes_it_declares(keyed, monkeypatch):
    """Was LOW (fixed on this branch): c0 of shape (count, 1, limbs, 0) holds no bytes, yet each of its ``count``
    seeds cost a SHAKE call and a Python round per limb: about 5x the cost of parsing the seeds' own JSON, growing
    with the primes (the reviewer's report has the measurement). Now polynomials must have the ring's n
    coefficients and at least one limb, so the expansion writes no more words than c0 declares."""
    s, secret = keyed
    ct = s.encrypt(np.ones((1, 4)), secret)
    nl = ct.data.shape[2]
    for shape in ((2000, 1, nl, 0), (1, 1, nl, 16), (1, 1, 0, s.params.poly_degree)):
        meta = {**ct.meta, seeded.META_KEY: [os.urandom(32).hex() for _ in range(shape[0])]}
        blob = _craft(s, ct, np.zeros(shape, np.uint64), meta, monkeypatch)
        with pytest.raises(FormatError, match="coefficients|limbs"):
            ser.loads(blob)


def test_a_signature_covers_the_seeds(keyed):
    """A signed seeded file verifies; a swapped seed (digest recomputed, as anyone can) fails the owner's check.
    Without owner_key the digest alone lets the swap through: a different ``a``, so a different ciphertext
    (as for a swapped c0 or a whole file: integrity of unsigned files is TLS's or the signature's job)."""
    s, secret = keyed
    ct = s.encrypt(np.ones((1, 4)), secret)
    owner = signing.SigningKey.generate()
    blob = ser.dumps(ct, signer=owner)
    assert np.array_equal(ser.loads(blob, owner_key=owner.verify_key).data, ct.data)
    h = ct.meta[seeded.META_KEY][0]
    swapped = h[:-1] + ("0" if h[-1] != "0" else "1")
    assert blob.count(h.encode()) == 1
    tampered = _redigest(blob.replace(h.encode(), swapped.encode()), signed=True)
    with pytest.raises(FormatError):
        ser.loads(tampered, owner_key=owner.verify_key)
    back = ser.loads(tampered)
    assert not np.array_equal(back.data[:, 1], ct.data[:, 1]) and np.array_equal(back.data[:, 0], ct.data[:, 0])


# ---------------------------------------------------------------- 3. stale seeds on every other path
def test_bundle_entries_travel_seeded_and_a_stale_entry_whole(keyed):
    s, secret = keyed
    fresh = s.encrypt(np.ones((1, 4)), secret)
    other = s.encrypt(np.full((1, 4), 2.0), secret)
    stale = other.replace(meta={**other.meta, seeded.META_KEY: fresh.meta[seeded.META_KEY]})
    bundle = ser.Bundle({"fresh": fresh, "stale": stale}, {"note": "review"})
    back = ser.loads(ser.dumps(bundle))
    assert np.array_equal(back.ciphertexts["fresh"].data, fresh.data)
    assert np.array_equal(back.ciphertexts["stale"].data, other.data)
    assert seeded.META_KEY not in back.ciphertexts["stale"].meta


def test_dask_frames_carry_seeded_and_stale_ciphertexts_correctly(keyed):
    """henn.distributed.wire moves ciphertexts as dumps bytes: the seeded form is smaller and exact; a stale
    seed does not survive (the ciphertext crosses whole, its own second half)."""
    wire = pytest.importorskip("henn.distributed.wire")
    s, secret = keyed
    fresh = s.encrypt(np.ones((1, 4)), secret)
    other = s.encrypt(np.full((1, 4), 2.0), secret)
    stale = other.replace(meta={**other.meta, seeded.META_KEY: fresh.meta[seeded.META_KEY]})
    header, frames = wire._serialize(fresh)
    assert len(frames[0]) < 0.51 * fresh.data.nbytes
    assert np.array_equal(wire._deserialize(header, frames).data, fresh.data)
    moved = wire.Wire(stale).open()
    assert np.array_equal(moved.data, other.data) and seeded.META_KEY not in moved.meta


def test_a_seed_injected_into_a_whole_file_is_not_trusted(keyed):
    """A whole-form file whose metadata names a seed that does not expand to its ``a``: the loader keeps the
    file's ``a`` (the seed is only read under ``"wire": "seeded"``), and writing it again drops the seed."""
    s, secret = keyed
    ct = s.encrypt(np.ones((1, 4)), secret)
    forged = [bytes(32).hex()]
    whole = ser.dumps(ct.replace(meta={k: v for k, v in ct.meta.items() if k != seeded.META_KEY}))
    back = ser.loads(_edited(whole, lambda h: h["meta"]["$d"].update(a_seed=forged)))
    assert "wire" not in container.unpack(whole)[0] and back.meta.get(seeded.META_KEY) == forged
    assert np.array_equal(back.data, ct.data)
    again = ser.loads(ser.dumps(back))
    assert np.array_equal(again.data, ct.data) and seeded.META_KEY not in again.meta


# ---------------------------------------------------------------- 4. packed bootstrapping
_BOOT: dict[str, tuple] = {}


def _booted():
    if not _BOOT:
        from henn.tasks import xor
        from henn.training.bootstrap import bootstrap_keys
        cls = he_core.scheme_class("ckks")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", he_core.SecurityWarning)
            scheme = he_core.get_scheme("ckks", cls.params_for_bootstrapping(xor.STEP_DEPTH, slots=32, ring=1024))
        pair = bootstrap_keys(scheme, KeyRequirements(sizes=(1, 4)), 32, rng=SeededRandom(1))
        _BOOT["s"] = scheme, pair.secret
    return _BOOT["s"]


def test_a_packed_bootstrap_needs_only_the_public_keys():
    """The same packed bootstrap on a scheme that holds nothing but the public keys read from their file gives
    the same ciphertexts bit for bit: no secret, no randomness, nothing sent (public-key operations only)."""
    scheme, secret = _booted()
    cts = [scheme.encrypt(np.array([[0.5, -0.25, 1.0, 0.1]]), rng=SeededRandom(3)),
           scheme.encrypt(np.array([[2.0, 1.0, -1.0, 0.0]]), rng=SeededRandom(4))]
    here = scheme.bootstrap_many(cts, slots=32, clean=True, value_bound=16.0)
    public = ser.loads(ser.dumps(scheme.public_keys), allow_insecure=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        bare = he_core.get_scheme("ckks", scheme.params)
    bare.set_public_keys(public)
    there = bare.bootstrap_many([ser.loads(ser.dumps(c), allow_insecure=True) for c in cts], slots=32, clean=True,
                                value_bound=16.0)
    assert all(np.array_equal(a.data, b.data) for a, b in zip(here, there))


def test_a_clean_packed_output_holds_none_of_its_neighbours_values():
    """Every slot of a clean packed output (the ones a release or a refresh would read included) is its own value
    or ~0: the neighbour's values (3.0) appear in no slot. A dirty output (clean=False) shows them: the test
    can fail."""
    scheme, secret = _booted()
    sk = scheme._s_full(secret)
    zero, loud = np.zeros((1, 4)), np.full((1, 4), 3.0)
    for clean, expect_leak in ((True, False), (False, True)):
        out = scheme.bootstrap_many([scheme.encrypt(zero), scheme.encrypt(loud)], slots=32, clean=clean,
                                    value_bound=16.0)
        top = float(np.max(np.abs(scheme._decrypt_slots(out[0], sk))))
        assert (top > 2.0) == expect_leak, (clean, top)
        if not expect_leak:
            assert top < 2.0**-15


class _Recording(KeyHolder):
    """A key holder that keeps every request and answer (what a curious one would do)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.requests, self.answers = [], []

    def reencrypt(self, masked, layout=None):
        self.requests.append(masked)
        self.answers.append(super().reencrypt(masked, layout))
        return self.answers[-1]


def test_a_request_made_from_an_answer_shows_neither_its_seed_nor_its_a(keyed):
    """Refresh a refreshed ciphertext at once: the trainer still holds the answer's ``a`` (removing the mask is a
    plaintext subtraction), so a request sent without re-randomising would let a key holder that kept its answer
    subtract c0 and read the mask. apply_mask adds a public encryption of zero: the request's ``a`` shares no
    residue position with the answer's, and its metadata names no seed."""
    s, secret = keyed
    kh = _Recording(s, secret)
    x = np.random.default_rng(5).uniform(-1, 1, (2, 4))
    once = kh.refresh(s.mul_plain(s.encrypt(x), 1.0), value_bound=2.0)
    assert np.array_equal(once.data[:, 1], kh.answers[0].data[:, 1])  # the trainer holds the answer's a
    kh.refresh(once, value_bound=2.0)
    request, answer = kh.requests[1], kh.answers[0]
    nl = request.data.shape[2]
    assert seeded.META_KEY not in request.meta and s.wire_form(request) is None
    assert not np.any(request.data[:, 1, :nl] == answer.data[:, 1, :nl])


def test_what_a_packed_input_holds_outside_its_values_reaches_no_output():
    """An input whose slots beyond its values hold other data (a dirty batch: 5.0 past its four values) is masked
    to its values before packing: the 5.0 shows in neither output, not even in a dirty one's spare slots."""
    scheme, secret = _booted()
    sk = scheme._s_full(secret)
    wide = scheme.encrypt(np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0]]))
    dirty = wide.replace(shape=(1, 4), meta={**wide.meta, "dirty": True})
    for clean in (True, False):
        out = scheme.bootstrap_many([dirty, scheme.encrypt(np.zeros((1, 4)))], slots=32, clean=clean,
                                    value_bound=16.0)
        for o in out:
            slots = np.abs(scheme._decrypt_slots(o, sk)).ravel()
            assert not np.any(np.abs(slots - 5.0) < 0.5), clean
        assert np.max(np.abs(scheme.decrypt_exact_local(out[0], secret) - [[1, 2, 3, 4]])) < 2.0**-20


@pytest.mark.slow
def test_packed_parameter_bootstraps_in_training_send_nothing():
    """XOR under refresh='bootstrap' long enough for fit to pack the parameters (the 2-epoch run of
    test_review_bootstrap makes none): packed bootstraps happen and the key holder is never called."""
    from henn.losses import MSELoss
    from henn.tasks import xor
    from henn.training.fit import fit
    scheme, secret = _booted()
    kh = SpyKeyHolder(scheme, secret, terms=RefreshTerms(min_aggregate=4), rng=SeededRandom(5))
    history = fit(xor.build_xor(scheme, xor.XorConfig(seed=4)), xor.X, xor.Y, keyholder=kh, lr=4.0, epochs=4,
                  batch_size=4, loss=MSELoss(), shuffle=False, value_bound=16.0, refresh="bootstrap")
    assert history.policy["parameter_bootstraps"] > 0
    assert kh.calls == {} and kh.refresh_rounds == 0 and kh.releases == 0 and kh.bytes_exchanged == 0
