"""he_core.optional.refresh: the masked refresh's and sanitising's public checks, on the plaintext twin."""
import math

import numpy as np
import pytest

import he_core
from he_core import Capability
from he_core.errors import CapabilityError, EncodingError, MismatchError
from he_core.optional import MaskedRefreshing, Sanitization
from he_core.refresh import Mask
from he_core.schemes.plain import PlainScheme


class Undeclared(PlainScheme):
    capabilities = PlainScheme.capabilities - {Capability.REFRESH, Capability.SANITIZE}


class Hookless(PlainScheme):
    _refresh_plan, _sanitize = MaskedRefreshing._refresh_plan, Sanitization._sanitize


def made(cls=PlainScheme):
    s = cls.create()
    return s, s.keygen(rng=he_core.SeededRandom(3)).secret


def empty_mask(plan):
    z = np.zeros(0, dtype=np.int64)
    return Mask(plan=plan, width_bits=0, high=z, low=z, residues=None)


@pytest.mark.parametrize("cls", [Undeclared, Hookless])
def test_without_the_capability_or_the_hooks_it_fails_by_name(cls):
    s, _ = made(cls)
    ct = s.encrypt(np.ones((1, 2)))
    with pytest.raises(CapabilityError):
        s.refresh_plan(ct)
    with pytest.raises(CapabilityError):
        s.sanitize(ct)


@pytest.mark.parametrize("bound", [0.0, -1.0, math.inf, math.nan])
def test_a_value_bound_must_be_positive_and_finite(bound):
    s, _ = made()
    with pytest.raises(ValueError, match="value_bound"):
        s.refresh_plan(s.encrypt([1.0]), value_bound=bound)


@pytest.mark.parametrize("bound", [0, -2.0, math.inf, True, "1"])
def test_as_received_needs_a_positive_finite_bound(bound):
    s, _ = made()
    with pytest.raises(EncodingError, match="bound"):
        s.as_received(s.encrypt([1.0]), bound)


def test_the_answer_must_match_the_request():
    s, key = made()
    ct = s.encrypt(np.ones((2, 2)))
    mask = empty_mask(s.refresh_plan(ct))
    fresh = s.reencrypt_masked(s.apply_mask(ct, mask), None, key)
    with pytest.raises(MismatchError, match="does not match the request"):
        s.remove_mask(s.take_rows(fresh, [0]), mask, None, ct)
    other = s.keygen(rng=he_core.SeededRandom(4)).secret
    with pytest.raises(MismatchError, match="cannot decrypt"):
        s.reencrypt_masked(s.apply_mask(ct, mask), None, other)


def test_a_mask_for_another_plan_shape_is_refused():
    s, _ = made()
    ct = s.encrypt(np.ones((2, 2)))
    plan = s.refresh_plan(ct)
    bad = Mask(plan=plan, width_bits=0, high=np.zeros(1, dtype=np.int64), low=np.zeros(1, dtype=np.int64),
               residues=None)
    with pytest.raises(he_core.ParameterError, match="cannot use the mask"):
        s.apply_mask(ct, bad)


def test_the_target_signature_is_public_metadata_only():
    s, _ = made()
    ct = s.encrypt(np.ones((3, 2)))
    assert s.refresh_target_signature(ct) == {"layout": None, "shape": [3, 2]}
