"""Dependencies point one way: csrc -> he_core -> henn -> CLI. Checked on the source, not at run time."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def imported_modules(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_he_core_never_imports_henn():
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m == "henn" or m.startswith("henn."))
        for p in (ROOT / "he_core").rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_henn_never_imports_a_concrete_scheme():
    offenders = {}
    for p in (ROOT / "henn").rglob("*.py"):
        bad = sorted(m for m in imported_modules(p) if m.startswith("he_core.schemes") or m.startswith("he_core.native"))
        if bad:
            offenders[str(p.relative_to(ROOT))] = bad
    assert not offenders


def test_the_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from he_core.schemes.vhe import VheScheme\nimport henn.layers\n")
    assert "he_core.schemes.vhe" in imported_modules(bad)
    assert "henn.layers" in imported_modules(bad)
