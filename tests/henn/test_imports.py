"""henn talks only to the he_core interface and registry: it never imports a concrete scheme."""
from __future__ import annotations

import ast
import pathlib

HENN = pathlib.Path(__file__).resolve().parents[2] / "henn"


def _imports(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            names.append(str(node.args[0].value))
    return names


def test_every_henn_module_avoids_concrete_schemes():
    files = sorted(HENN.rglob("*.py"))
    assert len(files) > 10
    offenders = {str(f.relative_to(HENN)): n for f in files for n in _imports(f)
                 if n == "he_core.schemes" or n.startswith("he_core.schemes.")}
    assert offenders == {}, f"henn modules import concrete schemes: {offenders}"


def test_the_check_would_catch_one(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from he_core.schemes.plain import PlainScheme\nimport he_core.schemes.vhe as v\n")
    assert "he_core.schemes.plain" in _imports(bad) and "he_core.schemes.vhe" in _imports(bad)
