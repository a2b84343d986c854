"""he_core.schemes.ckks.checks: a CKKS ciphertext's structure, layout and noise record, checked before any kernel."""
import warnings

import numpy as np
import pytest

from he_core import KeyRequirements, SeededRandom
from he_core.errors import MismatchError
from he_core.schemes.ckks import CkksParams, CkksScheme


@pytest.fixture(scope="module")
def ctx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CkksScheme(CkksParams(poly_degree=1024, levels=2, allow_insecure=True))
    keys = s.keygen(KeyRequirements(sizes=(3,)), rng=SeededRandom(2))
    return s, keys.secret, s.encrypt(np.arange(6.0).reshape(2, 3))


def data_variants(ct, s):
    d = ct.data
    yield "dtype", d.astype(np.int64)
    yield "ndim", d[0]
    yield "parts", np.concatenate([d, d, d, d], axis=1)
    yield "limbs", np.concatenate([d, d[:, :, :1]], axis=2)
    yield "ring", np.ascontiguousarray(d[..., :512])
    yield "order", np.asfortranarray(d)
    yield "spare ciphertext", np.concatenate([d, d], axis=0)


def test_malformed_arrays_are_refused(ctx):
    s, _, ct = ctx
    for what, data in data_variants(ct, s):
        with pytest.raises(MismatchError, match="malformed|holds 2 ciphertexts"):
            s.neg(ct.replace(data=data))


@pytest.mark.parametrize("change", [{"stride": 3}, {"stride": 2}, {"stride": 1024}, {"stride": True},
                                    {"dirty": 0}, {"rep": None}, {"coeff": "no"}])
def test_malformed_layout_metadata_is_refused(ctx, change):
    s, _, ct = ctx
    with pytest.raises(MismatchError, match="layout metadata"):
        s.neg(ct.replace(meta={**ct.meta, **change}))


@pytest.mark.parametrize("change", [{"nvar": -1.0}, {"nslot": float("nan")}, {"vmax": float("inf")},
                                    {"nspec": "1"}, {"fresh": 1}, {"flood": -1.0}, {"flood": True}])
def test_malformed_noise_metadata_is_refused(ctx, change):
    s, _, ct = ctx
    with pytest.raises(MismatchError, match="noise metadata"):
        s.neg(ct.replace(meta={**ct.meta, **change}))


def test_missing_noise_metadata_gets_the_most_pessimistic_bound(ctx):
    s, secret, ct = ctx
    meta = {k: v for k, v in ct.meta.items() if k not in ("nvar", "nslot", "nspec", "vmax")}
    old = ct.replace(meta=meta)
    s.neg(old)  # accepted
    assert old.meta["vmax"] >= ct.meta["vmax"] and old.meta["nvar"] >= ct.meta["nvar"]
    np.testing.assert_allclose(s.decrypt_exact_local(old, secret), np.arange(6.0).reshape(2, 3), atol=1e-6)


def test_residues_at_or_above_their_prime_are_refused_by_validate(ctx):
    s, _, ct = ctx
    s.validate(ct)
    bad = ct.data.copy()
    bad[0, 1, 1, 7] = np.uint64(s.ring.q[1])
    with pytest.raises(MismatchError, match="not below its prime"):
        s.validate(ct.replace(data=bad))
