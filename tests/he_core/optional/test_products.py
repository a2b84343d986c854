"""he_core.optional.products: capability gates, operand checks, and hooks that fail by name when not supplied.

Two toy schemes built on the plaintext twin: one that does not declare the capabilities
(every public method refuses), one that declares them but keeps the base class's hooks.
"""
import numpy as np
import pytest

import he_core
from he_core import Capability, SecretKey
from he_core.errors import CapabilityError, EncodingError, MismatchError
from he_core.optional import LinearMapping, Products
from he_core.schemes.plain import PlainScheme


class Undeclared(PlainScheme):
    capabilities = frozenset({Capability.PUBLIC_KEY_ENCRYPT})


class Hookless(PlainScheme):
    _mul, _inner, _rescale, _matvec = Products._mul, Products._inner, Products._rescale, LinearMapping._matvec


def made(cls):
    s = cls.create()
    return s, s.keygen(rng=he_core.SeededRandom(2)).secret


@pytest.mark.parametrize("cls", [Undeclared, Hookless])
def test_each_operation_raises_capability_error(cls):
    s, key = made(cls)
    a = s.encrypt(np.ones((2, 3)))
    calls = {"mul": lambda: s.mul(a, a), "square": lambda: s.square(a), "inner": lambda: s.inner(a, a),
             "rescale": lambda: s.rescale(a), "polyval": lambda: s.polyval(a, [1.0, 2.0, 3.0]),
             "matvec": lambda: s.matvec(a, np.eye(3))}
    if cls is Undeclared:
        calls["make_linear_key"] = lambda: s.make_linear_key(key, np.eye(3))
    for op, call in calls.items():
        with pytest.raises(CapabilityError, match="does not support"):
            call()


def test_operands_are_checked_before_the_hook():
    s, key = made(PlainScheme)
    a, b = s.encrypt(np.ones((2, 3))), s.encrypt(np.ones((2, 4)))
    with pytest.raises(MismatchError, match="do not broadcast"):
        s.mul(a, b)
    with pytest.raises(MismatchError, match="do not broadcast"):
        s.inner(a, s.encrypt(np.ones((2, 1))))  # inner does not broadcast sizes, mul does
    np.testing.assert_array_equal(s.decrypt(s.mul(a, s.encrypt(np.full((2, 1), 2.0))), key), np.full((2, 3), 2.0))
    with pytest.raises(EncodingError, match="does not take vectors of size 3"):
        s.matvec(a, np.ones((2, 4)))
    with pytest.raises(EncodingError):
        s.matvec(a, np.ones(3))
    with pytest.raises(TypeError):
        s.mul(a, np.ones((2, 3)))


def test_square_is_mul_by_itself_and_inner_sums_each_row():
    s, key = made(PlainScheme)
    x = np.arange(6.0).reshape(2, 3)
    a = s.encrypt(x)
    np.testing.assert_array_equal(s.decrypt(s.square(a), key), x * x)
    np.testing.assert_array_equal(s.decrypt(s.inner(a, a), key), (x * x).sum(axis=1, keepdims=True))


def test_a_scheme_that_needs_no_linear_key_gets_none():
    s, key = made(PlainScheme)
    assert s.make_linear_key(key, np.eye(3)) is None
    with pytest.raises(MismatchError):
        s.make_linear_key(SecretKey("plain", "plain-other", key.key_id, None), np.eye(3))
