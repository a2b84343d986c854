"""Dependencies point one way: csrc -> he_core -> henn -> CLI; examples and benchmarks on top.

Checked on the source (every import statement, including those under
``TYPE_CHECKING`` and ``importlib.import_module("...")`` with a literal name), not at
run time:

* ``he_core`` imports neither ``henn`` nor ``benchmarks``;
* ``henn`` imports no concrete scheme (``he_core.schemes``, ``he_core.native``) and
  nothing of ``benchmarks`` (a directory the installed package does not ship);
* inside ``he_core`` no module imports one of a higher layer (:data:`HE_CORE_LAYERS`),
  so there is no circle.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
INSTALLED = ("he_core", "henn")

#: The layers of he_core, lowest first; a module may import only from its own layer or below.
#: Names are module paths relative to he_core; a package name stands for everything under it.
HE_CORE_LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "capabilities", "params", "ciphertext", "keys", "bundle", "randomness", "flooding", "refresh",
     "kernels", "native", "formats", "threads"),
    ("bags", "circuits", "costs", "layouts", "param_choice", "protocols", "validation"),
    ("keyholder_protocol", "scheme"),
    ("optional", "schemes"),
    ("registry",),
    ("dumping", "loading"),
    ("serialization",),
    ("__init__",),
)


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: pathlib.Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved; ``from m import x`` gives m and m.x)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path).split(".") if path.is_relative_to(ROOT) else []
    if path.name != "__init__.py":
        package = package[:-1]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value))
    return names


def sources(package: str) -> list[pathlib.Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert len(files) > 10, f"no sources found under {package}"
    return files


def offenders(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    out = {}
    for path in sources(package):
        bad = sorted(m for m in imported_modules(path) if any(m == f or m.startswith(f + ".") for f in forbidden))
        if bad:
            out[str(path.relative_to(ROOT))] = bad
    return out


def layer_of(module: str) -> int:
    """The index in :data:`HE_CORE_LAYERS` of an ``he_core`` module (``KeyError`` for one not listed)."""
    rel = module.split(".")[1:] or ["__init__"]
    for depth in range(len(rel), 0, -1):
        name = ".".join(rel[:depth])
        for index, layer in enumerate(HE_CORE_LAYERS):
            if name in layer:
                return index
    raise KeyError(module)


def upward_imports() -> list[str]:
    found = []
    for path in sources("he_core"):
        here = module_name(path)
        for target in imported_modules(path):
            if not target.startswith("he_core.") or target.startswith(here + "."):
                continue
            try:
                there = layer_of(target)
            except KeyError:
                continue  # ``from he_core.x import name``: the name itself, checked as he_core.x
            if there > layer_of(here):
                found.append(f"{here} -> {target}")
    return sorted(found)


def he_core_graph(package: str = "he_core") -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports (names resolved to modules that exist)."""
    modules = {module_name(p): p for p in sources(package)}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for target in imported_modules(path):
            while target and target not in modules:  # ``from he_core.x import name``: the module is he_core.x
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                targets.add(target)
        graph[name] = targets
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of ``graph`` (a list of modules, first repeated last), or ``[]``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_he_core_imports_neither_henn_nor_benchmarks():
    assert offenders("he_core", ("henn", "benchmarks")) == {}


def test_henn_imports_no_concrete_scheme_and_no_benchmarks():
    assert offenders("henn", ("he_core.schemes", "he_core.native", "benchmarks")) == {}


def test_every_he_core_module_has_a_layer():
    unknown = []
    for path in sources("he_core"):
        try:
            layer_of(module_name(path))
        except KeyError:
            unknown.append(module_name(path))
    assert unknown == []


def test_he_core_imports_point_down():
    assert upward_imports() == []


def test_he_core_has_no_import_circle():
    assert find_circle(he_core_graph()) == []


def test_henn_has_no_import_circle():
    assert find_circle(he_core_graph("henn")) == []


def test_the_circle_check_can_fail():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("text, forbidden, caught", [
    ("from he_core.schemes.vhe import VheScheme\n", ("he_core.schemes",), "he_core.schemes.vhe"),
    ("import benchmarks.peers as p\n", ("benchmarks",), "benchmarks.peers"),
    ("import importlib\nimportlib.import_module('benchmarks.peers')\n", ("benchmarks",), "benchmarks.peers"),
    ("from benchmarks import peers\n", ("benchmarks",), "benchmarks"),
])
def test_the_check_can_fail(tmp_path, text, forbidden, caught):
    bad = tmp_path / "bad.py"
    bad.write_text(text)
    assert caught in imported_modules(bad)
    assert any(m == f or m.startswith(f + ".") for m in imported_modules(bad) for f in forbidden)


def test_relative_imports_resolve_so_an_upward_one_is_seen():
    assert "he_core.registry" in imported_modules(ROOT / "he_core" / "loading.py")  # ``from .registry import``
    assert layer_of("he_core.registry") > layer_of("he_core.scheme") > layer_of("he_core.errors")
    assert layer_of("he_core.schemes.ckks.ring") == layer_of("he_core.schemes")
