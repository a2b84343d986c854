"""he_core.scheme.Scheme: the core interface's own rules, on the plaintext twin and on toy subclasses.

Construction and parameters, the capability gate (a declared capability must come with
its protocol's operations; a missing operation is a CapabilityError, not an
AttributeError), public keys, the ``bound`` of ``encrypt``, and the row operations'
argument checks. Each scheme's arithmetic is the campaign's (tests/he_core/properties).
"""
import math

import numpy as np
import pytest

import he_core
from he_core import Capability
from he_core.errors import CapabilityError, EncodingError, KeyMissingError, MismatchError
from he_core.scheme import CORE_OPERATIONS, Scheme
from he_core.schemes.ckks import CkksParams
from he_core.schemes.plain import PlainParams, PlainScheme


def plain():
    s = PlainScheme.create()
    return s, s.keygen(rng=he_core.SeededRandom(7)).secret


def test_create_takes_a_parameter_object_or_keywords_not_both():
    assert PlainScheme.create(precision_bits=8).params == PlainParams(precision_bits=8)
    assert PlainScheme.create(PlainParams(precision_bits=8)).params_id == PlainParams(precision_bits=8).param_id
    with pytest.raises(TypeError, match="not both"):
        PlainScheme.create(PlainParams(), precision_bits=8)
    with pytest.raises(TypeError, match="needs PlainParams"):
        PlainScheme(CkksParams())
    assert PlainScheme.params_for_depth(3) is None  # no levels: the defaults
    assert PlainScheme.answer_params(3, 10.0, 1.0) == []  # nor for answers


def test_a_class_declaring_a_capability_without_its_operations_is_refused():
    with pytest.raises(TypeError, match="declares slot rotation but does not define rotate, conjugate, sum_slots"):
        type("Rotless", (PlainScheme,), {"capabilities": PlainScheme.capabilities | {Capability.ROTATE}})


@pytest.mark.parametrize("op,capability", [("rotate", "slot rotation"), ("level_drop", "a modulus chain of levels"),
                                           ("rerandomize", "exact integer arithmetic")])
def test_an_operation_the_scheme_lacks_is_a_capability_error(op, capability):
    s, _ = plain()
    assert not hasattr(type(s), op)
    with pytest.raises(CapabilityError, match=f"cannot {op}: scheme 'plain' does not support {capability}"):
        getattr(s, op)
    with pytest.raises(AttributeError, match="no attribute 'rotat'"):
        s.rotat  # a typo stays an AttributeError


def test_supports_and_require():
    s, _ = plain()
    assert s.supports(Capability.CIPHER_MULTIPLY) and not s.supports(Capability.ROTATE)
    s.require(Capability.CIPHER_MULTIPLY)
    with pytest.raises(CapabilityError, match="hint"):
        s.require(Capability.ROTATE, "hint")


def test_every_core_operation_is_defined_on_the_base():
    for op in CORE_OPERATIONS:
        assert callable(getattr(Scheme, op)), op


def test_public_keys_must_be_installed_and_belong_here():
    s = PlainScheme.create()
    assert not s.has_public_keys
    with pytest.raises(KeyMissingError, match="keygen"):
        s.public_keys
    with pytest.raises(KeyMissingError):
        s.encrypt([1.0])
    other = PlainScheme.create(precision_bits=4)
    pub = other.keygen().public
    with pytest.raises(MismatchError, match="parameter set"):
        s.set_public_keys(pub)
    with pytest.raises(MismatchError):
        s.check_public_keys(pub)
    with pytest.raises(TypeError):
        s.set_public_keys({"pk": 1})
    mine = s.keygen()
    s.check_public_keys(mine.public)
    assert s.has_public_keys and s.public_keys is mine.public


@pytest.mark.parametrize("bound", [0.5, -1.0, math.inf, math.nan, True, "2"])
def test_a_bound_below_the_values_or_not_a_number_is_refused(bound):
    s, _ = plain()
    with pytest.raises(EncodingError, match="bound"):
        s.encrypt([1.0, -0.75], bound=bound)
    s.encrypt([1.0, -0.75], bound=1.0)


def test_row_operation_arguments():
    s, key = plain()
    a = s.encrypt(np.arange(6.0).reshape(3, 2))
    with pytest.raises(ValueError, match="no ciphertexts"):
        s.concat_rows([])
    with pytest.raises(EncodingError, match="do not match 3 rows"):
        s.lincomb(np.ones((2, 2)), a)
    with pytest.raises(EncodingError):
        s.lincomb(np.ones((2, 3, 1)), a)
    np.testing.assert_array_equal(s.decrypt(s.lincomb([1.0, 0.0, -1.0], a), key), [[-4.0, -4.0]])
    before = a.data.copy()
    with pytest.raises(MismatchError, match="2 rows given for 3 indices"):
        s.check_index_add(a, [0, 1, 2], s.encrypt(np.ones((2, 2))))
    s.check_index_add(a, [0, 0], s.encrypt(np.ones((1, 2))))
    np.testing.assert_array_equal(a.data, before)  # checking changes nothing
    np.testing.assert_array_equal(s.decrypt(s.row_sum(a, [0, 0]), key), [[0.0, 2.0]])  # repeats count twice


def test_copy_is_independent():
    s, key = plain()
    a = s.encrypt(np.ones((1, 2)))
    b = s.copy(a)
    s.index_add_(b, [0], s.encrypt(np.ones((1, 2))))
    np.testing.assert_array_equal(s.decrypt(a, key), np.ones((1, 2)))
    np.testing.assert_array_equal(s.decrypt(b, key), np.full((1, 2), 2.0))


def test_exact_schemes_release_decryptions_unflooded():
    s, key = plain()
    assert s.release_report(s.encrypt([1.0]))["flooded"] is False
