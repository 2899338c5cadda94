"""Tests share helpers through `tests/support/` only: a test module (or conftest) that imports
another tier's module, another test module or a conftest couples tiers and breaks when one moves."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_tests_import_shared_code_only_from_tests_support() -> None:
    """tests/support itself included: it may import only its own modules. A relative import or
    a bare `conftest` import would reach another test module without naming it, so they count
    too."""
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    offenders.append(f"{path.relative_to(TESTS.parent)}: relative import")
                    continue
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                shared = name == "tests.support" or name.startswith("tests.support.")
                if (name.startswith("tests.") and not shared) or name.split(".")[0] == "conftest":
                    offenders.append(f"{path.relative_to(TESTS.parent)}: {name}")
    assert offenders == [], "import shared test code from tests/support instead:\n" + "\n".join(
        offenders
    )
