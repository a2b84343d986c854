"""he_core.param_choice: a scheme without levels keeps its defaults; answer sets come cheapest first."""
from he_core.param_choice import ParameterChoice
from he_core.schemes.plain import PlainScheme


class _Leveled(ParameterChoice):
    """Two named sets: one for answers without a floor (only for small values), one by depth."""

    @classmethod
    def params_for_depth(cls, depth, *, fill_ring=False):
        return f"depth-{depth}"

    @classmethod
    def params_for_answer(cls, depth, value_bound):
        return f"answer-{depth}" if value_bound < 100 else None


def test_a_scheme_without_levels_keeps_its_defaults_everywhere():
    assert PlainScheme.params_for_depth(3) is None and PlainScheme.params_for_answer(3, 1.0) is None
    assert PlainScheme.params_for_bootstrapping(3) is None
    assert PlainScheme.answer_params(3, 1.0, 1.0) == []


def test_answer_params_puts_the_set_without_a_floor_first_and_drops_what_does_not_exist():
    assert _Leveled.answer_params(2, 10.0, 1.0) == ["answer-2", "depth-2"]
    assert _Leveled.answer_params(2, 1e6, 1.0) == ["depth-2"]
