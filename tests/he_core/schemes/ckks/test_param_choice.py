"""he_core.schemes.ckks.param_choice: the sets by depth, for bootstrapping and for a server's answers."""
import pytest

from he_core.schemes.ckks import CkksScheme
from he_core.schemes.ckks.params import PROTOCOL_SCALE_BITS, for_answer, for_precise_answer, for_protocol


def test_answer_sets_are_cheapest_first_and_the_precise_floor_only_where_the_inputs_encode():
    """The answer set (no floor), then the floored set at the largest scale inputs up to the bound encode at
    (2^60 / bound, at most 2^58), then the protocol's: each secure, each a different set."""
    sets = CkksScheme.answer_params(2, 100.0, 2.0)
    assert [p.floor_levels for p in sets] == [0, 1, 1]
    assert [p.scale_bits for p in sets][1:] == [58, PROTOCOL_SCALE_BITS]
    assert all(p.security_bits >= 128 for p in sets) and len(set(sets)) == 3
    assert sets[-1] == for_protocol(2) and sets[1] == for_precise_answer(2, 2.0)
    assert for_precise_answer(2, 16.0).scale_bits == 56  # 16 * 2^56 = 2^60
    assert for_precise_answer(2, 64.0) is None  # 64 * 2^54 already reaches 2^60: no gain
    assert for_precise_answer(2, float("nan")) is None and for_precise_answer(2, 0.0) is None
    assert CkksScheme.answer_params(2, 2.0**40, 64.0) == [for_protocol(2)]  # q_0 cannot hold 2^40: no answer set


def test_the_answer_set_is_for_answer_at_the_values_bits_and_none_for_a_bound_that_says_nothing():
    assert CkksScheme.params_for_answer(1, 100.0) == for_answer(1, 7)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        assert CkksScheme.params_for_answer(1, bad) is None


@pytest.mark.parametrize("depth", [1, 4])
def test_params_for_depth_is_the_protocol_set_and_fill_ring_never_shrinks_it(depth):
    assert CkksScheme.params_for_depth(depth) == for_protocol(depth)
    filled = CkksScheme.params_for_depth(depth, fill_ring=True)
    assert filled.poly_degree == for_protocol(depth).poly_degree and filled.levels >= for_protocol(depth).levels
