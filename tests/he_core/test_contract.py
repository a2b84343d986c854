"""The scheme contract, checked over every built-in scheme that is available here.

Each encrypted operation is compared with the same operation on the plaintext, within a
per-scheme bound: exact for ``plain``, a few units of the fixed-point step for ``vhe``,
and an absolute bound proportional to ``1 + |x|`` for ``ckks`` at its default scale
(2^-20, about 16x its measured error).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import he_core
from he_core import KeyRequirements

SIZES = (1, 2, 3, 8)
BUILTIN = [s for s in ("plain", "vhe", "ckks") if s in he_core.available_schemes()]


def tolerance(name: str, ct: he_core.Ciphertext, magnitude: float) -> float:
    """Worst-case absolute error allowed after one operation on values up to ``magnitude``."""
    if name == "plain":
        return 1e-12 * (1 + magnitude)
    if name == "vhe":  # rounding at encode and after each rescale: a few units of 2^-f, scaled by operands
        return 4 * (1 + magnitude) / ct.scale
    # ckks at its default 2^40 scale: the error of one operation stays near 2^-24 (1 + |x|) (the worst of this
    # file's checks when measured); 2^-20 leaves a 16x margin, two orders tighter than the old 1e-4.
    return 2.0**-20 * (1 + magnitude)


@pytest.fixture(scope="module", params=BUILTIN)
def ctx(request):
    import warnings

    scheme = he_core.get_scheme(request.param)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        keys = scheme.keygen(KeyRequirements(sizes=SIZES), rng=he_core.SeededRandom(11))
    return scheme, keys


matrices = st.integers(1, 4).flatmap(
    lambda rows: st.sampled_from(SIZES).flatmap(
        lambda size: st.lists(st.floats(-4, 4, allow_nan=False, width=32), min_size=rows * size, max_size=rows * size)
        .map(lambda v: np.array(v, dtype=np.float64).reshape(rows, size))))

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def close(scheme, ct, got, want, magnitude):
    tol = tolerance(scheme.name, ct, magnitude)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want), initial=0.0) <= tol, (got, want, tol)


@given(x=matrices)
@SETTINGS
def test_encrypt_decrypt_secret_and_public(ctx, x):
    scheme, keys = ctx
    for ct in (scheme.encrypt(x, keys.secret), scheme.encrypt(x)):
        assert ct.shape == x.shape
        close(scheme, ct, scheme.decrypt_exact_local(ct, keys.secret), x, 4)


@given(x=matrices, data=st.data())
@SETTINGS
def test_add_sub_neg_plain_ops(ctx, x, data):
    scheme, keys = ctx
    y = data.draw(st.lists(st.floats(-4, 4, width=32), min_size=x.size, max_size=x.size)).__iter__()
    y = np.fromiter(y, dtype=np.float64).reshape(x.shape)
    a, b = scheme.encrypt(x), scheme.encrypt(y)
    dec = lambda c: scheme.decrypt_exact_local(c, keys.secret)
    close(scheme, a, dec(scheme.add(a, b)), x + y, 8)
    close(scheme, a, dec(scheme.sub(a, b)), x - y, 8)
    close(scheme, a, dec(scheme.neg(a)), -x, 4)
    close(scheme, a, dec(scheme.add_plain(a, y)), x + y, 8)
    close(scheme, a, dec(scheme.sub_plain(a, 1.5)), x - 1.5, 8)
    close(scheme, a, dec(scheme.mul_plain(a, y)), x * y, 16)
    close(scheme, a, dec(scheme.mul_plain(a, -0.25)), x * -0.25, 4)


@given(x=matrices, data=st.data())
@SETTINGS
def test_ciphertext_products(ctx, x, data):
    scheme, keys = ctx
    if not scheme.supports(he_core.Capability.CIPHER_MULTIPLY):
        pytest.skip("no ciphertext multiplication")
    y = np.array(data.draw(st.lists(st.floats(-4, 4, width=32), min_size=x.size, max_size=x.size))).reshape(x.shape)
    a, b = scheme.encrypt(x), scheme.encrypt(y)
    dec = lambda c: scheme.decrypt_exact_local(c, keys.secret)
    close(scheme, a, dec(scheme.mul(a, b)), x * y, 16)
    close(scheme, a, dec(scheme.inner(a, b)), (x * y).sum(axis=1, keepdims=True), 16 * x.shape[1])
    s = scheme.encrypt(x[:, :1])  # size-1 ciphertexts broadcast over the other's vectors
    close(scheme, a, dec(scheme.mul(s, b)), x[:, :1] * y, 16)
    r = scheme.encrypt(y[:1])  # one row broadcasts over rows
    close(scheme, a, dec(scheme.mul(a, r)), x * y[:1], 16)


@given(x=matrices, idx=st.lists(st.integers(0, 3), max_size=6))
@SETTINGS
def test_row_operations(ctx, x, idx):
    scheme, keys = ctx
    idx = [i % x.shape[0] for i in idx]
    a = scheme.encrypt(x)
    dec = lambda c: scheme.decrypt_exact_local(c, keys.secret)
    close(scheme, a, dec(scheme.row_sum(a)), x.sum(axis=0, keepdims=True), 16)
    if idx:
        close(scheme, a, dec(scheme.row_sum(a, idx)), x[idx].sum(axis=0, keepdims=True), 24)
        close(scheme, a, dec(scheme.take_rows(a, idx)), x[idx], 4)
        upd = scheme.encrypt(np.full((1, x.shape[1]), 0.5))
        want = x.copy()
        np.add.at(want, idx, 0.5)
        scheme.index_add_(a, idx, upd)
        close(scheme, a, dec(a), want, 8)
        a = scheme.encrypt(x)
    both = scheme.concat_rows([a, a])
    close(scheme, a, dec(both), np.vstack([x, x]), 4)
    w = np.linspace(-1, 1, 2 * x.shape[0]).reshape(2, x.shape[0])
    close(scheme, a, dec(scheme.lincomb(w, a)), w @ x, 8 * x.shape[0])


def test_polyval_matches_numpy(ctx):
    scheme, keys = ctx
    if not scheme.supports(he_core.Capability.CIPHER_MULTIPLY):
        pytest.skip("no ciphertext multiplication")
    x = np.array([[-2.0, -0.5, 0.0, 0.75, 1.5, 2.0, -1.0, 0.25]])
    coeffs = [0.5, 0.197, 0.0, -0.004]
    ct = scheme.encrypt(x)
    got = scheme.decrypt_exact_local(scheme.polyval(ct, coeffs), keys.secret)
    close(scheme, ct, got, np.polynomial.polynomial.polyval(x, coeffs), 16)


def test_mismatches_are_refused(ctx):
    scheme, keys = ctx
    other = he_core.get_scheme(scheme.name)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", he_core.SecurityWarning)
        other_keys = other.keygen(KeyRequirements(sizes=SIZES))
    a = scheme.encrypt([[1.0, 2.0]])
    b = other.encrypt([[1.0, 2.0]])
    with pytest.raises(he_core.MismatchError, match="different keys"):
        scheme.add(a, b)
    with pytest.raises(he_core.MismatchError, match="cannot decrypt"):
        scheme.decrypt_exact_local(a, other_keys.secret)
    with pytest.raises(he_core.MismatchError, match="do not broadcast"):
        scheme.add(a, scheme.encrypt([[1.0, 2.0, 3.0]]))
    plain = he_core.get_scheme("plain", precision_bits=10) if scheme.name == "plain" else he_core.get_scheme("plain")
    plain.keygen()
    with pytest.raises(he_core.MismatchError):
        scheme.add(a, plain.encrypt([[1.0, 2.0]]))


def test_bad_plaintexts_are_refused(ctx):
    scheme, keys = ctx
    for bad in ([[np.nan, 1.0]], [[np.inf]], [], [[[1.0]]]):
        with pytest.raises(he_core.EncodingError):
            scheme.encrypt(bad)
    with pytest.raises(TypeError):
        scheme.encrypt([["a", "b"]])
    with pytest.raises(TypeError):
        scheme.encrypt([[1 + 2j]])
    a = scheme.encrypt([[1.0, 2.0]])
    with pytest.raises(he_core.EncodingError, match="does not broadcast"):
        scheme.mul_plain(a, [1.0, 2.0, 3.0])
    with pytest.raises(IndexError):
        scheme.row_sum(a, [5])
    with pytest.raises(TypeError):
        scheme.row_sum(a, [0.5])
    with pytest.raises(TypeError):
        scheme.add(a, np.ones((1, 2)))


def test_budget_reports_kind_and_remaining(ctx):
    scheme, keys = ctx
    b = scheme.budget(scheme.encrypt([[1.0]]))
    assert b["kind"] in ("noise", "levels", "unbounded")
    assert b.remaining > 0


def test_a_table_reads_back_and_says_whether_it_left_the_default_layout(ctx):
    """Every scheme takes ``layout="table"``; one that packs tables its own way says so (CKKS does)."""
    scheme, keys = ctx
    x = np.array([[1.0, -2.0], [0.0, 0.5], [3.0, -0.25]])
    assert scheme.in_default_layout(scheme.encrypt(x))
    table = scheme.encrypt(x, layout="table")
    np.testing.assert_allclose(scheme.decrypt_exact_local(table, keys.secret), x, atol=tolerance(scheme.name, table, 3.0), rtol=0)
    packed = not scheme.in_default_layout(table)
    assert packed == (scheme.layout_of(table) is not None)
    gathered = scheme.row_sum(table, [0, 2])
    np.testing.assert_allclose(scheme.decrypt_exact_local(gathered, keys.secret), x[[0, 2]].sum(0, keepdims=True),
                               atol=tolerance(scheme.name, gathered, 4.0), rtol=0)
    assert scheme.in_default_layout(gathered) is not packed  # a gathered row stays in the table's packing


def test_public_keys_needed_for_public_encryption():
    scheme = he_core.get_scheme("plain")
    with pytest.raises(he_core.KeyMissingError, match="keygen"):
        scheme.encrypt([1.0])
