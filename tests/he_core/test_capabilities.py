"""he_core.capabilities.Capability: the optional operations a scheme declares, and the protocols tied to them."""
import he_core
from he_core import Capability
from he_core.protocols import PROTOCOLS, operations


def test_capabilities_are_distinct_strings_that_read_as_phrases():
    values = [c.value for c in Capability]
    assert len(values) == len(set(values))
    assert all(isinstance(c, str) and c == c.value and c.value == c.value.strip() for c in Capability)


def test_every_builtin_scheme_declares_only_capabilities_it_implements():
    for name in he_core.builtin_schemes():
        cls = he_core.scheme_class(name)
        assert cls.capabilities <= set(Capability)
        for capability in cls.capabilities & set(PROTOCOLS):
            for op in operations(PROTOCOLS[capability]):
                assert callable(getattr(cls, op)), (name, op)


def test_the_exact_and_approximate_schemes_say_which_they_are():
    assert Capability.EXACT in he_core.scheme_class("vhe").capabilities
    assert Capability.APPROXIMATE in he_core.scheme_class("ckks").capabilities
    for name in he_core.builtin_schemes():
        caps = he_core.scheme_class(name).capabilities
        assert not {Capability.EXACT, Capability.APPROXIMATE} <= caps
