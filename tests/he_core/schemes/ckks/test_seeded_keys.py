"""Seeded switching keys (he_core/schemes/ckks/seeded_keys.py): each key's uniform halves travel as its 32-byte seed."""
from __future__ import annotations

import hashlib
import json
import struct
import warnings

import numpy as np
import pytest

import he_core
from he_core import FormatError, KeyRequirements, PublicKeys, SeededRandom, SwitchKey
from he_core import serialization as ser
from he_core.formats import container, signing
from he_core.schemes.ckks import CkksParams, CkksScheme, seeded_keys

PREAMBLE = 24


def loads(blob, **kw):
    return ser.loads(blob, **{"allow_insecure": True, **kw})


@pytest.fixture(scope="module")
def keyed():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CkksScheme(CkksParams(poly_degree=1024, levels=2, allow_insecure=True))
    pair = s.keygen(KeyRequirements(sizes=(4,), rotations=(3,)), rng=SeededRandom(5))
    return s, pair


def arrays_equal(a, b) -> bool:
    """Same fields in the same order, arrays equal in dtype, shape and every word."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(arrays_equal(a[k], b[k]) for k in a)
    return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def split(blob: bytes) -> tuple[dict, bytes]:
    head_len = struct.unpack_from("<I", blob, 20)[0]
    return json.loads(blob[PREAMBLE:PREAMBLE + head_len]), blob[PREAMBLE + head_len:-32]


def rebuild(header: dict, rest: bytes, flags: int) -> bytes:
    """A file with ``header`` and the arrays of ``rest``, length and digest made right again."""
    head = json.dumps(header).encode()
    body = bytearray(container.MAGIC + struct.pack("<HHQI", 2, flags, 0, len(head)) + head + rest)
    struct.pack_into("<Q", body, 12, len(body) + 32)
    return bytes(body) + hashlib.sha256(body).digest()


def without_seeds(data: dict) -> dict:
    """Key data as it was before seeds: whole keys only."""
    return {k: v for k, v in data.items() if k not in seeded_keys.SEED_FIELDS}


def test_key_files_round_trip_bit_for_bit_at_about_half_the_size(keyed):
    s, pair = keyed
    pub = pair.public
    assert set(pub.data["galois_seeds"]) == set(pub.data["galois"]) and pub.data["relin_seed"].shape == (32,)
    blob = ser.dumps(pub)
    assert struct.unpack_from("<H", blob, 10)[0] & container.FLAG_SEEDED_KEYS
    back = loads(blob, expect_kind="public_keys")
    assert arrays_equal(back.data, pub.data)  # keys and seeds, field order included
    assert ser.dumps(back) == blob
    whole = ser.dumps(PublicKeys(pub.scheme, pub.params_id, pub.key_id, without_seeds(pub.data), pub.requirements,
                                 pub.params))
    halves = sum(k.nbytes // 2 for k in [pub.data["relin"], *pub.data["galois"].values()])
    assert len(whole) - len(blob) > halves - 200 * (1 + len(pub.data["galois"]))  # 32 bytes + names per seed
    assert len(blob) < 0.51 * len(whole)  # the public key itself (1 % here) stays whole
    s.set_public_keys(pub)
    bundle = ser.Bundle({"w": s.encrypt(np.ones((1, 4)))}, {}, pub)  # a public-key encryption travels whole
    blob = ser.dumps(bundle)
    assert struct.unpack_from("<H", blob, 10)[0] & container.FLAG_SEEDED_KEYS  # an older build must refuse it, not misread
    assert arrays_equal(loads(blob).public.data, pub.data)
    other = s.keygen(rng=SeededRandom(6)).secret
    s.set_public_keys(pub)
    switch = s.make_switch_key(pair.secret, other, rng=SeededRandom(7))
    blob = ser.dumps(switch)
    back = loads(blob, expect_kind="switch_key")
    assert arrays_equal(back.data, switch.data) and list(back.data) == ["key", "key_seed"]
    assert len(blob) < 0.51 * switch.data["key"].nbytes


def test_loaded_keys_relinearise_rotate_and_rekey_correctly(keyed):
    s, pair = keyed
    fresh = CkksScheme(s.params)
    fresh.set_public_keys(loads(ser.dumps(pair.public)))
    x = np.random.default_rng(1).uniform(-1, 1, (1, 4))
    ct = fresh.encrypt(x)
    np.testing.assert_allclose(s.decrypt(fresh.mul(ct, ct), pair.secret), x * x, atol=1e-2)
    rotated = s.decrypt(fresh.rotate(fresh.encrypt(np.arange(8.0)[None]), 3), pair.secret)
    np.testing.assert_allclose(rotated[0, :5], np.arange(3.0, 8.0), atol=1e-2)
    other = fresh.keygen(rng=SeededRandom(8)).secret
    fresh.set_public_keys(loads(ser.dumps(pair.public)))
    switch = loads(ser.dumps(s.make_switch_key(pair.secret, other, rng=SeededRandom(9))))
    moved = fresh.rekey(fresh.encrypt(x), switch)
    np.testing.assert_allclose(fresh.decrypt_exact_local(moved, other), x, atol=1e-2)


def test_a_key_whose_seed_no_longer_expands_to_it_travels_whole(keyed):
    """A seed edited in memory (or a key edited under it) must not make the file claim another key."""
    s, pair = keyed
    pub = pair.public
    g = next(iter(pub.data["galois"]))
    tampered = dict(pub.data["galois_seeds"])
    tampered[g] = tampered[g].copy()
    tampered[g][0] ^= 1
    relin = pub.data["relin"].copy()
    relin[0, 1, 0, 0] = (int(relin[0, 1, 0, 0]) + 1) % s.ring.q[0]
    edited = PublicKeys(pub.scheme, pub.params_id, pub.key_id, {**pub.data, "galois_seeds": tampered, "relin": relin},
                        pub.requirements, pub.params)
    back = loads(ser.dumps(edited))
    assert g not in back.data["galois_seeds"] and "relin_seed" not in back.data
    assert np.array_equal(back.data["galois"][g], pub.data["galois"][g]) and np.array_equal(back.data["relin"], relin)
    assert len(back.data["galois_seeds"]) == len(pub.data["galois"]) - 1
    nothing = PublicKeys(pub.scheme, pub.params_id, pub.key_id, {**pub.data, "relin_seed": np.zeros(32, np.uint8),
                                                                   "galois_seeds": {}}, pub.requirements, pub.params)
    header, _ = split(ser.dumps(nothing))
    assert "wire" not in header and "relin_seed" not in header["data"]["$d"]  # no key seeded: the old whole form


def test_a_seed_changed_in_the_file_is_refused_by_its_digest_or_signature(keyed):
    _, pair = keyed
    owner = signing.SigningKey.generate()
    blob = ser.dumps(pair.public, signer=owner)
    at = blob.index(pair.public.data["relin_seed"].tobytes())  # the seed's 32 bytes, in the arrays section
    assert at > PREAMBLE + struct.unpack_from("<I", blob, 20)[0]
    changed = bytearray(blob)
    changed[at] ^= 1
    with pytest.raises(FormatError, match="digest mismatch"):
        loads(bytes(changed))
    body = changed[:-(32 + container.TRAILER_SIZE)]
    resealed = bytes(body) + hashlib.sha256(body).digest() + blob[-container.TRAILER_SIZE:]
    with pytest.raises(FormatError, match="signature"):
        loads(resealed, owner_key=owner.verify_key)


def test_flags_and_contents_that_disagree_are_refused(keyed):
    _, pair = keyed
    header, rest = split(ser.dumps(pair.public))
    assert header["wire"] == "seeded"
    assert loads(rebuild(header, rest, container.FLAG_SEEDED_KEYS)).key_id == pair.public.key_id  # the control
    with pytest.raises(FormatError, match="seeded-keys flag and its keys' wire forms disagree"):
        loads(rebuild(header, rest, 0))  # read whole, every switching key would be half of one
    with pytest.raises(FormatError, match="seeded flag and its ciphertexts' wire forms disagree"):
        loads(rebuild(header, rest, container.FLAG_SEEDED))  # the ciphertexts' flag does not cover keys
    del header["wire"]
    with pytest.raises(FormatError, match="seeded-keys flag and its keys' wire forms disagree"):
        loads(rebuild(header, rest, container.FLAG_SEEDED_KEYS))
    with pytest.raises(FormatError, match="holds seeds, but the file does not say its keys are seeded"):
        loads(rebuild(header, rest, 0))
    header["wire"] = "zipped"
    with pytest.raises(FormatError, match="unknown wire form 'zipped'"):
        loads(rebuild(header, rest, container.FLAG_SEEDED_KEYS))
    secret_header, secret_rest = split(ser.dumps(pair.secret))
    secret_header["wire"] = "seeded"
    with pytest.raises(FormatError, match="secret key has no smaller wire form"):
        loads(rebuild(secret_header, secret_rest, container.FLAG_SEEDED_KEYS))


def test_malformed_seeded_key_data_is_refused_by_name(keyed):
    s, pair = keyed
    params = s.params
    data, seeded = seeded_keys.wire_form(pair.public.data, params)
    assert seeded and data["relin"].shape == (3, 1, len(s.ring.q) + len(s.ring.p), params.poly_degree)
    assert arrays_equal(seeded_keys.from_wire_form(params, data, True), pair.public.data)  # the control
    g = next(iter(data["galois"]))
    bad_residue = data["relin"].copy()
    bad_residue[0, 0, 0, 0] = np.uint64(s.ring.q[0])
    cases = [({"relin_seed": np.zeros(31, np.uint8)}, "seed of the relinearisation key is not 32 bytes"),
             ({"relin_seed": np.zeros(32, np.int8)}, "seed of the relinearisation key is not 32 bytes"),
             ({"galois_seeds": {**data["galois_seeds"], g: np.zeros(16, np.uint8)}}, f"seed of Galois key {g} is not"),
             ({"galois_seeds": {**data["galois_seeds"], "77": np.zeros(32, np.uint8)}}, "not one per Galois key"),
             ({"key_seed": np.zeros(32, np.uint8)}, "a seed for the switching key, which the data does not hold"),
             ({"relin": pair.public.data["relin"]}, r"relinearisation key is not a uint64 array of b halves"),
             ({"relin": data["relin"][:, :, :, :16]}, r"b halves of shape"),  # the DoS shape: no n coefficients
             ({"relin": data["relin"][:, :, :0]}, r"b halves of shape"),
             ({"relin": data["relin"][:1]}, r"b halves of shape"),
             ({"relin": data["relin"].astype(np.int64)}, r"b halves of shape"),
             ({"galois": {**data["galois"], g: data["galois"][g][:, :, 1:]}}, f"Galois key {g} is not a uint64"),
             ({"relin": bad_residue}, "residues not below their primes")]
    for change, match in cases:
        with pytest.raises(FormatError, match=match):
            seeded_keys.from_wire_form(params, {**data, **change}, True)
    with pytest.raises(FormatError, match="no key has a seed"):
        seeded_keys.from_wire_form(params, without_seeds(data), True)
    with pytest.raises(FormatError, match="not a dict"):
        seeded_keys.from_wire_form(params, [data], True)
    vhe = he_core.scheme_class("vhe")
    out, small = vhe.key_wire_form(data, params)
    assert out is data and small is False
    with pytest.raises(FormatError, match="no keys in a smaller form"):
        vhe.key_from_wire_form(params, data, True)


def test_a_malformed_seed_in_a_file_is_refused_before_anything_is_expanded(keyed):
    s, pair = keyed
    header, rest = split(ser.dumps(pair.public))
    fields = header["data"]["$d"]
    fields["relin_seed"], fields["galois"] = fields["galois"], fields["relin_seed"]  # a seed where a key should be
    with pytest.raises(FormatError, match="seed of the relinearisation key is not 32 bytes"):
        loads(rebuild(header, rest, container.FLAG_SEEDED_KEYS))
    switch = s.make_switch_key(pair.secret, pair.secret, rng=SeededRandom(4))
    header, rest = split(ser.dumps(switch))
    del header["data"]["$d"]["key"]
    with pytest.raises(FormatError, match="a seed for the switching key, which the data does not hold"):
        loads(rebuild(header, rest, container.FLAG_SEEDED_KEYS))


def test_old_whole_key_files_still_load(keyed):
    """A key file from before seeds (no seed fields, no wire form, version 2 unflagged) reads as it did."""
    _, pair = keyed
    old = without_seeds(pair.public.data)
    pub = PublicKeys(pair.public.scheme, pair.public.params_id, pair.public.key_id, old, pair.public.requirements,
                     pair.public.params)
    blob = ser.dumps(pub)
    header, _ = split(blob)
    assert "wire" not in header and not struct.unpack_from("<H", blob, 10)[0] & container.FLAG_SEEDED_KEYS
    assert len(blob) > 1.9 * len(ser.dumps(pair.public))
    assert arrays_equal(loads(blob).data, old)
    switch = SwitchKey("ckks", pub.params_id, pub.key_id, pub.key_id, {"key": old["relin"]}, pub.params)
    assert arrays_equal(loads(ser.dumps(switch)).data, {"key": old["relin"]})


def test_keys_of_a_set_whose_dnum_does_not_divide_the_chain_travel_seeded_and_pass_the_checks():
    """5 primes, dnum 4: 2 primes per digit, so 3 digits (as in the default bootstrapping set: 20 primes, dnum 6,
    5 digits)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CkksScheme(CkksParams(poly_degree=1024, levels=4, dnum=4, allow_insecure=True))
    pub = s.keygen(KeyRequirements(rotations=(1,), minimal=True), rng=SeededRandom(2)).public
    assert pub.data["relin"].shape[0] == 3 != s.params.digits
    s.check_public_keys(pub)
    blob = ser.dumps(pub)
    assert struct.unpack_from("<H", blob, 10)[0] & container.FLAG_SEEDED_KEYS
    back = loads(blob)
    assert arrays_equal(back.data, pub.data)
    s.check_public_keys(back)
