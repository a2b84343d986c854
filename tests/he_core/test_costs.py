"""The schemes' own statement of what an operation spends (he_core.costs), checked against what it spends."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

import he_core
from he_core.costs import COSTED, OpCost, polyval_depth


def test_polyval_depth_follows_the_interface_bound():
    assert [polyval_depth(c) for c in ([1.0], [0, 1], [0, 0, 1], [1, 2, 0, 3], [0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 1])] \
        == [1, 1, 2, 3, 3, 4]


@pytest.fixture(scope="module", params=he_core.available_schemes())
def scheme(request):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {"poly_degree": 2048, "levels": 6, "allow_insecure": True} if request.param == "ckks" else {}
        s = he_core.get_scheme(request.param, **kwargs)
    s.keygen(he_core.KeyRequirements(sizes=(1, 4)), rng=he_core.SeededRandom(1))
    return s


def test_every_interface_operation_has_a_cost(scheme):
    a, b = scheme.encrypt(np.ones((3, 4))), scheme.encrypt(np.ones((1, 4)))
    costs = {op: scheme.op_cost(op, a, b) if op in ("add", "sub", "mul", "inner") else
             scheme.op_cost(op, a, rows=[0, 1], coeffs=[0, 1, 1]) for op in COSTED}
    assert all(isinstance(c, OpCost) and c.depth >= 0 and c.masks >= 0 and c.extra_bits >= 0
               and (c.noise_bits is None or c.noise_bits >= 0) for c in costs.values())
    # A noise forecast (vhe's) rides along; the depth and masks are the interface's contract.
    assert dataclasses.replace(costs["mul"], noise_bits=None) == OpCost(depth=1, masks=1)  # (1, 4) over 3 rows
    assert dataclasses.replace(scheme.op_cost("mul", a, a), noise_bits=None) == OpCost(depth=1)
    assert costs["row_sum"].extra_bits == 1.0  # two rows summed: one bit
    with pytest.raises(ValueError, match="not an interface operation"):
        scheme.op_cost("bootstrap_everything", a)
    with pytest.raises(ValueError, match="without its coefficients"):
        scheme.op_cost("polyval", a)


@pytest.mark.parametrize("op, run", [
    ("mul", lambda s, a: s.mul(a, a)),
    ("mul_plain", lambda s, a: s.mul_plain(a, 0.5)),
    ("square", lambda s, a: s.square(a)),
    ("polyval", lambda s, a: s.polyval(a, [0.1, 0.2, 0.3, 0.4])),
    ("add", lambda s, a: s.add(a, a)),
])
def test_a_leveled_scheme_spends_no_more_than_the_stated_depth(op, run):
    """On ckks the stated depth bounds the levels an operation actually takes (masks are extra, not counted)."""
    if "ckks" not in he_core.available_schemes():
        pytest.skip("the ckks scheme is not built")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = he_core.get_scheme("ckks", poly_degree=2048, levels=6, allow_insecure=True)
    s.keygen(he_core.KeyRequirements(sizes=(1, 4)), rng=he_core.SeededRandom(2))
    a = s.encrypt(np.full((2, 4), 0.5))
    cost = s.op_cost(op, a, a, coeffs=[0.1, 0.2, 0.3, 0.4])
    spent = s.budget(a)["remaining"] - s.budget(run(s, a))["remaining"]
    assert spent <= cost.depth, (op, spent, cost)
