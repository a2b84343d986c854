"""Bad input, exhausted budgets and overflow: always a clear exception, never a wrong answer."""
import importlib.util
import pathlib
import warnings

import numpy as np
import pytest

from he_core import SeededRandom

import he_core
from he_core import (EncodingError, HEOverflowError, KeyMissingError, KeyRequirements, MismatchError,
                     NoiseBudgetExhausted, ParameterError, SecurityWarning)
from he_core.schemes.vhe import VheParams, VheScheme
from he_core.schemes.vhe import scheme as vhe_scheme_module

_spec = importlib.util.spec_from_file_location("vhe_conftest", pathlib.Path(__file__).with_name("conftest.py"))
_conf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conf)


def test_keygen_warns_that_the_scheme_is_insecure(monkeypatch):
    monkeypatch.setattr(vhe_scheme_module, "_warned", False)
    scheme = he_core.get_scheme("vhe")
    with pytest.warns(SecurityWarning, match="NOT secure"):
        scheme.keygen(KeyRequirements(sizes=(2,)), rng=SeededRandom(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SecurityWarning)  # once per process
        scheme.keygen(KeyRequirements(sizes=(2,)), rng=SeededRandom(2))


def test_parameters_are_validated():
    assert VheParams().security_bits == 0
    with pytest.raises(ParameterError, match="w_bits"):
        VheParams(w_bits=3)
    with pytest.raises(ParameterError, match="must be an int"):
        VheParams(scale_bits=16.0)
    with pytest.raises(ParameterError, match="no room"):
        VheParams(w_bits=50, scale_bits=16)
    with pytest.raises(ParameterError, match="int64"):
        VheParams(t_bound=8)
    with pytest.raises(ParameterError, match="digit_bits"):
        VheParams(digit_bits=1)
    assert VheParams.from_dict(VheParams(k=2).to_dict()) == VheParams(k=2)


def test_bad_plaintexts(vhe):
    scheme, keys = vhe
    with pytest.raises(EncodingError, match="NaN"):
        scheme.encrypt([[1.0, np.nan]])
    with pytest.raises(EncodingError, match="NaN"):
        scheme.encrypt([[1.0, np.inf]], keys.secret)
    with pytest.raises(EncodingError, match="range"):
        scheme.encrypt([[1.0, 1e6]])
    with pytest.raises(EncodingError):
        scheme.encrypt(np.zeros((2, 2, 2)))
    with pytest.raises(TypeError):
        scheme.encrypt([["a", "b"]])
    ct = scheme.encrypt([[1.0, 2.0]])
    with pytest.raises(EncodingError, match="range"):
        scheme.add_plain(ct, 1e7)
    with pytest.raises(EncodingError, match="range"):
        scheme.mul_plain(ct, 1e7)
    with pytest.raises(EncodingError, match="NaN"):
        scheme.mul_plain(ct, float("nan"))
    with pytest.raises(EncodingError, match="broadcast"):
        scheme.add_plain(ct, [1.0, 2.0, 3.0])
    with pytest.raises(EncodingError):
        scheme.encrypt([[1.0]], scale=3.0)


def test_missing_key_material_names_the_size(vhe):
    scheme, keys = vhe
    with pytest.raises(KeyMissingError, match="size 5"):
        scheme.encrypt(np.zeros((1, 5)))
    with pytest.raises(KeyMissingError, match="size 5"):
        scheme.encrypt(np.zeros((1, 5)), keys.secret)
    other = he_core.get_scheme("vhe")
    with pytest.raises(KeyMissingError):
        other.encrypt([[1.0]])
    ct = scheme.encrypt([[1.0, 2.0]])
    with pytest.raises(KeyMissingError, match="make_linear_key"):
        scheme.matvec(ct, np.eye(2))
    with pytest.raises(KeyMissingError, match="size 4"):
        scheme.make_linear_key(keys.secret, np.ones((4, 2)))


def test_foreign_ciphertexts_and_keys_are_refused(vhe):
    scheme, keys = vhe
    other, other_keys = _conf.make(seed=99)
    a, b = scheme.encrypt([[1.0, 2.0]]), other.encrypt([[1.0, 2.0]])
    with pytest.raises(MismatchError, match="different keys"):
        scheme.add(a, b)
    with pytest.raises(MismatchError, match="cannot decrypt"):
        scheme.decrypt_exact_local(a, other_keys.secret)
    key = scheme.make_linear_key(keys.secret, np.eye(2))
    with pytest.raises(MismatchError):
        scheme.matvec(b, np.eye(2), key=key)
    with pytest.raises(MismatchError, match="different matrix"):
        scheme.matvec(a, 2 * np.eye(2), key=key)
    small = VheScheme.create(w_bits=30)
    with pytest.raises(MismatchError):
        small.add(a, a)
    plain = he_core.get_scheme("plain")
    plain.keygen()
    with pytest.raises(MismatchError):
        scheme.add(a, plain.encrypt([[1.0, 2.0]]))
    with pytest.raises(MismatchError, match="scales differ"):
        scheme.add(a, scheme.mul_plain(scheme.encrypt([[0.01, 0.02]]), 0.5, rescale=False))


def test_products_beyond_the_range_raise_before_computing(vhe):
    scheme, keys = vhe
    big = scheme.encrypt([[100.0, -100.0]])
    with pytest.raises(HEOverflowError, match="cannot mul"):
        scheme.mul(big, big)  # 10^4 > 8191
    with pytest.raises(HEOverflowError, match="cannot mul_plain"):
        scheme.mul_plain(big, 100.0)
    with pytest.raises(HEOverflowError):
        scheme.mul_plain(big, 2.0, rescale=False)  # scale 2^32 holds only |v| < 1/8
    with pytest.raises(HEOverflowError, match="cannot inner"):
        scheme.inner(big, big)
    np.testing.assert_array_equal(scheme.decrypt_exact_local(big, keys.secret), [[100.0, -100.0]])


def test_sums_that_overflow_are_refused_and_leave_the_target_intact(vhe):
    scheme, keys = vhe
    x = np.array([[8000.0, -8000.0]])
    a = scheme.encrypt(x)
    with pytest.raises(HEOverflowError):
        scheme.add(a, a)
    with pytest.raises(HEOverflowError):
        scheme.row_sum(scheme.concat_rows([a, a]))
    table = scheme.encrypt(np.vstack([x, x]))
    with pytest.raises(HEOverflowError):
        scheme.index_add_(table, [0, 1, 1], a)
    np.testing.assert_array_equal(scheme.decrypt_exact_local(table, keys.secret), np.vstack([x, x]))


def test_noise_budget_exhaustion_is_raised_before_decryption_fails():
    scheme, keys = _conf.make(sizes=(2,), seed=3, w_bits=20, scale_bits=8)
    ct = scheme.encrypt([[1.5, -0.5]])
    with pytest.raises(NoiseBudgetExhausted):
        for _ in range(64):
            ct = scheme.add(ct, ct)  # doubles the noise bound each time
            assert np.all(scheme.decrypt_exact_local(ct, keys.secret) == scheme.decrypt_exact_local(ct, keys.secret))
    b = scheme.budget(ct)
    assert b["kind"] == "noise" and 0 <= b.remaining < 20
    x, two = scheme.encrypt([[0.5, 0.25]]), scheme.encrypt([[2.0, 2.0]])
    value = np.array([[0.5, 0.25]])
    with pytest.raises(NoiseBudgetExhausted):
        for _ in range(40):
            x = scheme.mul(x, two)  # each product at least doubles the noise bound
            value = value * 2
            np.testing.assert_array_equal(scheme.decrypt_exact_local(x, keys.secret), value)  # correct up to the refusal


def test_budget_reports_noise_and_magnitude(vhe):
    scheme, _ = vhe
    ct = scheme.encrypt([[2.0, -3.0]])
    b = scheme.budget(ct)
    assert b["kind"] == "noise" and b.remaining > 20
    assert b["magnitude_remaining"] > 0 and b["max_value"] >= 3.0
    assert scheme.budget(scheme.mul(ct, ct)).remaining < b.remaining


def test_rescale_needs_an_unrescaled_product(vhe):
    scheme, _ = vhe
    with pytest.raises(EncodingError, match="cannot rescale"):
        scheme.rescale(scheme.encrypt([[1.0]]))


def test_bad_row_indices(vhe):
    scheme, _ = vhe
    ct = scheme.encrypt(np.zeros((3, 2)))
    with pytest.raises(IndexError):
        scheme.take_rows(ct, [3])
    with pytest.raises(IndexError):
        scheme.row_sum(ct, np.array([5], dtype=np.int64))
    with pytest.raises(TypeError):
        scheme.row_sum(ct, [0.5])
    with pytest.raises(MismatchError):
        scheme.index_add_(ct, [0, 1], scheme.encrypt(np.zeros((3, 2))))
