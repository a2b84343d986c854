"""he_core.circuits.polyval: values against numpy, the depth promise, and the product counts."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import he_core
from he_core import circuits
from he_core.errors import EncodingError


class _Depth:
    """A stand-in ciphertext: the values and the multiplicative depth used to reach them."""

    def __init__(self, value, depth):
        self.value, self.depth = value, depth


class DepthScheme:
    """Just the four calls polyval makes, in the clear, counting products and depth."""

    def __init__(self):
        self.products = self.plain_products = 0

    def mul(self, a, b):
        self.products += 1
        return _Depth(a.value * b.value, max(a.depth, b.depth) + 1)

    def mul_plain(self, a, c):
        self.plain_products += 1
        return _Depth(a.value * c, a.depth + 1)

    def add(self, a, b):
        return _Depth(a.value + b.value, max(a.depth, b.depth))

    def add_plain(self, a, c):
        return _Depth(a.value + c, a.depth)


coefficients = st.lists(st.floats(-4, 4, allow_nan=False), min_size=1, max_size=10)
shapes = st.sampled_from(["full", "odd", "even"])


@given(coefficients, shapes, st.lists(st.floats(-1.5, 1.5), min_size=1, max_size=6))
@settings(max_examples=200, deadline=None)
def test_values_and_depth(coeffs, shape, xs):
    c = np.array(coeffs)
    if shape == "odd":
        c[2::2] = 0.0
    elif shape == "even":
        c[1::2] = 0.0
    x = np.array(xs)
    scheme = DepthScheme()
    out = circuits.polyval(scheme, _Depth(x, 0), list(c))
    np.testing.assert_allclose(out.value, np.polynomial.polynomial.polyval(x, c), rtol=1e-9, atol=1e-9)
    nonzero = [i for i in range(1, c.size) if c[i] != 0.0]
    degree = max(nonzero, default=0)
    assert out.depth <= circuits.polyval_depth_bound(degree)


@pytest.mark.parametrize("coeffs,products,plain", [
    ([0.5, 0.2, 0.0, -0.01, 0.0, 0.001], 3, 1),   # odd degree 5: Horner in x^2
    ([0.5, 0.2, 0.0, -0.01], 2, 1),               # odd degree 3
    ([1.0, 0.0, 0.3, 0.0, 0.1], 2, 1),            # even degree 4
    ([0.5, 0.2, 0.1, -0.01, 0.02, 0.001], 4, 5),  # general degree 5: powers first
    ([0.1, 0.2, 0.0, 0.3, 0.0, 0.0, 0.0, 0.4], 4, 3),  # odd degree 7: Horner would be too deep
    ([2.0], 0, 1),                                 # constant: 0 * x + c0
])
def test_product_counts(coeffs, products, plain):
    scheme = DepthScheme()
    circuits.polyval(scheme, _Depth(np.array([0.7]), 0), coeffs)
    assert (scheme.products, scheme.plain_products) == (products, plain)


def test_bad_coefficients_are_refused():
    scheme = DepthScheme()
    x = _Depth(np.array([1.0]), 0)
    for bad in ([], [[1.0, 2.0]], [1.0, float("nan")], (0.0, float("inf")), [1.0, "a"]):
        with pytest.raises((EncodingError, ValueError)):
            circuits.polyval(scheme, x, bad)


def test_cached_plans_follow_the_coefficients():
    scheme = DepthScheme()
    x = _Depth(np.array([0.5, -1.0]), 0)
    for coeffs in ([0.1, 0.2, 0.0, 0.3], (0.1, 0.2, 0.0, 0.3), np.array([0.1, 0.2, 0.0, 0.3]), [0.1, 0.2, 0.5, 0.3]):
        want = np.polynomial.polynomial.polyval(x.value, np.asarray(coeffs))
        np.testing.assert_allclose(circuits.polyval(scheme, x, coeffs).value, want)
        np.testing.assert_allclose(circuits.polyval(scheme, x, coeffs).value, want)  # from the cache


def test_power_plan_depths():
    for degree in range(2, 33):
        plan = circuits.power_plan(degree)
        depth = {1: 0}
        for i in range(2, degree + 1):
            a, b = plan[i]
            assert a + b == i
            depth[i] = max(depth[a], depth[b]) + 1
        assert max(depth.values()) == circuits.polyval_depth_bound(degree) - 1


def test_plain_scheme_polyval_matches_numpy():
    scheme = he_core.get_scheme("plain")
    keys = scheme.keygen()
    x = np.array([[-1.5, -0.25, 0.0, 0.5, 1.25]])
    for coeffs in ([0.5, 1.9, 0.0, -3.7, 0.0, 2.4], [0.1, 0.0, -0.2, 0.0, 0.05], [1.0, -1.0, 0.5, 0.25]):
        got = scheme.decrypt_exact_local(scheme.polyval(scheme.encrypt(x), coeffs), keys.secret)
        np.testing.assert_allclose(got, np.polynomial.polynomial.polyval(x, coeffs), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ one evaluator, every scheme
FOLDED = circuits.PolyStyle(fold=True, odd_split=True)
STYLES = [circuits.GENERIC, FOLDED, circuits.PolyStyle(fold=True), circuits.PolyStyle(odd_split=True)]


@given(coefficients, shapes, st.sampled_from(STYLES))
@settings(max_examples=200, deadline=None)
def test_stated_depth_is_the_depth_spent(coeffs, shape, style):
    """polyval_depth is exactly the deepest product chain of the circuit, in every style."""
    c = np.array(coeffs)
    if shape == "odd":
        c[2::2] = 0.0
    elif shape == "even":
        c[1::2] = 0.0
    x = np.array([-1.25, 0.5, 1.0])
    out = circuits.polyval(DepthScheme(), _Depth(x, 0), list(c), style)
    np.testing.assert_allclose(out.value, np.polynomial.polynomial.polyval(x, c), rtol=1e-9, atol=1e-9)
    assert out.depth == circuits.polyval_depth(c, style)
    if style == circuits.GENERIC:
        assert out.depth == circuits.polyval_depth_bound(max([i for i in range(1, c.size) if c[i]], default=0))


@pytest.mark.parametrize("coeffs,products,plain,depth", [
    ([0.5, 0.2, 0.0, -0.01, 0.0, 0.001], 3, 2, 4),       # odd degree 5: c0 + x q(x^2), q folded
    ([0.5, 0.2, 0.1, -0.01], 3, 3, 2),                   # degree 3: c x^3 = x^2 (c x), one level below powers
    ([0.1, 0.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.4], 4, 2, 4),  # odd degree 7: split, q = 0.3 y + 0.4 y^3
    ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], 5, 1, 4),  # x^8 = x^4 (x^2 (x (1 x))): x^2, x^4 and 3
    ([2.0], 0, 1, 1),                                    # constant: 0 * x + c0
])
def test_folded_circuit_counts(coeffs, products, plain, depth):
    scheme = DepthScheme()
    out = circuits.polyval(scheme, _Depth(np.array([0.7]), 0), coeffs, FOLDED)
    assert (scheme.products, scheme.plain_products, out.depth) == (products, plain, depth)
    assert circuits.polyval_depth(coeffs, FOLDED) == depth


def _shaped(rng, degree: int, shape: str, low: float, high: float) -> list[float]:
    """Random coefficients of ``degree`` with ``low <= |c| <= high``: all, odd or even powers, some zeros."""
    c = rng.uniform(low, high, degree + 1) * rng.choice([-1.0, 1.0], degree + 1)
    if shape == "odd":
        c[2::2] = 0.0
    elif shape == "even":
        c[1::2] = 0.0
    c[1:degree][rng.random(degree - 1 if degree > 1 else 0) < 0.3] = 0.0
    return list(c)


@pytest.fixture(scope="module")
def ckks():
    if "ckks" not in he_core.available_schemes():
        pytest.skip("the ckks scheme is not built")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = he_core.get_scheme("ckks", poly_degree=2048, levels=7, allow_insecure=True)
    s.keygen(he_core.KeyRequirements(sizes=(4,)), rng=he_core.SeededRandom(3))
    return s


def test_ckks_spends_the_stated_levels(ckks):
    """Degrees 1..8 (and a twice-split 11): levels spent == polyval_depth == op_cost.

    Coefficients below 2^-10 in magnitude cost ckks a level per plaintext product (larger
    ones within 2^10 are absorbed into the scale for free, so those may spend less).
    """
    rng = np.random.default_rng(12)
    x = ckks.encrypt(np.array([[-1.0, -0.3, 0.4, 0.9]]), rng=he_core.SeededRandom(4))
    top = ckks.budget(x)["level"]
    cases = [([0.0, 0.0, 0.0, 5e-4, 0.0, 0.0, 0.0, -6e-4, 0.0, 0.0, 0.0, 7e-4], 6)]
    for degree in range(1, 9):
        for shape in ("all", "odd" if degree % 2 else "even"):
            for _ in range(2):
                cases.append((_shaped(rng, degree, shape, 2e-4, 9e-4), None))
    cases.append(([0.3], 1))
    for coeffs, want in cases:
        stated = circuits.polyval_depth(coeffs, ckks.polyval_style)
        assert ckks.op_cost("polyval", x, coeffs=coeffs).depth == stated
        spent = top - ckks.budget(ckks.polyval(x, coeffs))["level"]
        assert spent == stated, (coeffs, spent, stated)
        assert want is None or stated == want
        free = [c * 500 for c in coeffs]  # within the free range: never more than stated
        assert top - ckks.budget(ckks.polyval(x, free))["level"] <= stated


def test_ckks_op_cost_covers_an_operand_off_its_working_scale(ckks):
    """After a scalar absorbed into the scale (an activation's 1/a) ckks may spend one more
    level realigning the circuit's terms: its op_cost says so, and is never exceeded."""
    rng = np.random.default_rng(13)
    x0 = ckks.encrypt(np.array([[-1.0, -0.3, 0.4, 0.9]]), rng=he_core.SeededRandom(4))
    ran = 0
    for factor in (0.25, 0.5, 0.7, 3.0):
        x = ckks.mul_plain(x0, factor)
        top = ckks.budget(x)["level"]
        for degree in range(1, 9):
            for shape in ("all", "odd" if degree % 2 else "even"):
                coeffs = _shaped(rng, degree, shape, 0.05, 0.9)
                cost = ckks.op_cost("polyval", x, coeffs=coeffs).depth
                assert cost == circuits.polyval_depth(coeffs, ckks.polyval_style) + 1
                try:
                    spent = top - ckks.budget(ckks.polyval(x, coeffs))["level"]
                except he_core.errors.AlignmentError:  # terms too far off scale to realign: refused, not wrong
                    continue
                ran += 1
                assert spent <= cost, (factor, coeffs, spent, cost)
    assert ran >= 50


class _Clear:
    """The four calls in float64: the plain scheme must match it bit for bit."""

    def mul(self, a, b):
        return a * b

    def mul_plain(self, a, c):
        return a * c

    def add(self, a, b):
        return a + b

    def add_plain(self, a, c):
        return a + c


POLYS = [[0.25], [0.0, 0.0, 0.0], [0.5, -0.75], [0.1, 0.0, 0.6], [0.5, 0.197, 0.0, -0.004],
         [0.3, 0.0, -0.2, 0.0, 0.1], [0.5, 0.25, 0.0, -1 / 48, 0.0, 1 / 480], [0.0, 0.9, 0.0, -0.3, 0.0, 0.05, 0.0, -0.01],
         [0.1, -0.3, 0.2, 0.05, -0.01, 0.02, 0.0, 0.003], [0.2, 0.0, 0.5, 0.0, -0.25, 0.0, 0.125, 0.0, -0.0625]]


@pytest.fixture(scope="module", params=he_core.available_schemes())
def any_scheme(request):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {"poly_degree": 2048, "levels": 7, "allow_insecure": True} if request.param == "ckks" else {}
        s = he_core.get_scheme(request.param, **kwargs)
        keys = s.keygen(he_core.KeyRequirements(sizes=(6,)), rng=he_core.SeededRandom(5))
    return s, keys.secret


@pytest.mark.parametrize("coeffs", POLYS, ids=lambda c: f"deg{len(c) - 1}")
def test_every_scheme_matches_numpy_within_its_bound(any_scheme, coeffs):
    """plain: the float64 circuit bit for bit; vhe: the worst-case fixed-point bound of the
    same circuit; ckks: its own noise estimate's slot bound."""
    from ..henn.errbound import ErrBoundParams, ErrBoundScheme

    s, secret = any_scheme
    x = np.array([[-1.0, -0.6875, -0.125, 0.0, 0.5, 0.9375]])  # on every scheme's grid
    out = s.polyval(s.encrypt(x, rng=he_core.SeededRandom(6)), coeffs)
    got = s.decrypt_exact_local(out, secret)
    want = np.polynomial.polynomial.polyval(x, coeffs)
    if s.name == "plain":
        np.testing.assert_array_equal(got, circuits.polyval(_Clear(), x, coeffs, s.polyval_style))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    elif s.name == "vhe":
        twin = ErrBoundScheme(ErrBoundParams(unit_bits=s.params.scale_bits))
        bound = twin.error_bound(twin.polyval(twin.encrypt(x, twin.keygen().secret), coeffs))
        assert np.all(np.abs(got - want) <= bound), (np.abs(got - want), bound)
    else:
        bound = s.noise_estimate(out)["slot_bound"]
        assert np.max(np.abs(got - want)) <= bound, (np.max(np.abs(got - want)), bound)


def test_bad_coefficients_raise_encoding_error_on_every_scheme(any_scheme):
    s, _ = any_scheme
    x = s.encrypt(np.array([[0.5, -0.25, 1.0, 0.0, 0.75, -1.0]]))
    bad = [[], [[1.0, 2.0]], [1.0, float("nan")], (0.0, float("inf")), [0.0, 0.0, 0.0, 0.0, 0.0, float("-inf")],
           [1.0, "a"], [0.5, None], np.zeros((2, 2))]
    if s.name != "plain":  # the plaintext twin has no range to leave
        bad += [[0.0, 1e30], [0.0, 1.0, 0.0, 0.0, 0.0, 1e30], [1e30]]
    for coeffs in bad:
        with pytest.raises(EncodingError):
            s.polyval(x, coeffs)
