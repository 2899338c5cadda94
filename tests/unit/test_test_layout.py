"""Tests share helpers through `tests/support/` only: a test module (or conftest) that imports
another tier's module, another test module or a conftest couples tiers and breaks when one moves."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_tests_import_shared_code_only_from_tests_support() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if "node_modules" in path.parts or path.is_relative_to(TESTS / "support"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("tests.") and not name.startswith("tests.support"):
                    offenders.append(f"{path.relative_to(TESTS.parent)}: {name}")
    assert offenders == [], "import shared test code from tests/support instead:\n" + "\n".join(
        offenders
    )
