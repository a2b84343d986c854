"""he_core.optional.rekeying: switch keys between two secrets, checked before the scheme's hook."""
import numpy as np
import pytest

import he_core
from he_core import Capability, SwitchKey
from he_core.errors import CapabilityError, MismatchError
from he_core.optional import Rekeying
from he_core.schemes.plain import PlainScheme


class Undeclared(PlainScheme):
    capabilities = PlainScheme.capabilities - {Capability.REKEY}


class Hookless(PlainScheme):
    _make_switch_key, _rekey = Rekeying._make_switch_key, Rekeying._rekey


def pairs(cls):
    s = cls.create()
    return s, s.keygen(rng=he_core.SeededRandom(1)).secret, s.keygen(rng=he_core.SeededRandom(2)).secret


def test_rekey_moves_a_ciphertext_to_the_new_key():
    s, old, new = pairs(PlainScheme)
    ct = s.encrypt(np.arange(3.0), old)
    sk = s.make_switch_key(old, new)
    assert (sk.from_key_id, sk.to_key_id) == (old.key_id, new.key_id)
    out = s.rekey(ct, sk)
    np.testing.assert_array_equal(s.decrypt(out, new), [[0.0, 1.0, 2.0]])
    with pytest.raises(MismatchError, match="cannot decrypt"):
        s.decrypt(out, old)


def test_a_switch_key_from_another_key_or_of_another_type_is_refused():
    s, old, new = pairs(PlainScheme)
    ct = s.encrypt(np.arange(3.0), new)
    with pytest.raises(MismatchError, match="switch key starts from key"):
        s.rekey(ct, s.make_switch_key(old, new))
    with pytest.raises(TypeError, match="expected SwitchKey"):
        s.rekey(ct, {"from": old.key_id})
    with pytest.raises(TypeError):
        s.make_switch_key(old, "new")
    other = he_core.get_scheme("plain", precision_bits=8)
    foreign = other.keygen().secret
    with pytest.raises(MismatchError):
        s.make_switch_key(old, foreign)


@pytest.mark.parametrize("cls", [Undeclared, Hookless])
def test_without_the_capability_or_the_hooks_it_fails_by_name(cls):
    s, old, new = pairs(cls)
    with pytest.raises(CapabilityError, match="switching to another secret key"):
        s.make_switch_key(old, new)
    sk = SwitchKey("plain", s.params_id, old.key_id, new.key_id, None)
    with pytest.raises(CapabilityError):
        s.rekey(s.encrypt([1.0], old), sk)
