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
