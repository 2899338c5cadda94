"""The services are peers wired by the composition root (`hubbub/app.py`): no services module may
import, directly or through others, a module that imports it back. Imports under
`if TYPE_CHECKING:` count too, since that is how a child service used to reach its parent.
The same holds for every module of hubbub (the job handlers, the store, ...): a lazy import
inside a function counts as well.

Read from the source files with `ast`, so nothing is imported and a cycle that Python would
tolerate at run time still fails here.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import hubbub
import hubbub.services

PACKAGE = "hubbub.services"


def service_modules() -> dict[str, Path]:
    root = Path(hubbub.services.__file__).parent
    return {f"{PACKAGE}.{path.stem}": path for path in sorted(root.glob("*.py"))}


def all_modules() -> dict[str, Path]:
    """Every module of hubbub by its dotted name (a package by its `__init__.py`)."""
    root = Path(hubbub.__file__).parent
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = ["hubbub", *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported_services(
    module: str, source: str, known: set[str], *, is_package: bool = False
) -> set[str]:
    """The modules of `known` that `module` imports, anywhere in its source."""
    package = module if is_package else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        found.update(name for name in names if name in known and name != module)
    return found


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle as a path `[a, b, ..., a]`, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_cycle_finder_sees_direct_and_longer_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_import_reader_sees_type_checking_and_relative_imports() -> None:
    known = {f"{PACKAGE}.channels", f"{PACKAGE}.teams", f"{PACKAGE}.users"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import users\n"
        "if TYPE_CHECKING:\n"
        "    from hubbub.services.channels import ChannelsService\n"
    )
    found = imported_services(f"{PACKAGE}.teams", source, known)
    assert found == {f"{PACKAGE}.channels", f"{PACKAGE}.users"}


def test_services_import_no_cycles() -> None:
    modules = service_modules()
    assert f"{PACKAGE}.channels" in modules  # the glob found the real package
    known = set(modules)
    graph = {
        name: imported_services(name, path.read_text(encoding="utf-8"), known)
        for name, path in modules.items()
    }
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle among services: " + " -> ".join(cycle or [])


def test_no_module_of_hubbub_is_in_an_import_cycle() -> None:
    modules = all_modules()
    assert "hubbub.store.db" in modules and "hubbub.jobs.importer" in modules
    known = set(modules)
    graph = {
        name: imported_services(
            name, path.read_text(encoding="utf-8"), known, is_package=path.name == "__init__.py"
        )
        for name, path in modules.items()
    }
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
