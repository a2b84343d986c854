"""Which source modules have a mirrored test module (tests/<same path>/test_<module>.py).

A module "has logic" when it defines a function or a class (a module of re-exports and
constants does not). A package's ``__init__.py`` with logic is mirrored by
``tests/<package path>/test_<package>.py``.

    python tools/test_mirror.py            # every module with logic, mirrored or not
    python tools/test_mirror.py --missing  # only the unmirrored ones (exit status 1 if any)
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("he_core", "henn")


def logic(path: Path) -> int:
    """Functions and methods the module defines (0: re-exports and constants only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return sum(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) for node in ast.walk(tree)) + \
        sum(isinstance(node, ast.ClassDef) for node in tree.body)


def mirror(path: Path) -> Path:
    rel = path.relative_to(ROOT)
    if rel.name == "__init__.py":
        return ROOT / "tests" / rel.parent / f"test_{rel.parent.name}.py"
    return ROOT / "tests" / rel.parent / f"test_{rel.stem}.py"


def rows() -> list[tuple[str, int, bool]]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            n = logic(path)
            if n:
                out.append((str(path.relative_to(ROOT)), n, mirror(path).exists()))
    return out


def main(argv: list[str]) -> int:
    missing_only = "--missing" in argv
    table = rows()
    missing = [r for r in table if not r[2]]
    for name, n, ok in sorted(table, key=lambda r: (r[2], -r[1])):
        if ok and missing_only:
            continue
        print(f"{'ok     ' if ok else 'MISSING'} {n:4d}  {name}")
    print(f"{len(table)} modules with logic, {len(missing)} without a mirrored test")
    return 1 if missing_only and missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
