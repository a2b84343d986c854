"""The scheme registry: built-ins, explicit registration and the he_core.schemes entry-point group."""
import sys
import textwrap

import pytest

import he_core
from he_core import registry
from he_core.schemes.plain import PlainScheme


def test_builtins_listed():
    names = he_core.available_schemes()
    assert "plain" in names
    assert names == sorted(names)


def test_get_scheme_plain_roundtrip():
    scheme = he_core.get_scheme("plain")
    keys = scheme.keygen()
    ct = scheme.encrypt([[1.0, -2.0]])
    assert (scheme.decrypt_exact_local(ct, keys.secret) == [[1.0, -2.0]]).all()


def test_unknown_scheme_names_the_alternatives():
    with pytest.raises(registry.UnknownSchemeError, match="unknown scheme 'nope'.*plain"):
        he_core.get_scheme("nope")


def test_bad_parameters_are_rejected_clearly():
    with pytest.raises(he_core.ParameterError, match="precision_bits"):
        he_core.get_scheme("plain", precision_bits=99)
    with pytest.raises(TypeError):
        he_core.get_scheme("plain", no_such_parameter=1)


def test_register_and_unregister():
    class Twin(PlainScheme):
        name = "twin-test"

    he_core.register_scheme("twin-test", Twin)
    try:
        assert "twin-test" in he_core.available_schemes()
        assert isinstance(he_core.get_scheme("twin-test"), Twin)
        with pytest.raises(ValueError, match="already registered"):
            he_core.register_scheme("twin-test", Twin)
    finally:
        he_core.unregister_scheme("twin-test")
    assert "twin-test" not in he_core.available_schemes()


def test_only_scheme_subclasses_are_registered():
    for thing in (lambda **kw: PlainScheme.create(), object, PlainScheme.create()):
        with pytest.raises(TypeError, match="cannot register scheme 'broken-test'.*not a he_core Scheme subclass"):
            he_core.register_scheme("broken-test", thing)
    assert "broken-test" not in he_core.available_schemes()


def test_an_entry_point_naming_a_function_is_refused(tmp_path, monkeypatch):
    pkg = tmp_path / "not_a_scheme"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def make(**kw):\n    return None\n")
    dist = tmp_path / "not_a_scheme-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: not-a-scheme\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[he_core.schemes]\nfactory-ep = not_a_scheme:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TypeError, match="factory-ep.*function is not a he_core Scheme subclass"):
        he_core.get_scheme("factory-ep")
    sys.modules.pop("not_a_scheme", None)


def test_third_party_scheme_found_through_entry_point(tmp_path, monkeypatch):
    """A package installed with a he_core.schemes entry point is picked up with no registration call."""
    pkg = tmp_path / "dummy_he_scheme"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from he_core.schemes.plain import PlainScheme

        class DummyScheme(PlainScheme):
            name = "dummy-ep"
    """))
    dist = tmp_path / "dummy_he_scheme-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dummy-he-scheme\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[he_core.schemes]\ndummy-ep = dummy_he_scheme:DummyScheme\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "dummy-ep" in he_core.available_schemes()
    scheme = he_core.get_scheme("dummy-ep")
    assert type(scheme).__name__ == "DummyScheme"
    keys = scheme.keygen()
    assert scheme.decrypt_exact_local(scheme.encrypt([3.0]), keys.secret)[0, 0] == 3.0
    sys.modules.pop("dummy_he_scheme", None)


def test_every_builtin_scheme_loads_here():
    """available_schemes() hides a built-in that fails to import; this test does not."""
    assert he_core.builtin_schemes() == ["ckks", "plain", "vhe"]
    for name in he_core.builtin_schemes():
        assert he_core.scheme_class(name).name == name


def test_a_builtin_that_does_not_load_is_left_out_and_named(monkeypatch):
    monkeypatch.setitem(registry.BUILTIN_SCHEMES, "ghost", "he_core.no_such_module:Ghost")
    assert "ghost" not in he_core.available_schemes()
    with pytest.raises(registry.UnknownSchemeError, match="cannot load scheme 'ghost'.*built in"):
        he_core.scheme_class("ghost")
