"""he_core.errors: one hierarchy under HEError, each error also the built-in kind it is."""
import pytest

import he_core
from he_core import errors

KINDS = {
    errors.ParameterError: ValueError, errors.InsecureParametersError: errors.ParameterError,
    errors.CapabilityError: NotImplementedError, errors.MismatchError: ValueError, errors.EncodingError: ValueError,
    errors.KeyMissingError: LookupError, errors.HEOverflowError: OverflowError,
    errors.NoiseBudgetExhausted: errors.HEOverflowError, errors.LevelExhaustedError: ValueError,
    errors.PrecisionError: ValueError, errors.FormatError: ValueError, errors.KeyExportError: TypeError,
    errors.NativeError: RuntimeError, errors.RefreshRequired: ValueError, errors.AlignmentError: errors.MismatchError,
}


def test_every_error_class_is_listed_here():
    found = {obj for obj in vars(errors).values()
             if isinstance(obj, type) and issubclass(obj, errors.HEError) and obj is not errors.HEError}
    assert found == set(KINDS)


@pytest.mark.parametrize("cls,kind", list(KINDS.items()), ids=lambda c: getattr(c, "__name__", ""))
def test_each_error_is_an_heerror_and_its_builtin_kind(cls, kind):
    assert issubclass(cls, errors.HEError) and issubclass(cls, kind)
    assert getattr(he_core, cls.__name__, cls) is cls  # exported under its own name where exported


def test_a_capability_error_names_the_scheme_capability_and_operation():
    e = errors.CapabilityError("vhe", "slot rotation", "no slots", op="rotate")
    assert (e.scheme, e.capability) == ("vhe", "slot rotation")
    assert str(e) == "cannot rotate: scheme 'vhe' does not support slot rotation (no slots)"
    assert str(errors.CapabilityError("plain", "levels")) == "cannot use levels: scheme 'plain' does not support levels"


def test_refresh_required_carries_the_operand_and_the_target():
    ct, target = object(), {"layout": "slots"}
    e = errors.RefreshRequired("re-encrypt it", ct, target)
    assert e.ciphertext is ct and e.target == target and str(e) == "re-encrypt it"


def test_the_security_warning_is_a_warning_not_an_error():
    assert issubclass(errors.SecurityWarning, UserWarning) and not issubclass(errors.SecurityWarning, errors.HEError)
