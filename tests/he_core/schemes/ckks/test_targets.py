"""he_core.schemes.ckks.targets: re-encryption targets, their checks, and the errors that name them."""
import warnings

import numpy as np
import pytest

from he_core import KeyRequirements, SeededRandom
from he_core.errors import EncodingError, RefreshRequired
from he_core.schemes.ckks import CkksParams, CkksScheme
from he_core.schemes.ckks.coeff import TABLE_LEVEL


@pytest.fixture(scope="module")
def ctx():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheme = CkksScheme(CkksParams(poly_degree=1024, levels=3, allow_insecure=True))
    keys = scheme.keygen(KeyRequirements(sizes=(4,)), rng=SeededRandom(3))
    return scheme, keys.secret


def test_a_target_sits_at_its_levels_working_scale(ctx):
    scheme, _ = ctx
    for level in range(scheme.params.levels + 1):
        target = scheme.targets.target("slots", level)
        assert target == {"layout": "slots", "level": level, "scale": scheme.scales.at(level)}


def test_tables_ask_for_a_coefficient_layout_at_the_table_level(ctx):
    scheme, secret = ctx
    values = np.zeros((3, 3))
    target = scheme.targets.check("table", values)
    assert target["layout"] == "coeff" and target["stride"] == 4 and target["rev"] is False
    assert target["level"] == min(TABLE_LEVEL, scheme.params.levels)
    table = scheme.encrypt(values, secret, rng=SeededRandom(1), layout="table")
    assert scheme.targets.layout_of(table) == scheme.targets.coeff_target(table)
    assert scheme.targets.layout_of(scheme.encrypt(values, secret, rng=SeededRandom(2))) is None


@pytest.mark.parametrize("target, message", [
    ("rows", "unknown CKKS layout"),
    ({"layout": "slots", "level": 9, "scale": 2.0**40}, "layout level"),
    ({"layout": "slots", "level": 1, "scale": float("nan")}, "layout scale"),
    ({"layout": "coeff", "level": 1, "scale": 2.0**40, "stride": 8, "rev": False}, "stride 4"),
    ({"layout": "constant", "level": 1, "scale": 2.0**40}, "one value"),
])
def test_bad_targets_are_refused_by_name(ctx, target, message):
    scheme, _ = ctx
    with pytest.raises(EncodingError, match=message):
        scheme.targets.check(target, np.zeros((2, 3)))


def test_a_table_where_slots_are_needed_names_the_target(ctx):
    scheme, secret = ctx
    table = scheme.encrypt(np.zeros((2, 3)), secret, rng=SeededRandom(1), layout="table")
    err = scheme.targets.need_slots("rotate", table)
    assert isinstance(err, RefreshRequired) and "cannot rotate" in str(err)
    assert err.target == scheme.targets.target("slots", scheme.params.levels)
