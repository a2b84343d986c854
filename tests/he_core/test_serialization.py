"""Round trips of every serialisable kind, over every scheme available here, and file handling."""
from __future__ import annotations

import functools
import os
import stat
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import he_core
from he_core import serialization as ser
from he_core.schemes.plain import PlainParams


def loads(blob, **kw):
    """``ser.loads`` opting in to insecure sets: plain and vhe are below 128 bits (refusal: test_insecure_*)."""
    return ser.loads(blob, **{"allow_insecure": True, **kw})


def load(path, **kw):
    return ser.load(path, **{"allow_insecure": True, **kw})


SCHEMES = [name for name in ("plain", "vhe", "ckks") if name in he_core.available_schemes()]
ALLOWED = [np.int64, np.uint64, np.float64, np.int32, np.uint8, np.bool_, np.int8]


def same_tree(a, b) -> bool:
    """Exact equality: same types, same dtypes and shapes, same values (NaN equals NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_tree(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_tree(a[k], b[k]) for k in a)
    if isinstance(a, float) and np.isnan(a):
        return np.isnan(b)
    if isinstance(a, float):
        return a == b and np.copysign(1, a) == np.copysign(1, b)
    return a == b


@functools.lru_cache(maxsize=None)
def make_scheme(name):
    """One scheme and key pair per scheme for the whole module (CKKS keygen takes seconds)."""
    scheme = he_core.get_scheme(name)
    pair = scheme.keygen(he_core.KeyRequirements(sizes=(1, 3)), rng=he_core.SeededRandom(7))
    return scheme, pair


@pytest.mark.parametrize("name", SCHEMES)
def test_ciphertext_round_trip_decrypts_the_same(name):
    scheme, pair = make_scheme(name)
    values = np.array([[1.5, -2.0, 0.0], [0.25, 3.0, -0.5]])
    ct = scheme.encrypt(values, pair.secret, rng=he_core.SeededRandom(1))
    back = loads(ser.dumps(ct), expect_kind="ciphertext", expect_scheme=name, expect_key_id=ct.key_id)
    assert (back.scheme, back.params_id, back.key_id, back.shape, back.scale) == \
        (ct.scheme, ct.params_id, ct.key_id, ct.shape, ct.scale)
    assert same_tree(back.data, ct.data) and same_tree(back.meta, ct.meta)
    np.testing.assert_array_equal(scheme.decrypt_exact_local(back, pair.secret), scheme.decrypt_exact_local(ct, pair.secret))


@pytest.mark.parametrize("name", SCHEMES)
def test_keys_round_trip_and_still_work(name):
    scheme, pair = make_scheme(name)
    secret = loads(ser.dumps(pair.secret), expect_kind="secret_key")
    public = loads(ser.dumps(pair.public), expect_kind="public_keys")
    for old, new in ((pair.secret, secret), (pair.public, public)):
        assert type(new) is type(old)
        assert (new.scheme, new.params_id, new.key_id, new.requirements) == \
            (old.scheme, old.params_id, old.key_id, old.requirements)
        assert same_tree(new.data, old.data)
    # A fresh party (new scheme object from the stored parameters) can use the loaded keys.
    other = he_core.get_scheme(name, public.params)
    other.set_public_keys(public)
    values = np.array([[2.0, -1.0, 0.5]])
    ct = other.encrypt(values) if other.supports(he_core.Capability.PUBLIC_KEY_ENCRYPT) \
        else other.encrypt(values, secret)
    np.testing.assert_allclose(scheme.decrypt_exact_local(ct, pair.secret), values, atol=1e-3)


@pytest.mark.parametrize("name", [n for n in SCHEMES if he_core.get_scheme(n).supports(he_core.Capability.REKEY)])
def test_switch_key_round_trip_rekeys(name):
    scheme, pair = make_scheme(name)
    # A second scheme object, so the cached one keeps its own public keys installed.
    other = he_core.get_scheme(name, scheme.params).keygen(he_core.KeyRequirements(sizes=(1, 3)),
                                                           rng=he_core.SeededRandom(8))
    switch = scheme.make_switch_key(pair.secret, other.secret, rng=he_core.SeededRandom(9))
    back = loads(ser.dumps(switch), expect_kind="switch_key", expect_key_id=pair.secret.key_id)
    assert (back.from_key_id, back.to_key_id) == (switch.from_key_id, switch.to_key_id)
    assert same_tree(back.data, switch.data)
    values = np.array([[1.0, -2.0, 3.0]])
    moved = scheme.rekey(scheme.encrypt(values, pair.secret, rng=he_core.SeededRandom(3)), back)
    np.testing.assert_allclose(scheme.decrypt_exact_local(moved, other.secret), values, atol=1e-3)


@pytest.mark.parametrize("name", SCHEMES)
def test_bundle_round_trip(name):
    scheme, pair = make_scheme(name)
    cts = {"layer0/w": scheme.encrypt(np.eye(3), pair.secret), "layer0/b": scheme.encrypt([0.5], pair.secret)}
    bundle = ser.Bundle(cts, {"arch": "linear", "shapes": {"w": [3, 3]}, "n": 2**70})
    back = loads(ser.dumps(bundle), expect_kind="bundle", expect_key_id=pair.secret.key_id)
    assert back.meta == bundle.meta and list(back.ciphertexts) == list(cts)
    for key, ct in cts.items():
        np.testing.assert_array_equal(scheme.decrypt_exact_local(back.ciphertexts[key], pair.secret),
                                      scheme.decrypt_exact_local(ct, pair.secret))


@pytest.mark.parametrize("name", SCHEMES)
def test_bundle_with_public_keys_is_self_contained(name):
    scheme, pair = make_scheme(name)
    bundle = ser.Bundle({"w": scheme.encrypt([[1.0, 2.0, 3.0]], pair.secret)}, {}, pair.public)
    back = loads(ser.dumps(bundle), expect_key_id=pair.public.key_id)
    assert back.public.key_id == pair.public.key_id and back.public.requirements == pair.public.requirements
    assert same_tree(back.public.data, pair.public.data)
    fresh = he_core.get_scheme(name, back.public.params)
    fresh.set_public_keys(back.public)
    doubled = fresh.add(back.ciphertexts["w"], back.ciphertexts["w"])
    np.testing.assert_allclose(scheme.decrypt_exact_local(doubled, pair.secret), [[2.0, 4.0, 6.0]], atol=1e-3)


def test_bundle_public_keys_must_match_the_ciphertexts():
    scheme, pair = make_scheme("plain")
    other = he_core.get_scheme("plain").keygen()
    with pytest.raises(ValueError, match="not the ones its ciphertexts are under"):
        ser.dumps(ser.Bundle({"w": scheme.encrypt([1.0], pair.secret)}, {}, other.public))
    empty = loads(ser.dumps(ser.Bundle({}, {}, other.public)), expect_key_id=other.public.key_id)
    assert empty.key_ids == [other.public.key_id]


def test_key_requirements_and_empty_bundle_round_trip():
    req = he_core.KeyRequirements(sizes=(1, 8, 3), rotations=(-1, 2), multiply=False)
    assert loads(ser.dumps(req), expect_kind="key_requirements") == req
    empty = loads(ser.dumps(ser.Bundle({}, {"x": [1, None]})))
    assert empty.ciphertexts == {} and empty.meta == {"x": [1, None]}


def test_non_default_parameters_survive_and_are_recreated():
    scheme = he_core.get_scheme("plain", precision_bits=12)
    key = scheme.keygen().secret
    back = loads(ser.dumps(key))
    assert back.params == PlainParams(precision_bits=12)


# --- hypothesis: arbitrary payload trees -------------------------------------------------------
arrays = st.sampled_from(ALLOWED).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)))
leaves = (st.none() | st.booleans() | st.integers(min_value=-2**200, max_value=2**200)
          | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8) | arrays)
trees = st.recursive(leaves, lambda kids: st.lists(kids, max_size=3) | st.tuples(kids, kids)
                     | st.dictionaries(st.text(max_size=6), kids, max_size=3), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=trees, meta=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5) | st.none(),
                                        max_size=3))
def test_any_payload_tree_round_trips(data, meta):
    params_id = PlainParams().param_id
    key = he_core.PublicKeys("plain", params_id, "a" * 32, data)  # not a real key: its id is not derived
    assert same_tree(loads(ser.dumps(key), verify_key_id=False).data, data)
    ct = he_core.Ciphertext("plain", params_id, "a" * 32, (1, 1), 1.0, data, meta)
    back = loads(ser.dumps(ct))
    assert same_tree(back.data, data) and same_tree(back.meta, meta)


# --- files ---------------------------------------------------------------------------------------
def test_secret_key_file_is_owner_only_and_public_file_is_not(tmp_path):
    scheme, pair = make_scheme("plain")
    secret_path = ser.save(pair.secret, tmp_path / "secret.henn")
    public_path = ser.save(pair.public, tmp_path / "public.henn")
    assert stat.S_IMODE(os.stat(secret_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(public_path).st_mode) & 0o077 == (0o044 & ~_umask())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["public.henn", "secret.henn"]  # no temp files
    assert load(secret_path, expect_kind="secret_key").key_id == pair.secret.key_id


def test_secret_flag_makes_any_file_private_and_overwrite_keeps_it_private(tmp_path):
    scheme, pair = make_scheme("plain")
    path = tmp_path / "x.henn"
    ser.save(pair.public, path)
    ser.save(pair.public, path, secret=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_world_readable_secret_key_warns(tmp_path):
    scheme, pair = make_scheme("plain")
    path = ser.save(pair.secret, tmp_path / "secret.henn")
    os.chmod(path, 0o644)
    with pytest.warns(he_core.SecurityWarning, match="chmod 600"):
        load(path)
    os.chmod(path, 0o600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(path)


def test_load_errors_name_the_file(tmp_path):
    path = tmp_path / "junk.henn"
    path.write_bytes(b"not a henn file at all")
    with pytest.raises(he_core.FormatError, match="bad magic.*junk.henn"):
        load(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- insecure parameter sets are opt-in --------------------------------------------------------------
def _insecure_objects():
    """A file of every kind whose parameters give less than 128-bit security."""
    out = {}
    for name in [n for n in ("plain", "vhe") if n in SCHEMES]:
        scheme, pair = make_scheme(name)
        ct = scheme.encrypt([[1.0, 2.0, 3.0]], pair.secret)
        out.update({f"{name}/public": pair.public, f"{name}/secret": pair.secret, f"{name}/ciphertext": ct,
                    f"{name}/bundle": ser.Bundle({"w": ct}, {}, pair.public)})
    return out


@pytest.mark.parametrize("label", sorted(_insecure_objects()))
def test_insecure_sets_are_refused_without_the_opt_in(label):
    blob = ser.dumps(_insecure_objects()[label])
    with pytest.raises(he_core.FormatError, match=r"insecure parameters \(.*-bit security, below 128\).*"
                                                  r"allow_insecure=True \(henn commands: --allow-insecure\)"):
        ser.loads(blob)
    assert ser.loads(blob, allow_insecure=True) is not None


@pytest.mark.skipif("ckks" not in SCHEMES, reason="ckks not built")
def test_ckks_toy_rings_and_flagged_sets_are_insecure_but_128_bit_sets_load():
    from he_core.schemes.ckks.params import CkksParams
    secure = make_scheme("ckks")[1].public
    assert ser.loads(ser.dumps(secure)).key_id == secure.key_id  # no opt-in needed
    for params, why in ((CkksParams(poly_degree=2048, levels=2, allow_insecure=True), "0-bit security"),
                        (CkksParams(poly_degree=8192, levels=2, allow_insecure=True), "made with allow_insecure")):
        assert params.security_bits < 128 or why.startswith("made")
        public = he_core.get_scheme("ckks", params).keygen(rng=he_core.SeededRandom(1)).public
        with pytest.raises(he_core.FormatError, match=f"insecure parameters.*{why}"):
            ser.loads(ser.dumps(public))
        assert ser.loads(ser.dumps(public), allow_insecure=True).key_id == public.key_id


def test_files_without_parameters_need_no_opt_in():
    assert ser.loads(ser.dumps(he_core.KeyRequirements())) == he_core.KeyRequirements()
    assert ser.loads(ser.dumps(ser.Bundle({}, {"x": 1}))).meta == {"x": 1}
