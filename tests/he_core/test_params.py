"""he_core.params.Parameters: immutable, identified by every field, serialisable, strict about unknown fields."""
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from he_core.params import Parameters
from he_core.schemes.plain import PlainParams
from he_core.schemes.vhe import VheParams


@given(bits=st.one_of(st.none(), st.integers(0, 52)))
def test_a_parameter_set_round_trips_through_its_dict_and_keeps_its_id(bits):
    p = PlainParams(precision_bits=bits)
    back = PlainParams.from_dict(p.to_dict())
    assert back == p and back.param_id == p.param_id
    assert p.param_id.startswith("plain-") and len(p.param_id) == len("plain-") + 12


def test_every_field_changes_the_id():
    base = VheParams()
    ids = {base.param_id}
    for f in dataclasses.fields(VheParams):
        value = getattr(base, f.name)
        try:
            other = dataclasses.replace(base, **{f.name: value + 1})
        except Exception:  # noqa: BLE001 - a field whose next value is invalid
            other = dataclasses.replace(base, **{f.name: value - 1})
        ids.add(other.param_id)
    assert len(ids) == len(dataclasses.fields(VheParams)) + 1


def test_sets_are_frozen_and_unknown_fields_are_refused():
    p = PlainParams()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.precision_bits = 3
    with pytest.raises(ValueError, match="unknown plain parameters"):
        PlainParams.from_dict({"precision_bits": 3, "bogus": 1})


def test_the_base_gives_no_security():
    assert Parameters().security_bits == 0
    assert PlainParams().security_bits == 0
